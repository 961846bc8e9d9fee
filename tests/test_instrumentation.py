"""Every OpenAI call path, sync and async, through the real openai client and the fake server."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import io
import logging
import wave
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import openai
import pytest
from pydantic import BaseModel

import spendscope
from spendscope import names as n
from spendscope.demo.fake_openai import FakeOpenAI, Reply
from tests.conftest import API_KEY, PROJECT, Capture, make_capture, make_client
from tests.helpers import PRICE_VERSION, chat_body, chat_sse, mini_cost

CHAT = "/v1/chat/completions"
MESSAGES = [{"role": "user", "content": "Say this is a test"}]


def test_chat_create_records_one_span_with_exact_tokens_cost_and_attribution(
    capture: Capture, server: FakeOpenAI, client: openai.OpenAI
) -> None:
    server.enqueue(CHAT, Reply(json=chat_body(19, 10)))
    with spendscope.attributes(user="u-42", endpoint="cv-parsing", tenant="acme", job_id="J-7"):
        result = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert result.usage is not None and result.usage.total_tokens == 29
    span = capture.span()
    assert span.name == "chat gpt-4o-mini"
    assert span.kind.name == "CLIENT"
    attrs = capture.attrs()
    assert attrs == {
        n.OPERATION_NAME: "chat",
        n.PROVIDER_NAME: "openai",
        n.REQUEST_MODEL: "gpt-4o-mini",
        n.OPENAI_API_TYPE: "chat_completions",
        n.SERVER_ADDRESS: "127.0.0.1",
        n.SERVER_PORT: int(server.base_url.split(":")[2].split("/")[0]),
        n.OPENAI_PROJECT: PROJECT,
        n.OPENAI_API_KEY_REDACTED: "sk-proj-...wxyz",
        n.USER_ID: "u-42",
        n.ENDPOINT: "cv-parsing",
        n.TENANT: "acme",
        "spendscope.attr.job_id": "J-7",
        n.RESPONSE_MODEL: "gpt-4o-mini-2024-07-18",
        n.RESPONSE_ID: "chatcmpl-test123",
        n.OPENAI_RESPONSE_SERVICE_TIER: "default",
        n.USAGE_INPUT_TOKENS: 19,
        n.USAGE_OUTPUT_TOKENS: 10,
        n.USAGE_CACHE_READ_INPUT_TOKENS: 0,
        n.USAGE_REASONING_OUTPUT_TOKENS: 0,
        n.USAGE_STATE: "reported",
        n.COST_USD: "0.00000885",
        n.PRICE_VERSION: PRICE_VERSION,
    }
    assert API_KEY not in str(attrs)
    labels = {
        "model": "gpt-4o-mini-2024-07-18",
        "operation": "chat",
        "endpoint": "cv-parsing",
        "tenant": "acme",
        "service": "test-app",
    }
    assert capture.total(n.METRIC_COST, user="u-42", **labels) == pytest.approx(0.00000885, abs=1e-15)
    assert capture.total(n.METRIC_TOKENS, type="input", **labels) == 19
    assert capture.total(n.METRIC_TOKENS, type="output", **labels) == 10
    token_usage = {a[n.TOKEN_TYPE]: p.sum for a, p in capture.points(n.METRIC_TOKEN_USAGE)}
    assert token_usage == {"input": 19, "output": 10}
    [(duration_attrs, duration)] = capture.points(n.METRIC_OPERATION_DURATION)
    assert duration.count == 1 and list(duration.explicit_bounds) == list(n.DURATION_BUCKETS)
    assert duration_attrs == {
        n.OPERATION_NAME: "chat",
        n.PROVIDER_NAME: "openai",
        n.REQUEST_MODEL: "gpt-4o-mini",
        n.RESPONSE_MODEL: "gpt-4o-mini-2024-07-18",
    }


def test_cached_and_reasoning_tokens_are_captured_and_priced(
    capture: Capture, server: FakeOpenAI, client: openai.OpenAI
) -> None:
    server.enqueue(CHAT, Reply(json=chat_body(1149, 353, cached=1024, reasoning=100)))
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    attrs = capture.attrs()
    assert attrs[n.USAGE_CACHE_READ_INPUT_TOKENS] == 1024
    assert attrs[n.USAGE_REASONING_OUTPUT_TOKENS] == 100
    assert float(attrs[n.COST_USD]) == pytest.approx(mini_cost(1149, 353, cached=1024), rel=1e-12)
    assert capture.total(n.METRIC_TOKENS, type="cached_input") == 1024
    assert capture.total(n.METRIC_TOKENS, type="reasoning") == 100


def test_service_tier_the_response_reports_prices_the_call(
    capture: Capture, server: FakeOpenAI, client: openai.OpenAI
) -> None:
    server.enqueue(CHAT, Reply(json=chat_body(1_000_000, 1_000_000, model="gpt-5-2025-08-07", tier="flex")))
    client.chat.completions.create(model="gpt-5", messages=MESSAGES, service_tier="auto")
    attrs = capture.attrs()
    assert attrs[n.OPENAI_RESPONSE_SERVICE_TIER] == "flex"
    assert n.OPENAI_REQUEST_SERVICE_TIER not in attrs  # "auto" is not recorded, per semconv
    assert float(attrs[n.COST_USD]) == 5.625  # gpt-5 flex: $0.625 in + $5 out per 1M


@pytest.mark.anyio
async def test_async_chat_create(capture: Capture, server: FakeOpenAI, aclient: openai.AsyncOpenAI) -> None:
    server.enqueue(CHAT, Reply(json=chat_body(19, 10)))
    with spendscope.attributes(user="async-user"):
        await aclient.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    attrs = capture.attrs()
    assert (attrs[n.USAGE_INPUT_TOKENS], attrs[n.USAGE_OUTPUT_TOKENS], float(attrs[n.COST_USD])) == (
        19,
        10,
        0.00000885,
    )
    assert attrs[n.USER_ID] == "async-user"


def test_stream_usage_is_requested_and_the_extra_chunk_hidden(
    capture: Capture, server: FakeOpenAI, client: openai.OpenAI
) -> None:
    server.enqueue(CHAT, Reply(sse=chat_sse(19, 10)))
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    assert isinstance(stream, openai.Stream)
    text = "".join(
        chunk.choices[0].delta.content or "" for chunk in stream
    )  # would IndexError on usage chunk
    assert text == "Hello!"
    assert server.requests[-1].json["stream_options"] == {"include_usage": True}
    attrs = capture.attrs()
    assert (attrs[n.USAGE_INPUT_TOKENS], attrs[n.USAGE_OUTPUT_TOKENS]) == (19, 10)
    assert attrs[n.USAGE_STATE] == "reported" and float(attrs[n.COST_USD]) == 0.00000885
    assert attrs[n.REQUEST_STREAM] is True and attrs[n.RESPONSE_TIME_TO_FIRST_CHUNK] > 0


def test_stream_where_caller_asked_for_usage_keeps_the_usage_chunk(
    capture: Capture, server: FakeOpenAI, client: openai.OpenAI
) -> None:
    server.enqueue(CHAT, Reply(sse=chat_sse(19, 10)))
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[-1].choices == [] and chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 29
    assert capture.attrs()[n.USAGE_INPUT_TOKENS] == 19


def _count_sdk_chunk_models(client: openai.OpenAI, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every payload the SDK turns into a model (a spy on the client, which still does the work)."""
    built: list[Any] = []
    process = client._process_response_data

    def spy(*, data: Any, **kwargs: Any) -> Any:
        built.append(data)
        return process(data=data, **kwargs)

    monkeypatch.setattr(client, "_process_response_data", spy)
    return built


