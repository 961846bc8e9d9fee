"""The fake OpenAI server, driven by the real ``openai`` client (sync and async)."""

from __future__ import annotations

import base64
import inspect
import io
import json
import signal
import ssl
import struct
import subprocess
import sys
import time
import wave
from collections.abc import Iterator
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Any, Literal

import httpx2
import openai
import pydantic
import pytest
from openai import AsyncOpenAI, OpenAI
from openai.types.chat import ChatCompletionMessageParam
from openai.types.realtime import RealtimeServerEvent, RealtimeSessionCreateRequest
from openai.types.responses import ResponseCompletedEvent, ResponseCreatedEvent, ResponseInProgressEvent

import spendscope.demo.fake_openai
from spendscope.demo.fake_openai import ConformanceCase, FakeOpenAI, Reply, load_conformance, synth
from spendscope.demo.fake_openai.schema import schema_instance
from spendscope.demo.fake_openai.server import sse_text

API_KEY = "sk-proj-test-0000"
PROJECT = "proj_test"
CONFORMANCE_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "conformance" / "openai"
SAY_TEST: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "Say this is a test"}
]  # 3 + 4 + ceil(18 / 4) = 12 prompt tokens
DEFAULT_TEXT_TOKENS = 9  # ceil(len("Hello from the fake OpenAI server.") / 4)


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


# Loading CA certificates costs ~0.1 s per client; every client here shares one context.
TLS = ssl.create_default_context()


def sync_client(server: FakeOpenAI, api_key: str = API_KEY, **options: Any) -> OpenAI:
    return OpenAI(
        base_url=server.base_url,
        api_key=api_key,
        websocket_base_url=server.websocket_base_url,
        max_retries=0,
        http_client=openai.DefaultHttpxClient(verify=TLS),
        **options,
    )


def async_client(server: FakeOpenAI, **options: Any) -> AsyncOpenAI:
    return AsyncOpenAI(
        base_url=server.base_url,
        api_key=API_KEY,
        websocket_base_url=server.websocket_base_url,
        max_retries=0,
        http_client=openai.DefaultAsyncHttpxClient(verify=TLS),
        **options,
    )


@pytest.fixture
def client(server: FakeOpenAI) -> Iterator[OpenAI]:
    with sync_client(server, project=PROJECT) as sdk:
        yield sdk


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_exported_names() -> None:
    assert spendscope.demo.fake_openai.__all__ == [
        "ConformanceCase",
        "FakeOpenAI",
        "RealtimeConnect",
        "RecordedRequest",
        "Reply",
        "load_conformance",
    ]


# --- pure functions -------------------------------------------------------------------------------


def test_token_counting_rules() -> None:
    assert synth.text_tokens("") == 0
    assert synth.text_tokens("abcd") == 1
    assert synth.text_tokens("abcde") == 2
    parts = [{"type": "text", "text": "abcd"}, {"type": "image_url", "image_url": {"url": "x"}}]
    assert (
        synth.prompt_tokens([{"role": "system", "content": "abcde"}, {"role": "user", "content": parts}])
        == 14
    )
    assert synth.response_input_tokens({"input": "abcd", "instructions": "abcd"}) == 13
    assert synth.embedding_tokens(["", "abcde", [1, 2, 3]]) == [1, 2, 3]
    assert synth.embedding_tokens([5, 6]) == [2]
    assert synth.cached_tokens(1257, prompt_cache_key=True) == 1152
    assert synth.cached_tokens(1023, prompt_cache_key=True) == 0
    assert synth.cached_tokens(5000, prompt_cache_key=False) == 0
    assert synth.output_tokens("gpt-4o", 9, None) == (9, 0)
    assert synth.output_tokens("o3-mini", 9, None) == (18, 9)
    assert synth.output_tokens("gpt-5-nano", 9, 101) == (101, 50)
    assert [synth.service_tier(t) for t in (None, "auto", "fast", "flex")] == [
        "default",
        "default",
        "priority",
        "flex",
    ]
    assert synth.snapshot("gpt-4o-mini") == "gpt-4o-mini-2024-07-18"
    assert synth.snapshot("my-fine-tune") == "my-fine-tune"


def wav_bytes(seconds: float, rate: int = 16000) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(b"\0\0" * int(seconds * rate))
    return buffer.getvalue()


def test_audio_seconds_reads_wav_header_else_assumes_32kB_per_second() -> None:
    assert synth.audio_seconds(wav_bytes(1.5, rate=8000)) == 1.5
    assert synth.audio_seconds(b"\1" * 48000) == 1.5
    assert synth.audio_seconds(b"RIFF\0\0\0\0WAVEjunk") == 16 / 32000


