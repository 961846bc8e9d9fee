"""Background Responses (`responses.create(background=True)`), through the real openai client and the
fake server: the create's span stays open until a poll, a cancel or a resumed stream shows the
response terminal, and is finished exactly once, with that response's usage."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest
from openai.types.responses import Response

import spendscope
from spendscope import names as n
from spendscope.demo.fake_openai import FakeOpenAI, Reply, synth
from spendscope.instrumentation import Instrumentation, default_instrumentation
from spendscope.instrumentation.background import PendingCalls
from tests.conftest import API_KEY, PROJECT, Capture, make_capture
from tests.helpers import mini_cost

PROMPT = "Write a haiku about otters."
# The fake's token rule (spendscope/demo/fake_openai/synth.py): 3 + (4 + ceil(27 / 4)) input tokens; the
# default text, ceil(34 / 4), out (gpt-4o-mini is not a reasoning model).
INPUT_TOKENS = 3 + 4 + math.ceil(len(PROMPT) / 4)
OUTPUT_TOKENS = math.ceil(len(synth.DEFAULT_TEXT) / 4)
TERMINAL = ("completed", "incomplete", "failed", "cancelled")
ATTRIBUTION = {"user": "u-42", "endpoint": "novel-writer", "tenant": "acme"}


def pending() -> PendingCalls:
    """The calls `instrument_openai()` (the `capture` fixture) keeps waiting for their usage."""
    return default_instrumentation().pending


def create(client: openai.OpenAI, **kwargs: Any) -> Response:
    with spendscope.attributes(**ATTRIBUTION):
        return client.responses.create(model="gpt-4o-mini", input=PROMPT, background=True, **kwargs)


async def acreate(aclient: openai.AsyncOpenAI) -> Response:
    with spendscope.attributes(**ATTRIBUTION):
        return await aclient.responses.create(model="gpt-4o-mini", input=PROMPT, background=True)


def poll(client: openai.OpenAI, response: Response) -> tuple[Response, int]:
    """Polled, outside any `attributes()`, until terminal; (final response, number of polls)."""
    polls = 0
    while response.status not in TERMINAL:
        response = client.responses.retrieve(response.id)
        polls += 1
    return response, polls


def assert_one_reported_span(capture: Capture, response_id: str) -> dict[str, Any]:
    attrs = capture.attrs()
    assert attrs[n.RESPONSE_ID] == response_id and response_id not in pending()
    assert (attrs[n.USER_ID], attrs[n.ENDPOINT], attrs[n.TENANT]) == ("u-42", "novel-writer", "acme")
    assert (attrs[n.USAGE_INPUT_TOKENS], attrs[n.USAGE_OUTPUT_TOKENS]) == (INPUT_TOKENS, OUTPUT_TOKENS)
    assert attrs[n.USAGE_STATE] == "reported"
    assert float(attrs[n.COST_USD]) == pytest.approx(mini_cost(INPUT_TOKENS, OUTPUT_TOKENS), rel=1e-12)
    labels = {"endpoint": "novel-writer", "tenant": "acme", "model": "gpt-4o-mini-2024-07-18"}
    assert capture.total(n.METRIC_TOKENS, type="input", **labels) == INPUT_TOKENS
    assert capture.total(n.METRIC_TOKENS, type="output", **labels) == OUTPUT_TOKENS
    assert capture.total(n.METRIC_COST, user="u-42", **labels) == pytest.approx(
        mini_cost(INPUT_TOKENS, OUTPUT_TOKENS), rel=1e-12
    )
    assert capture.points(n.METRIC_USAGE_UNAVAILABLE) == []
    [(_, duration)] = capture.points(n.METRIC_OPERATION_DURATION)
    assert duration.count == 1
    return attrs


def test_polled_to_completion_one_span_with_exact_usage_cost_and_create_time_attribution(
    capture: Capture, server: FakeOpenAI, client: openai.OpenAI
) -> None:
    queued = create(client)
    assert (queued.status, queued.background, queued.usage) == ("queued", True, None)
    first = client.responses.retrieve(queued.id)
    assert first.status == "in_progress" and capture.spans() == []  # non-terminal polls change nothing
    before_completion = time.time_ns()
    done, polls = poll(client, first)
    assert polls == 1 and done.usage is not None  # the fake's schedule: in_progress once, then completed
    assert (done.usage.input_tokens, done.usage.output_tokens) == (INPUT_TOKENS, OUTPUT_TOKENS)
    for _ in range(3):  # polled again after completion, and a cancel of the finished response
        assert client.responses.retrieve(queued.id).status == "completed"
    assert client.responses.cancel(queued.id).status == "completed"
    assert_one_reported_span(capture, queued.id)
    span = capture.span()
    assert span.start_time is not None and span.end_time is not None
    assert span.start_time < before_completion <= span.end_time  # ended when the usage was seen
    assert span.name == "chat gpt-4o-mini"


@pytest.mark.anyio
async def test_async_polled_to_completion(
    capture: Capture, server: FakeOpenAI, aclient: openai.AsyncOpenAI
) -> None:
    response = await acreate(aclient)
    while response.status not in TERMINAL:
        response = await aclient.responses.retrieve(response.id)
    await aclient.responses.retrieve(response.id)
    assert_one_reported_span(capture, response.id)


def test_cancel_without_usage_is_one_unavailable_span(
    capture: Capture, server: FakeOpenAI, client: openai.OpenAI
) -> None:
    queued = create(client)
    assert capture.spans() == []
    cancelled = client.responses.cancel(queued.id)
    assert (cancelled.status, cancelled.usage) == ("cancelled", None)
    assert client.responses.cancel(queued.id).status == "cancelled"  # idempotent
    assert client.responses.retrieve(queued.id).status == "cancelled"
    attrs = capture.attrs()
    assert attrs[n.USAGE_STATE] == "unavailable" and n.COST_USD not in attrs
    assert attrs[n.USER_ID] == "u-42"
    assert capture.total(n.METRIC_USAGE_UNAVAILABLE, tenant="acme") == 1
    assert capture.points(n.METRIC_TOKENS) == [] and capture.points(n.METRIC_COST) == []


@pytest.mark.anyio
async def test_async_cancel_carrying_usage_records_it(
    capture: Capture, server: FakeOpenAI, aclient: openai.AsyncOpenAI
) -> None:
    queued = await acreate(aclient)
    # A response cancelled mid-run that reports the tokens it used so far (queued ahead of the default).
    usage = {"input_tokens": INPUT_TOKENS, "output_tokens": 3, "total_tokens": INPUT_TOKENS + 3}
    body = queued.model_dump(mode="json") | {"status": "cancelled", "usage": usage}
    server.enqueue(f"/v1/responses/{queued.id}/cancel", Reply(json=body))
    cancelled = await aclient.responses.cancel(queued.id)
    assert cancelled.status == "cancelled"
    await aclient.responses.retrieve(queued.id)
    attrs = capture.attrs()
    assert (attrs[n.USAGE_INPUT_TOKENS], attrs[n.USAGE_OUTPUT_TOKENS]) == (INPUT_TOKENS, 3)
    assert float(attrs[n.COST_USD]) == pytest.approx(mini_cost(INPUT_TOKENS, 3), rel=1e-12)
    assert capture.total(n.METRIC_TOKENS, type="output") == 3


def test_stream_resume_finishes_the_pending_call_once(
    capture: Capture, server: FakeOpenAI, client: openai.OpenAI
) -> None:
    queued = create(client)
    with client.responses.stream(response_id=queued.id) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert kinds[:3] == ["response.created", "response.queued", "response.in_progress"]
    assert kinds[-1] == "response.completed" and final.usage is not None
    assert final.usage.input_tokens == INPUT_TOKENS
    assert len(capture.spans()) == 1  # finished by the stream's terminal event, not by a poll
    with client.responses.stream(response_id=queued.id) as again:  # resumed twice, polled after
        assert [e.type for e in again][-1] == "response.completed"
    assert client.responses.retrieve(queued.id).status == "completed"
    assert_one_reported_span(capture, queued.id)


@pytest.mark.anyio
async def test_async_stream_resume(capture: Capture, server: FakeOpenAI, aclient: openai.AsyncOpenAI) -> None:
    queued = await acreate(aclient)
    async with aclient.responses.stream(response_id=queued.id) as stream:
        async for _ in stream:
            pass
    assert len(capture.spans()) == 1
    await aclient.responses.retrieve(queued.id)
    assert_one_reported_span(capture, queued.id)


def test_resume_stopped_before_the_terminal_event_leaves_the_call_to_the_next_poll(
    capture: Capture, server: FakeOpenAI, client: openai.OpenAI
) -> None:
    queued = create(client)
    with client.responses.stream(response_id=queued.id) as stream:
        for event in stream:
            if event.type == "response.in_progress":
                break
    assert capture.spans() == []  # the response is still running for all we saw
    done, _ = poll(client, client.responses.retrieve(queued.id))
    assert done.status == "completed"
    assert_one_reported_span(capture, queued.id)


def test_background_stream_create_then_resume_counts_once(
    capture: Capture, server: FakeOpenAI, client: openai.OpenAI
) -> None:
    with spendscope.attributes(**ATTRIBUTION):
        events = list(
            client.responses.create(model="gpt-4o-mini", input=PROMPT, background=True, stream=True)
        )
    response_id = events[-1].response.id  # type: ignore[union-attr]
    with client.responses.stream(response_id=response_id, starting_after=5) as stream:
        resumed = [event.sequence_number for event in stream]
    assert resumed[0] == 6 and resumed[-1] == len(events) - 1
    client.responses.retrieve(response_id)
    assert_one_reported_span(capture, response_id)  # the create's stream span, counted once


@pytest.mark.parametrize("resume", [False, True], ids=["then-polled", "then-resumed"])
def test_background_stream_broken_before_usage_is_finished_by_the_next_poll_or_resume(
    capture: Capture, server: FakeOpenAI, client: openai.OpenAI, resume: bool
) -> None:
    with spendscope.attributes(**ATTRIBUTION):
        stream = client.responses.create(model="gpt-4o-mini", input=PROMPT, background=True, stream=True)
        for event in stream:
            if event.type == "response.in_progress":
                response_id = event.response.id
                break
        stream.close()
    del stream
    assert capture.spans() == []  # the response runs on at OpenAI: its call waits for the usage
    assert response_id in pending()
    if resume:
        with client.responses.stream(response_id=response_id, starting_after=2) as resumed:
            assert [e.type for e in resumed][-1] == "response.completed"
    else:
        poll(client, client.responses.retrieve(response_id))
    attrs = assert_one_reported_span(capture, response_id)
    assert attrs[n.REQUEST_STREAM] is True  # the create's own span, finished once


def test_raw_and_streaming_response_variants(
    capture: Capture, server: FakeOpenAI, client: openai.OpenAI
) -> None:
    with spendscope.attributes(**ATTRIBUTION):
        raw = client.responses.with_raw_response.create(model="gpt-4o-mini", input=PROMPT, background=True)
    queued = raw.parse()
    assert client.responses.with_raw_response.retrieve(queued.id).parse().status == "in_progress"
    assert client.responses.with_raw_response.retrieve(queued.id).parse().status == "completed"
    assert_one_reported_span(capture, queued.id)

    with (
        spendscope.attributes(**ATTRIBUTION),
        client.responses.with_streaming_response.create(
            model="gpt-4o-mini", input=PROMPT, background=True
        ) as streamed,
    ):
        second = streamed.parse()
    assert len(capture.spans()) == 1  # closing the create's body did not finish the pending call
    for _ in range(2):
        with client.responses.with_streaming_response.retrieve(second.id) as polled:
            polled.parse()
    spans = capture.spans()
    assert [dict(s.attributes or {})[n.RESPONSE_ID] for s in spans] == [queued.id, second.id]
    assert dict(spans[1].attributes or {})[n.USAGE_INPUT_TOKENS] == INPUT_TOKENS


def test_pending_calls_are_finished_unavailable_at_uninstrument(
    capture: Capture, server: FakeOpenAI, client: openai.OpenAI
) -> None:
    queued = create(client)
    assert capture.spans() == []
    spendscope.uninstrument_openai()
    attrs = capture.attrs()
    assert attrs[n.USAGE_STATE] == "unavailable" and attrs[n.RESPONSE_ID] == queued.id
    assert capture.total(n.METRIC_USAGE_UNAVAILABLE, endpoint="novel-writer") == 1
    poll(client, queued)
    assert len(capture.spans()) == 1 and len(pending()) == 0


def test_an_evicted_call_is_finished_unavailable_and_never_counted_again(
    server: FakeOpenAI, client: openai.OpenAI
) -> None:
    capture = make_capture()
    instrumentation = Instrumentation(pending_limit=2)  # a registry of its own, with room for two calls
    instrumentation.instrument(tracer_provider=capture.tracer_provider, meter_provider=capture.meter_provider)
    try:
        first, second, third = (create(client) for _ in range(3))
        [evicted] = capture.spans()
        assert dict(evicted.attributes or {})[n.RESPONSE_ID] == first.id
        assert dict(evicted.attributes or {})[n.USAGE_STATE] == "unavailable"
        assert len(instrumentation.pending) == 2
        for response in (first, second, third):
            poll(client, response)
    finally:
        instrumentation.uninstrument()
    states = {
        dict(s.attributes or {})[n.RESPONSE_ID]: dict(s.attributes or {})[n.USAGE_STATE]
        for s in capture.spans()
    }
    assert states == {first.id: "unavailable", second.id: "reported", third.id: "reported"}
    assert len(capture.spans()) == 3 and len(instrumentation.pending) == 0
    assert capture.total(n.METRIC_TOKENS, type="input") == 2 * INPUT_TOKENS


def test_responses_this_process_did_not_create_in_the_background_record_nothing(
    capture: Capture, server: FakeOpenAI, client: openai.OpenAI
) -> None:
    # Created by "another process": straight over HTTP, not through an instrumented client.
    posted = httpx2.post(
        f"{server.base_url}/responses",
        headers={"authorization": f"Bearer {API_KEY}", "openai-project": PROJECT},
        json={"model": "gpt-4o-mini", "input": PROMPT, "background": True},
    ).json()
    assert posted["status"] == "queued"
    poll(client, client.responses.retrieve(posted["id"]))
    with client.responses.stream(response_id=posted["id"]) as stream:
        stream.until_done()
    client.responses.cancel(posted["id"])
    assert capture.spans() == []
    plain = client.responses.create(model="gpt-4o-mini", input=PROMPT)  # not background: recorded at once
    assert client.responses.retrieve(plain.id).status == "completed"
    assert len(capture.spans()) == 1
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve("resp_unknown")
    assert len(capture.spans()) == 1


def test_a_failure_while_finishing_never_breaks_the_poll(
    capture: Capture,
    server: FakeOpenAI,
    client: openai.OpenAI,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class BrokenPricer:
        def price(self, *args: Any, **kwargs: Any) -> None:
            raise RuntimeError("pricing exploded")

    for telemetry in default_instrumentation().telemetries.values():
        monkeypatch.setattr(telemetry, "pricer", BrokenPricer())
        monkeypatch.setattr(telemetry, "raise_internal_errors", False)  # production behaviour
    queued = create(client)
    done, _ = poll(client, queued)
    assert done.status == "completed" and done.usage is not None
    assert capture.total(n.METRIC_INSTRUMENTATION_ERRORS, where="finish") == 1
    assert len(capture.spans()) == 1 and len(pending()) == 0


_EXIT_SCRIPT = """
import openai
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor
import spendscope
from spendscope.demo.fake_openai import FakeOpenAI