def test_injected_usage_chunk_is_read_from_its_json_and_never_built_by_the_sdk(
    capture: Capture, server: FakeOpenAI, client: openai.OpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    built = _count_sdk_chunk_models(client, monkeypatch)
    server.enqueue(CHAT, Reply(sse=chat_sse(19, 10, cached=6)))
    chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True))
    assert len(chunks) == len(built) == 4 and all(b["choices"] for b in built)
    attrs = capture.attrs()
    assert (attrs[n.USAGE_INPUT_TOKENS], attrs[n.USAGE_CACHE_READ_INPUT_TOKENS]) == (19, 6)
    assert attrs[n.RESPONSE_ID] == "chatcmpl-stream1" and float(attrs[n.COST_USD]) == mini_cost(
        19, 10, cached=6
    )


def test_usage_is_asked_for_beside_the_callers_extra_body(
    capture: Capture, server: FakeOpenAI, client: openai.OpenAI
) -> None:
    server.enqueue(CHAT, Reply(sse=chat_sse(19, 10)))
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True, extra_body={"user": "u-1"}
        )
    )
    sent = server.requests[-1].json
    assert sent["user"] == "u-1" and sent["stream_options"] == {"include_usage": True}
    assert all(chunk.choices for chunk in chunks) and capture.attrs()[n.USAGE_INPUT_TOKENS] == 19