def test_schema_instance_is_minimal_and_valid() -> None:
    schema = {
        "type": "object",
        "required": ["s", "i", "f", "b", "a", "e", "c", "t", "o", "n", "r", "when", "few"],
        "properties": {
            "s": {"type": "string"},
            "i": {"type": "integer", "minimum": 3},
            "f": {"type": "number", "exclusiveMaximum": -1},
            "b": {"type": "boolean"},
            "a": {"type": "array", "items": {"type": "string"}},
            "e": {"enum": ["red", "green"]},
            "c": {"const": 7},
            "t": {"type": ["integer", "null"]},
            "o": {"anyOf": [{"$ref": "#/$defs/Node"}, {"type": "null"}]},
            "n": {"$ref": "#/$defs/Node"},
            "r": {"type": "string", "minLength": 3},
            "when": {"type": "string", "format": "date-time"},
            "few": {"type": "array", "items": {"type": "integer"}, "minItems": 2},
            "optional": {"type": "string"},
        },
        "$defs": {"Node": {"type": "object", "required": ["child"], "properties": {"child": {"$ref": "#"}}}},
    }
    with pytest.raises(ValueError, match="nests too deeply"):
        schema_instance(schema)
    schema["$defs"] = {
        "Node": {"type": "object", "required": ["v"], "properties": {"v": {"type": "integer"}}}
    }
    assert schema_instance(schema) == {
        "s": "x",
        "i": 3,
        "f": -1.5,
        "b": False,
        "a": [],
        "e": "red",
        "c": 7,
        "t": 0,
        "o": None,
        "n": {"v": 0},
        "r": "xxx",
        "when": "1970-01-01T00:00:00Z",
        "few": [0, 0],
    }


def test_reply_rejects_contradictory_arguments() -> None:
    with pytest.raises(ValueError, match="at most one"):
        Reply(json={}, sse="data: [DONE]\n\n")
    with pytest.raises(ValueError, match="break_after_events needs sse"):
        Reply(json={}, break_after_events=1)
    with pytest.raises(ValueError, match="delay"):
        Reply(delay=-1)


# --- chat completions -----------------------------------------------------------------------------


def test_chat_default_completion(server: FakeOpenAI, client: OpenAI) -> None:
    completion = client.chat.completions.create(model="gpt-4o-mini", messages=SAY_TEST)
    assert completion.id.startswith("chatcmpl-")
    assert completion.model == "gpt-4o-mini-2024-07-18"
    assert completion.service_tier == "default"
    assert completion.choices[0].message.content == synth.DEFAULT_TEXT
    assert completion.choices[0].finish_reason == "stop"
    assert completion._request_id is not None and completion._request_id.startswith("req_")
    assert completion.usage is not None
    assert completion.usage.model_dump() == {
        "prompt_tokens": 12,
        "completion_tokens": DEFAULT_TEXT_TOKENS,
        "total_tokens": 12 + DEFAULT_TEXT_TOKENS,
        "prompt_tokens_details": {
            "cached_tokens": 0,
            "audio_tokens": 0,
            "cache_write_tokens": None,
            "image_tokens": None,
            "text_tokens": None,
        },
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
            "text_tokens": None,
        },
    }
    [request] = server.requests
    assert (request.method, request.path, request.form) == ("POST", "/v1/chat/completions", None)
    assert request.json == {"model": "gpt-4o-mini", "messages": SAY_TEST}
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert request.headers["openai-project"] == PROJECT


def test_response_headers_echo_project_and_carry_request_id(client: OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=SAY_TEST)
    assert raw.headers["openai-project"] == PROJECT
    assert raw.headers["x-request-id"].startswith("req_")
    assert raw.parse().model == "gpt-4o-2024-08-06"


def test_chat_reasoning_n_and_limits(client: OpenAI) -> None:
    capped = client.chat.completions.create(model="o3-mini", messages=SAY_TEST, max_completion_tokens=100)
    assert capped.usage is not None and capped.usage.completion_tokens_details is not None
    assert (capped.usage.completion_tokens, capped.usage.completion_tokens_details.reasoning_tokens) == (
        100,
        50,
    )
    free = client.chat.completions.create(model="gpt-5", messages=SAY_TEST)
    assert free.usage is not None and free.usage.completion_tokens_details is not None
    assert (free.usage.completion_tokens, free.usage.completion_tokens_details.reasoning_tokens) == (18, 9)
    two = client.chat.completions.create(model="gpt-4o-mini", messages=SAY_TEST, n=2, max_tokens=7)
    assert [c.index for c in two.choices] == [0, 1]
    assert two.usage is not None and (two.usage.completion_tokens, two.usage.total_tokens) == (14, 26)


def test_chat_cached_tokens_need_prompt_cache_key(client: OpenAI) -> None:
    long: list[ChatCompletionMessageParam] = [{"role": "user", "content": "x" * 5000}]  # 3 + 4 + 1250 = 1257
    keyed = client.chat.completions.create(model="gpt-4o", messages=long, prompt_cache_key="k")
    assert keyed.usage is not None and keyed.usage.prompt_tokens_details is not None
    assert (keyed.usage.prompt_tokens, keyed.usage.prompt_tokens_details.cached_tokens) == (1257, 1152)
    plain = client.chat.completions.create(model="gpt-4o", messages=long)
    assert plain.usage is not None and plain.usage.prompt_tokens_details is not None
    assert plain.usage.prompt_tokens_details.cached_tokens == 0


