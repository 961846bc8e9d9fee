"""Realtime sessions: one usage record per response.done, model from the session (video interviews)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import openai
import pytest

import spendscope
from spendscope import names as n
from spendscope.demo.fake_openai import FakeOpenAI
from tests.conftest import Capture

# The reference response.done usage (OpenAI API reference, RealtimeServerEventResponseDone).
USAGE = {
    "total_tokens": 253,
    "input_tokens": 132,
    "output_tokens": 121,
    "input_token_details": {
        "text_tokens": 119,
        "audio_tokens": 13,
        "image_tokens": 0,
        "cached_tokens": 64,
        "cached_tokens_details": {"text_tokens": 64, "audio_tokens": 0, "image_tokens": 0},
    },
    "output_token_details": {"text_tokens": 30, "audio_tokens": 91},
}
SESSION_MODEL = "gpt-realtime-2025-08-28"
# gpt-realtime per 1M: text in $4, cached text $0.40, audio in $32, text out $16, audio out $64.
COST = float(((119 - 64) * 4 + 64 * Decimal("0.4") + 13 * 32 + 30 * 16 + 91 * 64) / 1_000_000)


def _until_done(events: Any) -> list[str]:
    seen = []
    for event in events:
        seen.append(event.type)
        if event.type == "response.done":
            return seen
    raise AssertionError("no response.done")


def test_realtime_session_records_each_response_done(
    capture: Capture, server: FakeOpenAI, client: openai.OpenAI
) -> None:
    server.enqueue_realtime_usage(USAGE)
    with spendscope.attributes(user="candidate-7", endpoint="video-interview", tenant="hr-co", job_id="J-1"):
        connection_manager = client.realtime.connect(model="gpt-realtime")
    with connection_manager as connection:
        connection.session.update(
            session={"type": "realtime", "model": SESSION_MODEL, "instructions": "Interview the candidate."}
        )
        connection.conversation.item.create(
            item={"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hello!"}]}
        )
        connection.response.create()
        first = _until_done(connection)
        connection.response.create()
        _until_done(connection)
    assert first[0] == "session.created" and "response.created" in first
    spans = capture.spans()
    assert len(spans) == 2
    attrs = dict(spans[0].attributes or {})
    assert spans[0].name == "realtime gpt-realtime"
    assert attrs[n.OPERATION_NAME] == "realtime" and attrs[n.OPENAI_API_TYPE] == "realtime"
    assert attrs[n.REQUEST_MODEL] == "gpt-realtime"
    assert attrs[n.RESPONSE_MODEL] == SESSION_MODEL  # from session.created, not from connect()
    assert (attrs[n.USAGE_INPUT_TOKENS], attrs[n.USAGE_OUTPUT_TOKENS]) == (132, 121)
    assert attrs[n.USAGE_CACHE_READ_INPUT_TOKENS] == 64
    assert (attrs[n.USAGE_AUDIO_INPUT_TOKENS], attrs[n.USAGE_AUDIO_OUTPUT_TOKENS]) == (13, 91)
    assert float(attrs[n.COST_USD]) == COST == 0.0069656
    assert (attrs[n.USER_ID], attrs[n.ENDPOINT], attrs["spendscope.attr.job_id"]) == (
        "candidate-7",
        "video-interview",
        "J-1",
    )
    assert attrs[n.RESPONSE_ID].startswith("resp")
    second = dict(spans[1].attributes or {})
    assert second[n.USAGE_STATE] == "reported" and second[n.USAGE_INPUT_TOKENS] > 0  # server's own count
    assert capture.total(n.METRIC_COST, endpoint="video-interview") == pytest.approx(
        COST + float(second[n.COST_USD])
    )


def test_realtime_events_read_as_raw_bytes_are_seen_too(
    capture: Capture, server: FakeOpenAI, client: openai.OpenAI
) -> None:
    server.enqueue_realtime_usage(USAGE)
    with client.realtime.connect(model="gpt-realtime") as connection:
        connection.response.create()
        while b"response.done" not in connection.recv_bytes():
            pass
    assert float(capture.attrs()[n.COST_USD]) == COST


def test_response_pending_at_close_is_unavailable(
    capture: Capture, server: FakeOpenAI, client: openai.OpenAI
) -> None:
    with client.realtime.connect(model="gpt-realtime") as connection:
        connection.response.create()
        while connection.recv().type != "response.created":
            pass
    attrs = capture.attrs()
    assert attrs[n.USAGE_STATE] == "unavailable" and n.COST_USD not in attrs
    assert capture.total(n.METRIC_USAGE_UNAVAILABLE) == 1


def test_answered_and_pending_responses_share_one_model_rule(
    capture: Capture, server: FakeOpenAI, client: openai.OpenAI
) -> None:
    """Request model: what connect() asked for; response model: what the session reports it runs."""
    with client.realtime.connect(model="gpt-realtime") as connection:
        connection.session.update(session={"type": "realtime", "model": SESSION_MODEL})
        connection.response.create()
        _until_done(connection)
        connection.response.create()
        while connection.recv().type != "response.created":
            pass
    answered, pending = capture.spans()
    assert dict(pending.attributes or {})[n.USAGE_STATE] == "unavailable"
    for span in (answered, pending):
        attrs = dict(span.attributes or {})
        assert span.name == "realtime gpt-realtime"
        assert (attrs[n.REQUEST_MODEL], attrs[n.RESPONSE_MODEL]) == ("gpt-realtime", SESSION_MODEL)


@pytest.mark.anyio
async def test_async_realtime(capture: Capture, server: FakeOpenAI, aclient: openai.AsyncOpenAI) -> None:
    server.enqueue_realtime_usage(USAGE)
    async with aclient.realtime.connect(model="gpt-realtime") as connection:
        await connection.response.create()
        async for event in connection:
            if event.type == "response.done":
                break
    assert float(capture.attrs()[n.COST_USD]) == COST


def test_uninstrumented_realtime_records_nothing(
    capture: Capture, server: FakeOpenAI, client: openai.OpenAI
) -> None:
    spendscope.uninstrument_openai()
    with client.realtime.connect(model="gpt-realtime") as connection:
        connection.response.create()
        assert _until_done(connection)[-1] == "response.done"
    assert capture.spans() == []


def test_realtime_records_add_up_to_the_session_time(
    capture: Capture, server: FakeOpenAI, client: openai.OpenAI
) -> None:
    """Interview minutes need no app code: each record carries the connection's seconds since the
    previous one, so a connection's records add up to its time from open to its last record."""
    import time

    before = time.time_ns()
    with client.realtime.connect(model="gpt-realtime") as connection:
        time.sleep(0.3)
        connection.response.create()
        _until_done(connection)
        time.sleep(0.2)
        connection.response.create()
        while connection.recv().type != "response.created":
            pass  # the second response is pending at close
    after = time.time_ns()
    key = n.QUANTITY_PREFIX + n.QUANTITY_REALTIME_SECONDS
    seconds = [float(dict(span.attributes or {})[key]) for span in capture.spans()]
    assert len(seconds) == 2
    assert seconds[0] >= 0.3 and seconds[1] >= 0.2
    assert sum(seconds) <= (after - before) / 1e9