@pytest.mark.parametrize(
    ("kwargs", "sent"),
    [
        (
            {"stream_options": {"include_obfuscation": False}},
            {"include_obfuscation": False, "include_usage": True},
        ),
        (
            {"extra_body": {"stream_options": {"include_obfuscation": False}}},
            {"include_obfuscation": False, "include_usage": True},
        ),
    ],
)
def test_usage_is_added_to_the_callers_stream_options(
    capture: Capture, server: FakeOpenAI, client: openai.OpenAI, kwargs: dict[str, Any], sent: dict[str, Any]
) -> None:
    server.enqueue(CHAT, Reply(sse=chat_sse(19, 10)))
    chunks = list(
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True, **kwargs)
    )
    assert server.requests[-1].json["stream_options"] == sent
    assert all(chunk.choices for chunk in chunks) and capture.attrs()[n.USAGE_INPUT_TOKENS] == 19


def test_include_usage_in_the_callers_extra_body_keeps_the_usage_chunk(
    capture: Capture, server: FakeOpenAI, client: openai.OpenAI
) -> None:
    server.enqueue(CHAT, Reply(sse=chat_sse(19, 10)))
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=MESSAGES,
            stream=True,
            extra_body={"stream_options": {"include_usage": True}},
        )
    )
    assert chunks[-1].choices == [] and chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 29
    assert capture.attrs()[n.USAGE_INPUT_TOKENS] == 19


def test_stream_against_default_server_gets_real_usage(
    capture: Capture, server: FakeOpenAI, client: openai.OpenAI
) -> None:
    chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True))
    assert all(chunk.choices for chunk in chunks)
    # The same request without streaming tells what usage the server computes for it.
    plain = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert plain.usage is not None
    streamed, _ = capture.spans()
    attrs = dict(streamed.attributes or {})
    assert attrs[n.USAGE_INPUT_TOKENS] == plain.usage.prompt_tokens
    assert attrs[n.USAGE_OUTPUT_TOKENS] == plain.usage.completion_tokens
    assert float(attrs[n.COST_USD]) == pytest.approx(
        mini_cost(plain.usage.prompt_tokens, plain.usage.completion_tokens)
    )


def test_stream_closed_early_is_unavailable_not_zero(
    capture: Capture, server: FakeOpenAI, client: openai.OpenAI
) -> None:
    server.enqueue(CHAT, Reply(sse=chat_sse(19, 10)))
    with client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True) as stream:
        next(iter(stream))
    attrs = capture.attrs()
    assert attrs[n.USAGE_STATE] == "unavailable"
    assert n.USAGE_INPUT_TOKENS not in attrs and n.COST_USD not in attrs
    assert capture.total(n.METRIC_USAGE_UNAVAILABLE, model="gpt-4o-mini-2024-07-18") == 1
    assert capture.points(n.METRIC_TOKENS) == [] and capture.points(n.METRIC_COST) == []


def test_stream_abandoned_without_close_is_finished_when_collected(
    capture: Capture, server: FakeOpenAI, client: openai.OpenAI
) -> None:
    server.enqueue(CHAT, Reply(sse=chat_sse(19, 10)))
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    next(iter(stream))
    assert capture.spans() == []
    del stream
    gc.collect()
    assert capture.attrs()[n.USAGE_STATE] == "unavailable"
    assert capture.total(n.METRIC_USAGE_UNAVAILABLE) == 1


def test_stream_broken_mid_way_raises_and_is_recorded_unavailable(
    capture: Capture, server: FakeOpenAI, client: openai.OpenAI
) -> None:
    server.enqueue(CHAT, Reply(sse=chat_sse(19, 10), break_after_events=2))
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    with pytest.raises(openai.APIConnectionError):
        list(stream)
    attrs = capture.attrs()
    assert attrs[n.USAGE_STATE] == "unavailable"
    assert attrs[n.ERROR_TYPE] == "APIConnectionError"
    assert capture.span().status.status_code.name == "ERROR"
    assert capture.total(n.METRIC_USAGE_UNAVAILABLE) == 1