@pytest.mark.parametrize(
    ("requested", "reported"),
    [(None, "default"), ("auto", "default"), ("fast", "priority"), ("flex", "flex")],
)
def test_chat_service_tier(client: OpenAI, requested: Any, reported: str) -> None:
    extra = {} if requested is None else {"service_tier": requested}
    completion = client.chat.completions.create(model="gpt-4o", messages=SAY_TEST, **extra)
    assert completion.service_tier == reported


def test_chat_stream_with_and_without_include_usage(client: OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=SAY_TEST,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    *content_chunks, usage_chunk = chunks
    assert "".join(c.choices[0].delta.content or "" for c in content_chunks) == synth.DEFAULT_TEXT
    assert content_chunks[0].choices[0].delta.role == "assistant"
    assert content_chunks[-1].choices[0].finish_reason == "stop"
    assert all(
        c.usage is None and c.service_tier == "default" and c.system_fingerprint for c in content_chunks
    )
    assert all(c.obfuscation for c in chunks)
    assert usage_chunk.choices == []
    assert usage_chunk.usage is not None
    assert (usage_chunk.usage.prompt_tokens, usage_chunk.usage.completion_tokens) == (12, DEFAULT_TEXT_TOKENS)

    plain = list(
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=SAY_TEST,
            stream=True,
            stream_options={"include_obfuscation": False},
        )
    )
    assert len(plain) == len(content_chunks)
    assert all(c.usage is None and len(c.choices) == 1 and c.obfuscation is None for c in plain)


def test_chat_stream_helper(client: OpenAI) -> None:
    with client.chat.completions.stream(
        model="gpt-4o-mini",
        messages=SAY_TEST,
        stream_options={"include_usage": True},
    ) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_completion()
    assert kinds[0] == "chunk" and "content.delta" in kinds and "content.done" in kinds
    assert final.choices[0].message.content == synth.DEFAULT_TEXT
    assert final.usage is not None and final.usage.total_tokens == 12 + DEFAULT_TEXT_TOKENS


class Colour(Enum):
    RED = "red"
    BLUE = "blue"


class Reading(pydantic.BaseModel):
    value: float
    at: datetime


class Report(pydantic.BaseModel):
    title: str
    count: int
    ok: bool
    colour: Colour
    kind: Literal["a", "b"]
    readings: list[Reading]
    latest: Reading
    parent: Report | None


EXPECTED_REPORT = Report(
    title="x",
    count=0,
    ok=False,
    colour=Colour.RED,
    kind="a",
    readings=[],
    latest=Reading(value=0, at=datetime.fromisoformat("1970-01-01T00:00:00+00:00")),
    parent=None,
)


def test_chat_parse_with_pydantic_model(server: FakeOpenAI, client: OpenAI) -> None:
    completion = client.chat.completions.parse(model="gpt-4o", messages=SAY_TEST, response_format=Report)
    assert completion.choices[0].message.parsed == EXPECTED_REPORT
    assert server.requests[0].json["response_format"]["type"] == "json_schema"
    content = completion.choices[0].message.content or ""
    assert completion.usage is not None and completion.usage.completion_tokens == synth.text_tokens(content)


def test_chat_tool_call_when_required(client: OpenAI) -> None:
    tool = openai.pydantic_function_tool(Reading, name="record_reading")
    completion = client.chat.completions.parse(
        model="gpt-4o-mini",
        messages=SAY_TEST,
        tools=[tool],
        tool_choice="required",
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls is not None
    [call] = choice.message.tool_calls
    assert call.type == "function" and call.id.startswith("call_")
    assert call.function.name == "record_reading"
    assert json.loads(call.function.arguments) == {"value": 0, "at": "1970-01-01T00:00:00Z"}
    assert call.function.parsed_arguments == EXPECTED_REPORT.latest

    with client.chat.completions.stream(
        model="gpt-4o-mini",
        messages=SAY_TEST,
        tools=[tool],
        tool_choice={"type": "function", "function": {"name": "record_reading"}},
    ) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].message.tool_calls is not None
    assert final.choices[0].message.tool_calls[0].function.parsed_arguments == EXPECTED_REPORT.latest


# --- responses ------------------------------------------------------------------------------------

HELPFUL = "You are a helpful assistant."  # with "Say this is a test" as input: 3 + (4 + 7) + (4 + 5) = 23