tracer_provider = TracerProvider()
tracer_provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
spendscope.instrument_openai(tracer_provider=tracer_provider, meter_provider=MeterProvider())
with FakeOpenAI() as server:
    client = openai.OpenAI(api_key="sk-proj-exit0000000000000000000000", base_url=server.base_url)
    queued = client.responses.create(model="gpt-4o-mini", input="hi", background=True)
print(queued.id, queued.status, flush=True)  # before the exit hooks run
"""


def test_a_call_still_pending_at_interpreter_exit_is_finished_unavailable() -> None:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_EXIT_SCRIPT)],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    first_line, printed_at_exit = done.stdout.split("\n", 1)
    response_id, status = first_line.split()
    assert status == "queued"
    span = json.loads(printed_at_exit)  # printed by the exporter when the exit hook finished the call
    assert span["attributes"][n.RESPONSE_ID] == response_id
    assert span["attributes"][n.USAGE_STATE] == "unavailable"


# --- the fake server's wire format ------------------------------------------------------------------


def test_fake_server_background_schedule_cancel_stream_and_errors(server: FakeOpenAI) -> None:
    headers = {"authorization": f"Bearer {API_KEY}"}
    with httpx2.Client(base_url=server.base_url, headers=headers) as http:
        body = {"model": "gpt-4o-mini", "input": PROMPT}
        plain = http.post("/responses", json=body).json()
        queued = http.post("/responses", json=body | {"background": True}).json()
        assert (queued["status"], queued["background"], queued["usage"]) == ("queued", True, None)
        url = f"/responses/{queued['id']}"
        statuses = [http.get(url).json() for _ in range(3)]
        assert [r["status"] for r in statuses] == ["in_progress", "completed", "completed"]
        assert statuses[0]["usage"] is None
        assert statuses[1]["usage"] == plain["usage"]  # what a plain request reports
        assert http.post(f"{url}/cancel").json()["status"] == "completed"  # finished: unchanged

        stream = http.get(url, params={"stream": "true", "starting_after": "11"})
        assert stream.headers["content-type"].startswith("text/event-stream")
        names = [
            line.removeprefix("event: ") for line in stream.text.splitlines() if line.startswith("event:")
        ]
        assert names == ["response.content_part.done", "response.output_item.done", "response.completed"]

        other = http.post("/responses", json=body | {"background": True}).json()
        cancelled = http.post(f"/responses/{other['id']}/cancel").json()
        assert (cancelled["status"], cancelled["usage"]) == ("cancelled", None)
        assert http.get(f"/responses/{other['id']}").json()["status"] == "cancelled"

        assert http.get(f"/responses/{plain['id']}").json() == plain
        refused = http.post(f"/responses/{plain['id']}/cancel")
        assert refused.status_code == 400 and "background" in refused.json()["error"]["message"]
        missing = http.get("/responses/resp_missing")
        assert missing.status_code == 404
        assert missing.json()["error"]["message"] == "Response with id 'resp_missing' not found."
        assert http.delete(url).json() == {"id": queued["id"], "object": "response.deleted", "deleted": True}
        assert http.get(url).status_code == 404