@pytest.mark.anyio
async def test_async_stream_and_early_close(
    capture: Capture, server: FakeOpenAI, aclient: openai.AsyncOpenAI
) -> None:
    server.enqueue(CHAT, Reply(sse=chat_sse(19, 10)))
    server.enqueue(CHAT, Reply(sse=chat_sse(19, 10)))
    stream = await aclient.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    chunks = [chunk async for chunk in stream]
    assert len(chunks) == 4 and all(c.choices for c in chunks)
    async with await aclient.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True
    ) as s2:
        await s2.__anext__()
    full, early = sorted(capture.spans(), key=lambda s: s.start_time or 0)
    assert dict(full.attributes or {})[n.USAGE_INPUT_TOKENS] == 19
    assert dict(early.attributes or {})[n.USAGE_STATE] == "unavailable"


def test_chat_stream_helper(capture: Capture, server: FakeOpenAI, client: openai.OpenAI) -> None:
    server.enqueue(CHAT, Reply(sse=chat_sse(19, 10)))
    with client.chat.completions.stream(model="gpt-4o-mini", messages=MESSAGES) as stream:
        for _ in stream:
            pass
        final = stream.get_final_completion()
    assert final.choices[0].message.content == "Hello!"
    assert float(capture.attrs()[n.COST_USD]) == 0.00000885


class Verdict(BaseModel):
    answer: str
    score: int


def test_chat_parse_is_recorded(capture: Capture, server: FakeOpenAI, client: openai.OpenAI) -> None:
    result = client.chat.completions.parse(model="gpt-4o-mini", messages=MESSAGES, response_format=Verdict)
    assert isinstance(result.choices[0].message.parsed, Verdict)
    assert result.usage is not None
    attrs = capture.attrs()
    assert attrs[n.USAGE_INPUT_TOKENS] == result.usage.prompt_tokens
    assert float(attrs[n.COST_USD]) == pytest.approx(
        mini_cost(result.usage.prompt_tokens, result.usage.completion_tokens)
    )


@pytest.mark.anyio
async def test_async_chat_parse_and_stream_helper(
    capture: Capture, server: FakeOpenAI, aclient: openai.AsyncOpenAI
) -> None:
    await aclient.chat.completions.parse(model="gpt-4o-mini", messages=MESSAGES, response_format=Verdict)
    async with aclient.chat.completions.stream(model="gpt-4o-mini", messages=MESSAGES) as stream:
        async for _ in stream:
            pass
    assert [dict(s.attributes or {})[n.USAGE_STATE] for s in capture.spans()] == ["reported", "reported"]


def test_responses_create_stream_helper_and_parse(
    capture: Capture, server: FakeOpenAI, client: openai.OpenAI
) -> None:
    plain = client.responses.create(model="gpt-4o-mini", input="Say this is a test")
    events = list(client.responses.create(model="gpt-4o-mini", input="Say this is a test", stream=True))
    with client.responses.stream(model="gpt-4o-mini", input="Say this is a test") as stream:
        for _ in stream:
            pass
        final = stream.get_final_response()
    parsed = client.responses.parse(model="gpt-4o-mini", input="Grade this", text_format=Verdict)
    assert isinstance(parsed.output_parsed, Verdict)
    assert events[-1].type == "response.completed"
    spans = capture.spans()
    assert len(spans) == 4
    for span, response in zip(spans, (plain, events[-1].response, final, parsed), strict=True):
        attrs = dict(span.attributes or {})
        assert response.usage is not None
        assert attrs[n.OPENAI_API_TYPE] == "responses"
        assert attrs[n.RESPONSE_ID] == response.id
        assert (attrs[n.USAGE_INPUT_TOKENS], attrs[n.USAGE_OUTPUT_TOKENS]) == (
            response.usage.input_tokens,
            response.usage.output_tokens,
        )
        assert float(attrs[n.COST_USD]) == pytest.approx(
            mini_cost(response.usage.input_tokens, response.usage.output_tokens)
        )