def test_responses_create(client: OpenAI) -> None:
    response = client.responses.create(model="gpt-4o-mini", instructions=HELPFUL, input="Say this is a test")
    assert (response.status, response.model, response.service_tier) == (
        "completed",
        "gpt-4o-mini-2024-07-18",
        "default",
    )
    assert response.output_text == synth.DEFAULT_TEXT
    assert response.usage is not None
    assert response.usage.model_dump(exclude_none=True) == {
        "input_tokens": 23,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": DEFAULT_TEXT_TOKENS,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 23 + DEFAULT_TEXT_TOKENS,
    }
    reasoning = client.responses.create(
        model="gpt-5-mini", input="abcd", max_output_tokens=64, service_tier="fast"
    )
    assert reasoning.usage is not None
    assert (reasoning.usage.output_tokens, reasoning.usage.output_tokens_details.reasoning_tokens) == (64, 32)
    assert reasoning.service_tier == "priority"


RESPONSE_EVENTS = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    *["response.output_text.delta"] * 6,
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
]


def test_responses_stream_events(client: OpenAI) -> None:
    events = list(
        client.responses.create(
            model="gpt-4o-mini", instructions=HELPFUL, input="Say this is a test", stream=True
        )
    )
    assert [e.type for e in events] == RESPONSE_EVENTS
    assert [e.sequence_number for e in events] == list(range(len(RESPONSE_EVENTS)))
    with_response = [e for e in events if isinstance(e, ResponseCreatedEvent | ResponseInProgressEvent)]
    assert [e.response.usage for e in with_response] == [None, None]
    completed = events[-1]
    assert isinstance(completed, ResponseCompletedEvent) and completed.response.usage is not None
    assert completed.response.usage.total_tokens == 23 + DEFAULT_TEXT_TOKENS
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == synth.DEFAULT_TEXT


def test_responses_stream_helper_and_parse(client: OpenAI) -> None:
    with client.responses.stream(model="gpt-4o", input="Say this is a test", text_format=Report) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert (
        kinds
        == RESPONSE_EVENTS[:4] + ["response.output_text.delta"] * (len(kinds) - 9) + RESPONSE_EVENTS[-5:]
    )
    assert final.output_parsed == EXPECTED_REPORT
    assert final.usage is not None and final.usage.input_tokens == 12

    parsed = client.responses.parse(model="gpt-4o", input="Say this is a test", text_format=Report)
    assert parsed.output_parsed == EXPECTED_REPORT


RECORD_READING = {
    "type": "function",
    "name": "record_reading",
    "parameters": {
        "type": "object",
        "properties": {"value": {"type": "number"}, "at": {"type": "string", "format": "date-time"}},
        "required": ["value", "at"],
        "additionalProperties": False,
    },
    "strict": True,
}
FUNCTION_CALL_EVENTS = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.function_call_arguments.delta",
    "response.function_call_arguments.done",
    "response.output_item.done",
    "response.completed",
]


def test_responses_function_call_when_required(client: OpenAI) -> None:
    arguments = '{"value":0,"at":"1970-01-01T00:00:00Z"}'
    response = client.responses.create(
        model="gpt-4o-mini", input="Say this is a test", tools=[RECORD_READING], tool_choice="required"
    )
    [call] = response.output
    assert call.type == "function_call" and call.call_id.startswith("call_") and call.status == "completed"
    assert (call.name, call.arguments) == ("record_reading", arguments)
    assert response.usage is not None and response.usage.output_tokens == synth.text_tokens(arguments)

    events = list(
        client.responses.create(
            model="gpt-4o-mini",
            input="Say this is a test",
            tools=[RECORD_READING],
            tool_choice={"type": "function", "name": "record_reading"},
            stream=True,
        )
    )
    assert [e.type for e in events] == FUNCTION_CALL_EVENTS
    assert [e.sequence_number for e in events] == list(range(len(FUNCTION_CALL_EVENTS)))
    assert "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta") == arguments
    with client.responses.stream(
        model="gpt-4o-mini", input="Say this is a test", tools=[RECORD_READING], tool_choice="required"
    ) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_response()
    assert kinds == FUNCTION_CALL_EVENTS
    [streamed] = final.output
    assert streamed.type == "function_call" and streamed.arguments == arguments


# --- embeddings, legacy completions, transcriptions -----------------------------------------------


def test_embeddings_base64_default_and_float(server: FakeOpenAI, client: OpenAI) -> None:
    inputs = ["hello world", "a"]  # ceil(11 / 4) + max(1, ceil(1 / 4)) = 4 tokens
    decoded = client.embeddings.create(model="text-embedding-3-small", input=inputs, dimensions=8)
    floats = client.embeddings.create(
        model="text-embedding-3-small", input=inputs, dimensions=8, encoding_format="float"
    )
    raw = client.embeddings.create(model="text-embedding-3-small", input="a", encoding_format="base64")
    assert [r.json["encoding_format"] for r in server.requests] == ["base64", "float", "base64"]
    assert decoded.usage.model_dump() == {"prompt_tokens": 4, "total_tokens": 4}
    assert [len(d.embedding) for d in floats.data] == [8, 8]
    assert [d.embedding for d in decoded.data] == [d.embedding for d in floats.data]
    assert floats.data[0].embedding != floats.data[1].embedding
    assert isinstance(raw.data[0].embedding, str)
    assert len(base64.b64decode(raw.data[0].embedding)) == 4 * 1536
    assert struct.unpack("<8f", base64.b64decode(raw.data[0].embedding)[:32]) == tuple(
        floats.data[1].embedding
    )