@pytest.mark.parametrize("forced", [False, True], ids=["text", "function-call"])
def test_responses_stream_times_its_first_output_whatever_it_is(
    forced: bool, capture: Capture, server: FakeOpenAI, client: openai.OpenAI
) -> None:
    tool = {"type": "function", "name": "lookup", "parameters": {"type": "object", "properties": {}}}
    tools: Any = {"tools": [tool], "tool_choice": "required"} if forced else {}
    events = list(
        client.responses.create(model="gpt-4o-mini", input="Say this is a test", stream=True, **tools)
    )
    kinds = {e.type for e in events}
    assert ("response.output_text.delta" not in kinds) is forced  # a function call streams no text
    span = capture.span()
    attrs = dict(span.attributes or {})
    assert span.start_time is not None and span.end_time is not None
    assert 0 < attrs[n.RESPONSE_TIME_TO_FIRST_CHUNK] <= (span.end_time - span.start_time) / 1e9


@pytest.mark.anyio
async def test_async_responses(capture: Capture, server: FakeOpenAI, aclient: openai.AsyncOpenAI) -> None:
    await aclient.responses.create(model="gpt-4o-mini", input="hi")
    stream = await aclient.responses.create(model="gpt-4o-mini", input="hi", stream=True)
    async for _ in stream:
        pass
    await aclient.responses.parse(model="gpt-4o-mini", input="hi", text_format=Verdict)
    assert [dict(s.attributes or {})[n.USAGE_STATE] for s in capture.spans()] == ["reported"] * 3


def test_embeddings_base64_default_and_float(
    capture: Capture, server: FakeOpenAI, client: openai.OpenAI
) -> None:
    first = client.embeddings.create(model="text-embedding-3-small", input=["hello world", "second input"])
    client.embeddings.create(model="text-embedding-3-small", input="x", encoding_format="float")
    span = capture.spans()[0]
    attrs = dict(span.attributes or {})
    assert span.name == "embeddings text-embedding-3-small"
    assert attrs[n.OPERATION_NAME] == "embeddings"
    assert attrs[n.USAGE_INPUT_TOKENS] == first.usage.prompt_tokens and attrs[n.USAGE_OUTPUT_TOKENS] == 0
    assert float(attrs[n.COST_USD]) == pytest.approx(first.usage.prompt_tokens * 0.02 / 1e6)  # $0.02 per 1M
    assert len(capture.spans()) == 2


def _wav(seconds: float) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16_000)
        w.writeframes(b"\0\0" * int(16_000 * seconds))
    return buffer.getvalue()


def test_transcriptions_duration_and_token_billed(
    capture: Capture, server: FakeOpenAI, client: openai.OpenAI
) -> None:
    whisper = client.audio.transcriptions.create(model="whisper-1", file=("a.wav", _wav(6.0)))
    tokens = client.audio.transcriptions.create(model="gpt-4o-transcribe", file=("a.wav", _wav(2.0)))
    assert whisper.usage is not None and whisper.usage.type == "duration"
    w_span, t_span = capture.spans()
    w, t = dict(w_span.attributes or {}), dict(t_span.attributes or {})
    assert w[n.OPERATION_NAME] == "transcription" and w[n.USAGE_AUDIO_SECONDS] == 6.0
    assert float(w[n.COST_USD]) == pytest.approx(6 * 0.006 / 60)  # whisper-1: $0.006 per minute
    assert tokens.usage is not None and tokens.usage.type == "tokens"
    audio_in = tokens.usage.input_token_details.audio_tokens  # type: ignore[union-attr]
    assert t[n.USAGE_AUDIO_INPUT_TOKENS] == audio_in
    # gpt-4o-transcribe: audio in $6, text in $2.50, text out $10 per 1M
    expected = (
        audio_in * 6 + (tokens.usage.input_tokens - audio_in) * 2.5 + tokens.usage.output_tokens * 10
    ) / 1e6
    assert float(t[n.COST_USD]) == pytest.approx(expected)


def test_legacy_completions(capture: Capture, server: FakeOpenAI, client: openai.OpenAI) -> None:
    result = client.completions.create(model="gpt-3.5-turbo-instruct", prompt="Say this is a test")
    assert result.usage is not None
    attrs = capture.attrs()
    assert attrs[n.OPERATION_NAME] == "text_completion"
    assert attrs[n.USAGE_INPUT_TOKENS] == result.usage.prompt_tokens