def test_legacy_completions(client: OpenAI) -> None:
    completion = client.completions.create(model="davinci-002", prompt="Tell me a joke")  # ceil(14 / 4) = 4
    assert completion.object == "text_completion"
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (4, 16)
    chunks = list(
        client.completions.create(model="davinci-002", prompt="Tell me a joke", stream=True, max_tokens=5)
    )
    assert all(c.usage is None for c in chunks)
    assert "".join(c.choices[0].text for c in chunks) == " " + synth.DEFAULT_TEXT
    assert chunks[-1].choices[0].finish_reason == "length"


def test_transcriptions_duration_and_token_usage(server: FakeOpenAI, client: OpenAI) -> None:
    audio = ("speech.wav", wav_bytes(1.5))
    whisper = client.audio.transcriptions.create(model="whisper-1", file=audio)
    assert whisper.text == synth.TRANSCRIPT_TEXT
    assert whisper.usage is not None and whisper.usage.model_dump() == {"type": "duration", "seconds": 2.0}
    tokens = client.audio.transcriptions.create(model="gpt-4o-transcribe", file=audio, prompt="hello there")
    assert tokens.usage is not None
    assert tokens.usage.model_dump() == {
        "type": "tokens",
        "input_tokens": 18,  # 15 audio tokens (1.5 s at 10/s) + 3 prompt tokens
        "input_token_details": {"text_tokens": 3, "audio_tokens": 15},
        "output_tokens": 8,
        "total_tokens": 26,
    }
    assert server.requests[1].form == {
        "model": "gpt-4o-transcribe",
        "file": "speech.wav",
        "prompt": "hello there",
    }
    assert server.requests[1].json is None
    mini = client.audio.transcriptions.create(model="gpt-4o-mini-transcribe", file=("a.mp3", b"\1" * 64000))
    assert mini.usage is not None and mini.usage.model_dump()["input_token_details"]["audio_tokens"] == 20
    text = client.audio.transcriptions.create(model="whisper-1", file=audio, response_format="text")
    assert text == synth.TRANSCRIPT_TEXT + "\n"


# --- errors, queued replies, broken streams -------------------------------------------------------


def test_default_errors_raise_sdk_exceptions(server: FakeOpenAI, client: OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="this-model-does-not-exist", messages=SAY_TEST)
    assert (missing.value.status_code, missing.value.code, missing.value.type) == (
        404,
        "model_not_found",
        "invalid_request_error",
    )
    with pytest.raises(openai.BadRequestError) as responses_missing:
        client.responses.create(model="this-model-does-not-exist", input="x")
    assert (responses_missing.value.code, responses_missing.value.param) == ("model_not_found", "model")
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="non-existent-embedding-model", input="x")
    with (
        sync_client(server, api_key="sk-invalid-key-1234") as bad,
        pytest.raises(openai.AuthenticationError) as auth,
    ):
        bad.chat.completions.create(model="gpt-4o", messages=SAY_TEST)
    assert auth.value.code == "invalid_api_key"
    assert "sk-inval****1234" in auth.value.message


def test_malformed_json_and_unknown_path() -> None:
    with FakeOpenAI() as server, httpx2.Client(base_url=server.base_url, verify=TLS) as http:
        auth = {"authorization": f"Bearer {API_KEY}", "content-type": "application/json"}
        malformed = http.post("/chat/completions", content=b"{not json", headers=auth)
        assert malformed.status_code == 400
        assert malformed.json()["error"]["type"] == "invalid_request_error"
        no_model = http.post("/chat/completions", json={"messages": []}, headers=auth)
        assert (no_model.status_code, no_model.json()["error"]["param"]) == (400, "model")
        unknown = http.get("/nope", params={"a": "1"}, headers=auth)
        assert (unknown.status_code, unknown.json()["error"]["message"]) == (
            404,
            "Invalid URL (GET /v1/nope)",
        )
        assert server.requests[-1].query == {"a": "1"}
        bad_input = http.post(
            "/embeddings", json={"model": "text-embedding-3-small", "input": 5}, headers=auth
        )
        assert (bad_input.status_code, bad_input.json()["error"]["param"]) == (400, "input")
        assert server.requests[0].json is None