def test_with_raw_response_and_with_streaming_response(
    capture: Capture, server: FakeOpenAI, client: openai.OpenAI
) -> None:
    server.enqueue(CHAT, Reply(json=chat_body(19, 10)))
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES)
    assert raw.headers.get("x-request-id") and raw.parse().usage.total_tokens == 29  # type: ignore[union-attr]
    server.enqueue(CHAT, Reply(sse=chat_sse(19, 10)))
    raw_stream = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True
    )
    assert all(chunk.choices for chunk in raw_stream.parse())
    server.enqueue(CHAT, Reply(json=chat_body(19, 10)))
    with client.chat.completions.with_streaming_response.create(
        model="gpt-4o-mini", messages=MESSAGES
    ) as resp:
        assert resp.parse().usage.total_tokens == 29  # type: ignore[union-attr]
    costs = [dict(s.attributes or {}).get(n.COST_USD) for s in capture.spans()]
    assert costs == ["0.00000885"] * 3


@pytest.mark.parametrize(
    ("model", "reply", "exception", "status"),
    [
        ("this-model-does-not-exist", None, openai.NotFoundError, 404),
        (
            "gpt-4o-mini",
            Reply(
                status=429,
                json={
                    "error": {
                        "message": "Rate limit",
                        "type": "requests",
                        "param": None,
                        "code": "rate_limit_exceeded",
                    }
                },
            ),
            openai.RateLimitError,
            429,
        ),
        (
            "gpt-4o-mini",
            Reply(
                status=500,
                json={"error": {"message": "boom", "type": "server_error", "param": None, "code": None}},
            ),
            openai.InternalServerError,
            500,
        ),
    ],
)
def test_errors_reraised_unchanged_with_error_span_and_no_cost(
    capture: Capture,
    server: FakeOpenAI,
    client: openai.OpenAI,
    model: str,
    reply: Reply | None,
    exception: type[Exception],
    status: int,
) -> None:
    if reply is not None:
        server.enqueue(CHAT, reply)
    with pytest.raises(exception) as info:
        client.chat.completions.create(model=model, messages=MESSAGES)
    assert type(info.value) is exception and info.value.status_code == status  # type: ignore[attr-defined]
    span = capture.span()
    attrs = dict(span.attributes or {})
    assert attrs[n.ERROR_TYPE] == exception.__name__ and attrs[n.HTTP_RESPONSE_STATUS_CODE] == status
    assert span.status.status_code.name == "ERROR"
    assert n.COST_USD not in attrs and attrs[n.USAGE_STATE] == "unavailable"
    assert capture.points(n.METRIC_COST) == [] and capture.points(n.METRIC_USAGE_UNAVAILABLE) == []
    [(duration_attrs, _)] = capture.points(n.METRIC_OPERATION_DURATION)
    assert duration_attrs[n.ERROR_TYPE] == exception.__name__


def test_timeout_is_an_error_span(capture: Capture, server: FakeOpenAI) -> None:
    server.enqueue(CHAT, Reply(json=chat_body(), delay=1.0))
    with make_client(server, timeout=0.2) as client, pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert capture.attrs()[n.ERROR_TYPE] == "APITimeoutError"


def test_unknown_model_price_is_unknown_not_zero(
    capture: Capture, server: FakeOpenAI, client: openai.OpenAI
) -> None:
    server.enqueue(CHAT, Reply(json=chat_body(100, 50, model="acme-private-llm")))
    client.chat.completions.create(model="acme-private-llm", messages=MESSAGES)
    attrs = capture.attrs()
    assert n.COST_USD not in attrs and n.PRICE_VERSION not in attrs
    assert attrs[n.USAGE_INPUT_TOKENS] == 100 and attrs[n.USAGE_STATE] == "reported"
    assert capture.total(n.METRIC_UNPRICED_TOKENS, model="acme-private-llm") == 150
    assert capture.points(n.METRIC_COST) == []
    assert capture.total(n.METRIC_TOKENS, type="input") == 100


def test_uninstrument_restores_the_sdk_and_stops_recording(server: FakeOpenAI, client: openai.OpenAI) -> None:
    from openai.resources.chat.completions import Completions

    original = Completions.create
    cap = make_capture()
    spendscope.instrument_openai(tracer_provider=cap.tracer_provider, meter_provider=cap.meter_provider)
    spendscope.instrument_openai(
        tracer_provider=cap.tracer_provider, meter_provider=cap.meter_provider
    )  # idempotent
    assert Completions.create is not original
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert len(cap.spans()) == 1  # not two: instrumenting twice changed nothing
    spendscope.uninstrument_openai()
    assert Completions.create is original
    client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert len(cap.spans()) == 1


def test_one_client_instrumented_alone(server: FakeOpenAI) -> None:
    cap = make_capture()
    watched, other = make_client(server), make_client(server)
    spendscope.instrument_openai(
        watched, tracer_provider=cap.tracer_provider, meter_provider=cap.meter_provider
    )
    try:
        watched.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        other.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        assert len(cap.spans()) == 1
        spendscope.uninstrument_openai(watched)
        watched.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        assert len(cap.spans()) == 1
    finally:
        spendscope.uninstrument_openai()
        watched.close()
        other.close()


def test_attribution_across_threads_and_tasks(
    capture: Capture, server: FakeOpenAI, client: openai.OpenAI
) -> None:
    def call(user: str) -> None:
        with spendscope.attributes(user=user):
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

    with spendscope.attributes(tenant="acme"), ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(contextvars.copy_context().run, call, f"user-{i}") for i in range(8)]
        for f in futures:
            f.result()
    seen = sorted(
        (dict(s.attributes or {})[n.USER_ID], dict(s.attributes or {})[n.TENANT]) for s in capture.spans()
    )
    assert seen == sorted((f"user-{i}", "acme") for i in range(8))


@pytest.mark.anyio
async def test_attribution_in_concurrent_tasks(
    capture: Capture, server: FakeOpenAI, aclient: openai.AsyncOpenAI
) -> None:
    async def call(user: str) -> None:
        with spendscope.attributes(user=user, endpoint="analyze_homework"):
            await aclient.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

    await asyncio.gather(*(call(f"student-{i}") for i in range(6)))
    assert sorted(dict(s.attributes or {})[n.USER_ID] for s in capture.spans()) == [
        f"student-{i}" for i in range(6)
    ]


def test_user_label_cap_sends_overflow_to_other(server: FakeOpenAI, client: openai.OpenAI) -> None:
    from spendscope.instrumentation import Options, instrument

    cap = make_capture()
    options = Options.resolve(user_label_limit=2)
    instrument(None, tracer_provider=cap.tracer_provider, meter_provider=cap.meter_provider, options=options)
    try:
        for user in ("a", "b", "c", "d", "a"):
            with spendscope.attributes(user=user):
                client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    finally:
        spendscope.uninstrument_openai()
    users = {attrs["user"] for attrs, _ in cap.points(n.METRIC_COST)}
    assert users == {"a", "b", "__other__"}
    assert cap.total(n.METRIC_USER_LABEL_OVERFLOW) == 2
    # spans keep the real user: per-user truth is not capped
    assert sorted(dict(s.attributes or {})[n.USER_ID] for s in cap.spans()) == ["a", "a", "b", "c", "d"]


class _BrokenPricer:
    def price(self, *args: Any, **kwargs: Any) -> None:
        raise RuntimeError("pricing exploded")


def test_internal_failure_never_breaks_the_call(
    capture: Capture,
    server: FakeOpenAI,
    client: openai.OpenAI,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from spendscope.instrumentation import default_instrumentation

    for telemetry in default_instrumentation().telemetries.values():
        monkeypatch.setattr(telemetry, "pricer", _BrokenPricer())
    server.enqueue(CHAT, Reply(json=chat_body(19, 10)))
    # Under the test suite internal errors raise, so this very test would catch a swallowed bug ...
    with pytest.raises(RuntimeError, match="pricing exploded"):
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    # ... while in production they are logged once, counted, and the app gets its result untouched.
    for telemetry in default_instrumentation().telemetries.values():
        monkeypatch.setattr(telemetry, "raise_internal_errors", False)
    server.enqueue(CHAT, Reply(json=chat_body(19, 10)))
    server.enqueue(CHAT, Reply(json=chat_body(19, 10)))
    with caplog.at_level(logging.ERROR, logger="spendscope"):
        first = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        second = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert first.usage is not None and first.usage.total_tokens == 29 and second.id == "chatcmpl-test123"
    assert capture.total(n.METRIC_INSTRUMENTATION_ERRORS, where="finish") == 2
    assert len([r for r in caplog.records if "internal error in finish" in r.getMessage()]) <= 1
    assert len(capture.spans()) == 3  # every span was still ended