def test_enqueued_replies_are_fifo_per_path(server: FakeOpenAI, client: OpenAI) -> None:
    limited = {
        "error": {
            "message": "Rate limit reached",
            "type": "requests",
            "param": None,
            "code": "rate_limit_exceeded",
        }
    }
    server.enqueue("/v1/chat/completions", Reply(status=429, json=limited, headers={"retry-after": "0"}))
    server.enqueue(
        "/v1/chat/completions",
        Reply(json={"id": "chatcmpl-queued", "object": "chat.completion", "choices": []}),
    )
    server.enqueue(
        "/v1/embeddings",
        Reply(status=400, json={"error": {"message": "bad", "type": "invalid_request_error"}}),
    )
    assert server.pending() == {"/v1/chat/completions": 2, "/v1/embeddings": 1}
    with pytest.raises(openai.RateLimitError) as limit:
        client.chat.completions.create(model="gpt-4o", messages=SAY_TEST)
    assert limit.value.response.headers["retry-after"] == "0"
    assert client.chat.completions.create(model="gpt-4o", messages=SAY_TEST).id == "chatcmpl-queued"
    assert client.chat.completions.create(model="gpt-4o", messages=SAY_TEST).id != "chatcmpl-queued"
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model="text-embedding-3-small", input="x")
    assert server.pending() == {}
    with pytest.raises(ValueError, match="must start with"):
        server.enqueue("v1/chat/completions", Reply())


def broken_stream() -> Reply:
    body = {"model": "gpt-4o-mini", "messages": SAY_TEST, "stream": True}
    chunks = synth.chat_completion_chunks(body)
    return Reply(sse=sse_text(((None, c) for c in chunks), done=True), break_after_events=2)


def test_broken_stream_raises_after_first_events(server: FakeOpenAI, client: OpenAI) -> None:
    server.enqueue("/v1/chat/completions", broken_stream())
    received = []
    with pytest.raises(openai.APIConnectionError) as error:
        for chunk in client.chat.completions.create(model="gpt-4o-mini", messages=SAY_TEST, stream=True):
            received.append(chunk)
    assert [c.choices[0].delta.content for c in received] == ["", "Hello"]
    assert isinstance(error.value.__cause__, httpx2.RemoteProtocolError)
    # The server keeps serving after dropping that connection.
    assert client.chat.completions.create(model="gpt-4o-mini", messages=SAY_TEST).usage is not None


def test_delay_lets_client_timeouts_fire(server: FakeOpenAI, client: OpenAI) -> None:
    server.enqueue("/v1/chat/completions", Reply(delay=2.0, json={}))
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        client.with_options(timeout=0.2).chat.completions.create(model="gpt-4o", messages=SAY_TEST)
    assert time.monotonic() - started < 1.5


def test_close_ends_open_keep_alive_connections() -> None:
    server = FakeOpenAI()
    with sync_client(server) as sdk:
        sdk.chat.completions.create(model="gpt-4o", messages=SAY_TEST)
        started = time.monotonic()
        server.close()
        assert time.monotonic() - started < 1.0
        with pytest.raises(openai.APIConnectionError):
            sdk.chat.completions.create(model="gpt-4o", messages=SAY_TEST)
    server.close()  # idempotent


def test_port_in_use_raises_without_leaking_the_other_socket() -> None:
    with FakeOpenAI() as first:
        taken = int(first.websocket_base_url.removesuffix("/v1").rsplit(":", 1)[1])
        with pytest.raises(OSError):
            FakeOpenAI(ws_port=taken)


# --- async client ---------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_async_client_create_stream_and_errors(server: FakeOpenAI) -> None:
    async with async_client(server) as sdk:
        completion = await sdk.chat.completions.create(model="gpt-4o-mini", messages=SAY_TEST)
        assert completion.usage is not None and completion.usage.total_tokens == 12 + DEFAULT_TEXT_TOKENS
        stream = await sdk.chat.completions.create(
            model="gpt-4o-mini",
            messages=SAY_TEST,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
        assert chunks[-1].choices == [] and chunks[-1].usage is not None
        assert chunks[-1].usage.total_tokens == 12 + DEFAULT_TEXT_TOKENS
        async with sdk.responses.stream(model="gpt-4o", input="Say this is a test") as events:
            final = await events.get_final_response()
        assert final.usage is not None and final.usage.total_tokens == 12 + DEFAULT_TEXT_TOKENS
        embedding = await sdk.embeddings.create(model="text-embedding-3-large", input="abcd")
        assert (len(embedding.data[0].embedding), embedding.usage.prompt_tokens) == (3072, 1)
        with pytest.raises(openai.NotFoundError):
            await sdk.chat.completions.create(model="this-model-does-not-exist", messages=SAY_TEST)
        server.enqueue("/v1/chat/completions", broken_stream())
        received = []
        with pytest.raises(openai.APIConnectionError):
            async for chunk in await sdk.chat.completions.create(
                model="gpt-4o-mini", messages=SAY_TEST, stream=True
            ):
                received.append(chunk)
        assert len(received) == 2


# --- realtime -------------------------------------------------------------------------------------

PCM_200MS = base64.b64encode(b"\0" * 9600).decode()  # 24 kHz PCM16: 2 audio tokens


def expected_realtime_usage(text_in: int, audio_in: int) -> dict[str, Any]:
    text_out = 9  # ceil(len("Hello from the fake realtime server.") / 4)
    return {
        "total_tokens": text_in + audio_in + 4 * text_out,
        "input_tokens": text_in + audio_in,
        "output_tokens": 4 * text_out,
        "input_token_details": {
            "text_tokens": text_in,
            "audio_tokens": audio_in,
            "image_tokens": 0,
            "cached_tokens": 0,
            "cached_tokens_details": {"text_tokens": 0, "audio_tokens": 0, "image_tokens": 0},
        },
        "output_token_details": {"text_tokens": text_out, "audio_tokens": 3 * text_out},
    }


def test_realtime_session_with_sync_client(server: FakeOpenAI, client: OpenAI) -> None:
    server.enqueue_realtime_usage({"total_tokens": 5, "input_tokens": 2, "output_tokens": 3})
    with client.realtime.connect(model="gpt-realtime") as connection:
        created = connection.recv()
        assert created.type == "session.created"
        assert isinstance(created.session, RealtimeSessionCreateRequest)
        assert (created.session.type, created.session.model) == ("realtime", "gpt-realtime")
        connection.session.update(session={"type": "realtime", "instructions": "be nice"})  # 2 tokens
        updated = connection.recv()
        assert updated.type == "session.updated"
        assert isinstance(updated.session, RealtimeSessionCreateRequest)
        assert updated.session.instructions == "be nice"
        connection.conversation.item.create(
            item={
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "What's up?"}],
            }
        )  # 3 tokens
        assert [connection.recv().type for _ in range(2)] == [
            "conversation.item.added",
            "conversation.item.done",
        ]
        connection.input_audio_buffer.append(audio=PCM_200MS)
        connection.input_audio_buffer.commit()
        assert connection.recv().type == "input_audio_buffer.committed"
        assert [connection.recv().type for _ in range(2)] == [
            "conversation.item.added",
            "conversation.item.done",
        ]

        connection.response.create()
        events: list[RealtimeServerEvent] = []
        while not events or events[-1].type != "response.done":
            events.append(connection.recv())
        kinds = [e.type for e in events]
        assert kinds[0] == "response.created"
        assert kinds.count("response.output_audio_transcript.delta") == 2
        done = events[-1].response
        assert (done.object, done.status, done.output_modalities) == (
            "realtime.response",
            "completed",
            ["audio"],
        )
        assert done.usage is not None
        assert done.usage.model_dump(exclude_none=True) == {
            "total_tokens": 5,
            "input_tokens": 2,
            "output_tokens": 3,
        }

        connection.response.create()  # nothing queued now: counted from the conversation
        while (event := connection.recv()).type != "response.done":
            pass
        assert event.response.usage is not None
        # 2 (instructions) + 3 (user text) + 9 (the first reply's transcript, now in the conversation)
        assert event.response.usage.model_dump() == expected_realtime_usage(text_in=14, audio_in=2)

    [connect] = server.realtime_connections
    assert (connect.path, connect.query) == ("/v1/realtime", {"model": "gpt-realtime"})
    assert connect.headers["authorization"] == f"Bearer {API_KEY}"
    assert connect.headers["openai-project"] == PROJECT
    assert [e["type"] for e in server.realtime_events] == [
        "session.update",
        "conversation.item.create",
        "input_audio_buffer.append",
        "input_audio_buffer.commit",
        "response.create",
        "response.create",
    ]


@pytest.mark.anyio
async def test_realtime_with_async_client(server: FakeOpenAI) -> None:
    async with async_client(server) as sdk, sdk.realtime.connect(model="gpt-realtime-mini") as connection:
        created = await connection.recv()
        assert created.type == "session.created"
        assert isinstance(created.session, RealtimeSessionCreateRequest)
        assert created.session.model == "gpt-realtime-mini"
        await connection.send_raw(json.dumps({"type": "no.such.event"}))
        error = await connection.recv()
        assert error.type == "error" and "no.such.event" in error.error.message
        await connection.send_raw("[1]")
        assert (await connection.recv()).type == "error"
        await connection.input_audio_buffer.append(audio="abc")  # bad base64 padding
        bad_audio = await connection.recv()
        assert bad_audio.type == "error" and "Incorrect padding" in bad_audio.error.message
        await connection.response.create(response={"output_modalities": ["text"]})
        kinds = []
        async for event in connection:
            kinds.append(event.type)
            if event.type == "response.done":
                assert event.response.usage is not None
                assert event.response.usage.output_token_details is not None
                assert event.response.usage.output_token_details.audio_tokens == 0
                break
        assert kinds.count("response.output_text.delta") == 2


def test_realtime_rejects_invalid_key(server: FakeOpenAI) -> None:
    from websockets.exceptions import InvalidStatus

    with (
        sync_client(server, api_key="sk-invalid-0000") as bad,
        pytest.raises(InvalidStatus, match="401"),
        bad.realtime.connect(model="gpt-realtime"),
    ):
        pass


# --- standalone entry point -----------------------------------------------------------------------


def test_module_runs_standalone_until_interrupted() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "spendscope.demo.fake_openai", "--quiet"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        base_url = process.stdout.readline().strip().removeprefix("OPENAI_BASE_URL=")
        ws_url = process.stdout.readline().strip().removeprefix("OPENAI_WEBSOCKET_BASE_URL=")
        assert base_url.startswith("http://127.0.0.1:") and ws_url.startswith("ws://127.0.0.1:")
        with OpenAI(
            base_url=base_url,
            api_key=API_KEY,
            max_retries=0,
            http_client=openai.DefaultHttpxClient(verify=TLS),
        ) as sdk:
            assert sdk.embeddings.create(model="text-embedding-3-small", input="abcd").usage.total_tokens == 1
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
        assert process.stdout.read() == "stopping\n"
    finally:
        process.kill()
        process.wait()
        if process.stdout is not None:
            process.stdout.close()


# --- conformance replay ---------------------------------------------------------------------------

MISSING = f"no conformance data at {CONFORMANCE_DIR} (the ../shared checkout beside the repo)"
CASES = load_conformance(CONFORMANCE_DIR) if CONFORMANCE_DIR.is_dir() else []
ERRORS = {400: openai.BadRequestError, 401: openai.AuthenticationError, 404: openai.NotFoundError}


@pytest.mark.skipif(not CONFORMANCE_DIR.is_dir(), reason=MISSING)
def test_conformance_fixtures_are_present() -> None:
    assert len(CASES) == 41
    assert {c.path for c in CASES} == {
        "/v1/chat/completions",
        "/v1/responses",
        "/v1/embeddings",
        "/v1/completions",
    }


def sdk_method(sdk: OpenAI, case: ConformanceCase) -> Any:
    return {
        "/v1/chat/completions": sdk.chat.completions.create,
        "/v1/responses": sdk.responses.create,
        "/v1/embeddings": sdk.embeddings.create,
        "/v1/completions": sdk.completions.create,
    }[case.path]


def call_kwargs(method: Any, request: dict[str, Any]) -> dict[str, Any]:
    """The recorded body as keyword arguments; fields this SDK has no parameter for go in extra_body."""
    known = inspect.signature(method).parameters
    kwargs = {k: v for k, v in request.items() if k in known}
    extra = {k: v for k, v in request.items() if k not in known}
    return kwargs | ({"extra_body": extra} if extra else {})


def normalised_usage(usage: Any) -> dict[str, Any]:
    """The manifest's normalised usage fields, read from an SDK usage object (chat or responses shape)."""
    chat = hasattr(usage, "prompt_tokens")
    inputs = getattr(usage, "prompt_tokens_details" if chat else "input_tokens_details", None)
    outputs = getattr(usage, "completion_tokens_details" if chat else "output_tokens_details", None)
    return {
        "input_tokens": usage.prompt_tokens if chat else usage.input_tokens,
        "cached_tokens": getattr(inputs, "cached_tokens", None),
        "cache_write_tokens": getattr(inputs, "cache_write_tokens", None),
        "output_tokens": getattr(usage, "completion_tokens" if chat else "output_tokens", None),
        "reasoning_tokens": getattr(outputs, "reasoning_tokens", None),
        "input_audio_tokens": getattr(inputs, "audio_tokens", None),
        "output_audio_tokens": getattr(outputs, "audio_tokens", None),
        "total_tokens": usage.total_tokens,
    }


def sdk_usages(result: Any, case: ConformanceCase) -> list[Any]:
    """Every usage object the SDK exposes for the call (a stream is iterated to the end)."""
    if not case.stream:
        return [result.usage]
    items = list(result)
    if case.path == "/v1/responses":
        terminal = ("response.completed", "response.incomplete", "response.failed")
        return [e.response.usage for e in items if e.type in terminal and e.response.usage is not None]
    return [item.usage for item in items if item.usage is not None]


@pytest.mark.skipif(not CASES, reason=MISSING)
@pytest.mark.parametrize("case", CASES or [None], ids=[c.file for c in CASES] or ["missing"])
def test_conformance_replay(server: FakeOpenAI, client: OpenAI, case: ConformanceCase) -> None:
    server.replay(case)
    method = sdk_method(client, case)
    kwargs = call_kwargs(method, case.request)
    if case.status >= 400:
        with pytest.raises(ERRORS[case.status]) as error:
            method(**kwargs)
        assert error.value.status_code == case.status
        assert error.value.code == case.response_body["error"]["code"]
        assert case.usage is None
        return
    usages = sdk_usages(method(**kwargs), case)
    if case.usage is None:
        assert usages == []
    else:
        [usage] = usages
        expected = {k: v for k, v in case.usage.items() if k != "shape"}
        assert normalised_usage(usage) == expected
    # The SDK asks for base64 embeddings unless told otherwise.
    sdk_default = {"encoding_format": "base64"} if case.path == "/v1/embeddings" else {}
    assert server.requests[-1].json == sdk_default | case.request
    assert server.pending() == {}
