"""Builders for the fake server's default responses, and its deterministic token counting.

Everything here is a pure function of the request body, except the random ids and the timestamps.

Token rule (documented so tests can compute expected usage):

- ``text_tokens(s) = ceil(len(s) / 4)``.
- Chat prompt: ``3 + sum(4 + text_tokens(text of message))`` over the messages; the text of a message
  is its string content, or the concatenated ``text`` of its content parts, or a tool item's ``output``.
- Responses input: the same rule, with ``instructions`` as a first message and a string ``input`` as
  one message.
- Embeddings: ``max(1, text_tokens(s))`` per input string (a token array counts its length).
- Legacy completions: ``max(1, text_tokens(prompt))`` per prompt; output ``max_tokens`` (default 16).
- Output: ``max_completion_tokens`` / ``max_tokens`` / ``max_output_tokens`` per choice when given,
  else the visible text's ``text_tokens``, doubled for reasoning models (``o<digit>…``, ``gpt-5…``),
  which report half of the output (rounded down) as reasoning tokens; chat multiplies by ``n``.
- A request forcing a function tool (``tool_choice`` required or naming it) gets a call of it instead
  of text, with arguments satisfying its parameters schema; they count as the visible text.
- Cached input: only with ``prompt_cache_key``, and only from 1024 prompt tokens: the prompt rounded
  down to a multiple of 128.
- Transcription: whisper-1 bills ``ceil(seconds)``; the gpt-4o transcribe models bill
  ``ceil(10 * seconds)`` audio tokens plus ``text_tokens(prompt)`` in, ``text_tokens(text)`` out.

A background response (``background: true``) is the same run: it starts ``queued`` with
``usage: null`` and ends as the ``completed`` response a plain request would have got.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import math
import re
import secrets
import string
import struct
import time
import wave
from collections.abc import Mapping, Sequence
from typing import Any

from spendscope.demo.fake_openai.schema import schema_instance

JSONObject = dict[str, Any]

DEFAULT_TEXT = "Hello from the fake OpenAI server."
TRANSCRIPT_TEXT = "This is a fake transcription."
SYSTEM_FINGERPRINT = "fp_fake5d1c0a"
SNAPSHOTS = {
    "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
    "gpt-4o": "gpt-4o-2024-08-06",
    "gpt-4": "gpt-4-0613",
    "gpt-4.1": "gpt-4.1-2025-04-14",
    "gpt-5": "gpt-5-2025-08-07",
    "o3-mini": "o3-mini-2025-01-31",
}
EMBEDDING_DIMENSIONS = {"text-embedding-3-large": 3072}
CACHE_MIN_TOKENS = 1024
CACHE_BLOCK = 128
LEGACY_DEFAULT_MAX_TOKENS = 16  # the legacy completions API's own default for max_tokens


def text_tokens(text: str) -> int:
    return math.ceil(len(text) / 4)


def message_text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            p["text"] for p in content if isinstance(p, Mapping) and isinstance(p.get("text"), str)
        )
    return ""


def prompt_tokens(messages: Sequence[Mapping[str, Any]]) -> int:
    return 3 + sum(4 + text_tokens(message_text(m.get("content", m.get("output")))) for m in messages)


def response_input_tokens(body: Mapping[str, Any]) -> int:
    raw = body.get("input")
    items: list[Mapping[str, Any]] = [{"content": raw}] if isinstance(raw, str) else list(raw or [])
    if isinstance(body.get("instructions"), str):
        items.insert(0, {"content": body["instructions"]})
    return prompt_tokens(items)


def embedding_inputs(raw: object) -> list[str | list[int]]:
    """The separate inputs of an embeddings ``input``: a string, a token array, or a list of either."""
    if isinstance(raw, str) or (isinstance(raw, list) and raw and all(isinstance(t, int) for t in raw)):
        return [raw]
    if isinstance(raw, list) and raw and all(isinstance(i, str | list) for i in raw):
        return raw
    raise ValueError("'input' must be a non-empty string, token array, or array of those")


def embedding_tokens(raw: object) -> list[int]:
    return [max(1, text_tokens(i) if isinstance(i, str) else len(i)) for i in embedding_inputs(raw)]


def cached_tokens(prompt: int, *, prompt_cache_key: bool) -> int:
    if not prompt_cache_key or prompt < CACHE_MIN_TOKENS:
        return 0
    return prompt // CACHE_BLOCK * CACHE_BLOCK


def is_reasoning_model(model: str) -> bool:
    return re.match(r"o\d", model) is not None or model.startswith("gpt-5")


def output_tokens(model: str, visible: int, limit: int | None) -> tuple[int, int]:
    """(output tokens, of which reasoning) for one choice."""
    reasoning_model = is_reasoning_model(model)
    total = limit if limit is not None else visible * (2 if reasoning_model else 1)
    return total, total // 2 if reasoning_model else 0


def snapshot(model: str) -> str:
    return SNAPSHOTS.get(model, model)


def service_tier(requested: object) -> str:
    if requested in (None, "auto"):
        return "default"
    return "priority" if requested == "fast" else str(requested)


def new_id(prefix: str, length: int = 29) -> str:
    return prefix + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(length))


def request_id() -> str:
    return "req_" + secrets.token_hex(16)


def chat_usage(prompt: int, completion: int, reasoning: int, cached: int) -> JSONObject:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": reasoning,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _json_text(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


def _forced_function(body: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The function a request forces (tool_choice required / named), else None: its definition, under
    ``function`` in a Chat Completions tool, the tool itself in Responses."""
    functions: list[Mapping[str, Any]] = [
        t.get("function", t) for t in body.get("tools") or [] if t.get("type") == "function"
    ]
    choice = body.get("tool_choice")
    if not functions or choice in (None, "auto", "none"):
        return None
    if isinstance(choice, Mapping):
        name = (choice.get("function") or {}).get("name", choice.get("name"))
        return next((f for f in functions if f.get("name") == name), None)
    return functions[0]


def _arguments(function: Mapping[str, Any]) -> str:
    """Arguments satisfying the function's parameters schema."""
    return _json_text(schema_instance(function.get("parameters") or {"type": "object"}))


def _chat_output(body: Mapping[str, Any]) -> tuple[str | None, JSONObject | None]:
    """(content, tool call) of each choice."""
    function = _forced_function(body)
    if function is not None:
        call = {"id": new_id("call_", 24), "type": "function"}
        return None, call | {"function": {"name": function["name"], "arguments": _arguments(function)}}
    return structured_text(body.get("response_format")), None


def structured_text(fmt: object) -> str:
    """Text satisfying a chat ``response_format`` or a Responses ``text.format``."""
    if not isinstance(fmt, Mapping):
        return DEFAULT_TEXT
    if fmt.get("type") == "json_schema":
        schema = fmt.get("json_schema", fmt).get("schema") or {}
        return _json_text(schema_instance(schema))
    return "{}" if fmt.get("type") == "json_object" else DEFAULT_TEXT


def _chat_plan(body: Mapping[str, Any]) -> tuple[JSONObject, str | None, JSONObject | None, JSONObject]:
    """(fields shared by a completion and its chunks, content, tool call, usage)."""
    model = str(body["model"])
    content, call = _chat_output(body)
    visible = text_tokens(str(call["function"]["arguments"]) if call else content or "")
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    n = int(body.get("n") or 1)
    completion, reasoning = output_tokens(model, visible, limit)
    prompt = prompt_tokens(body.get("messages") or [])
    usage = chat_usage(
        prompt,
        completion * n,
        reasoning * n,
        cached_tokens(prompt, prompt_cache_key=bool(body.get("prompt_cache_key"))),
    )
    head = {"id": new_id("chatcmpl-"), "created": int(time.time()), "model": snapshot(model)}
    head |= {"service_tier": service_tier(body.get("service_tier")), "system_fingerprint": SYSTEM_FINGERPRINT}
    return head, content, call, usage


def chat_completion(body: Mapping[str, Any]) -> JSONObject:
    head, content, call, usage = _chat_plan(body)
    message: JSONObject = {"role": "assistant", "content": content, "refusal": None, "annotations": []}
    if call is not None:
        message["tool_calls"] = [call]
    choices = [
        {"index": i, "message": message, "logprobs": None, "finish_reason": "tool_calls" if call else "stop"}
        for i in range(int(body.get("n") or 1))
    ]
    return {"id": head.pop("id"), "object": "chat.completion", **head, "choices": choices, "usage": usage}


def text_pieces(text: str) -> list[str]:
    """Word-sized stream deltas that concatenate back to ``text``."""
    return re.findall(r"\s*\S+", text) or [text]


def chat_completion_chunks(body: Mapping[str, Any]) -> list[JSONObject]:
    head, content, call, usage = _chat_plan(body)
    options = body.get("stream_options") or {}
    include_usage = options.get("include_usage") is True
    # Recorded streams carry "usage": null only when include_usage asked for the usage chunk.
    extra: JSONObject = {"usage": None} if include_usage else {}

    def chunk(choices: list[JSONObject], **fields: Any) -> JSONObject:
        out = {"id": head["id"], "object": "chat.completion.chunk", **head, "choices": choices}
        out |= extra | fields
        if options.get("include_obfuscation", True):
            out["obfuscation"] = secrets.token_urlsafe(8)
        return out

    def delta(i: int, d: JSONObject, finish: str | None = None) -> JSONObject:
        return {"index": i, "delta": d, "logprobs": None, "finish_reason": finish}

    n = range(int(body.get("n") or 1))
    if call is None:
        chunks = [chunk([delta(i, {"role": "assistant", "content": "", "refusal": None})]) for i in n]
        chunks += [chunk([delta(i, {"content": p})]) for p in text_pieces(content or "") for i in n]
    else:
        header = call | {"index": 0, "function": {"name": call["function"]["name"], "arguments": ""}}
        args = {"index": 0, "function": {"arguments": call["function"]["arguments"]}}
        first = {"role": "assistant", "content": None, "tool_calls": [header], "refusal": None}
        chunks = [chunk([delta(i, first)]) for i in n]
        chunks += [chunk([delta(i, {"tool_calls": [args]})]) for i in n]
    chunks += [chunk([delta(i, {}, "tool_calls" if call else "stop")]) for i in n]
    if include_usage:
        chunks.append(chunk([], usage=usage))
    return chunks


def text_completion(body: Mapping[str, Any]) -> JSONObject:
    prompt = body.get("prompt", "")
    prompts = [prompt] if isinstance(prompt, str) else [str(p) for p in prompt]
    limit = int(body.get("max_tokens") or LEGACY_DEFAULT_MAX_TOKENS)
    n_choices = len(prompts) * int(body.get("n") or 1)
    used = sum(max(1, text_tokens(p)) for p in prompts)
    usage = {
        "prompt_tokens": used,
        "completion_tokens": limit * n_choices,
        "total_tokens": used + limit * n_choices,
    }
    choices = [
        {"text": " " + DEFAULT_TEXT, "index": i, "logprobs": None, "finish_reason": "length"}
        for i in range(n_choices)
    ]
    head = {"id": new_id("cmpl-"), "object": "text_completion", "created": int(time.time())}
    return head | {"model": snapshot(str(body["model"])), "choices": choices, "usage": usage}


def text_completion_chunks(body: Mapping[str, Any]) -> list[JSONObject]:
    whole = text_completion(body)
    usage = whole.pop("usage")
    chunks = []
    for piece in text_pieces(" " + DEFAULT_TEXT):
        choices = [c | {"text": piece, "finish_reason": None} for c in whole["choices"]]
        chunks.append(whole | {"choices": choices})
    chunks[-1]["choices"] = [c | {"finish_reason": "length"} for c in chunks[-1]["choices"]]
    if (body.get("stream_options") or {}).get("include_usage") is True:
        chunks.append(whole | {"choices": [], "usage": usage})
    return chunks


def embedding_vector(text: object, dimensions: int) -> list[float]:
    """Deterministic per input; multiples of 1/1024 so float32 (base64) round-trips exactly."""
    seed = json.dumps(text).encode()
    out: list[float] = []
    block = 0
    while len(out) < dimensions:
        chunk = hashlib.sha256(seed + block.to_bytes(4, "big")).digest()
        out.extend((b - 128) / 1024 for b in chunk)
        block += 1
    return out[:dimensions]


def embeddings(body: Mapping[str, Any]) -> JSONObject:
    inputs = embedding_inputs(body.get("input"))
    model = str(body["model"])
    dimensions = int(body.get("dimensions") or EMBEDDING_DIMENSIONS.get(model, 1536))
    data = []
    for i, item in enumerate(inputs):
        vector: list[float] | str = embedding_vector(item, dimensions)
        if body.get("encoding_format") == "base64":
            vector = base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode()
        data.append({"object": "embedding", "index": i, "embedding": vector})
    used = sum(embedding_tokens(body.get("input")))
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": used, "total_tokens": used},
    }


def audio_seconds(audio: bytes) -> float:
    """Duration from a WAV header, else bytes at 32 kB/s (16 kHz, 16-bit mono)."""
    if audio[:4] == b"RIFF" and audio[8:12] == b"WAVE":
        try:
            with wave.open(io.BytesIO(audio)) as wav:
                return float(wav.getnframes() / wav.getframerate())
        except (wave.Error, EOFError):
            pass
    return len(audio) / 32000


def transcription(fields: Mapping[str, str], audio: bytes) -> JSONObject:
    seconds = audio_seconds(audio)
    if fields.get("model") == "whisper-1":
        return {"text": TRANSCRIPT_TEXT, "usage": {"type": "duration", "seconds": math.ceil(seconds)}}
    audio_tokens = max(1, math.ceil(seconds * 10))  # 10 audio tokens per second
    prompt = text_tokens(fields.get("prompt", ""))
    out = text_tokens(TRANSCRIPT_TEXT)
    usage = {
        "type": "tokens",
        "input_tokens": prompt + audio_tokens,
        "input_token_details": {"text_tokens": prompt, "audio_tokens": audio_tokens},
        "output_tokens": out,
        "total_tokens": prompt + audio_tokens + out,
    }
    return {"text": TRANSCRIPT_TEXT, "usage": usage}


def _response_plan(body: Mapping[str, Any]) -> tuple[JSONObject, str, JSONObject | None, JSONObject]:
    """(the in-progress response object, its output text, the function call it makes instead of text
    when the request forces one, its usage)."""
    model = str(body["model"])
    text_config = body.get("text") or {"format": {"type": "text"}, "verbosity": "medium"}
    text = structured_text(text_config.get("format"))
    function = _forced_function(body)
    call = None
    if function is not None:
        call = {
            "id": "fc_" + secrets.token_hex(24),
            "type": "function_call",
            "status": "completed",
            "arguments": _arguments(function),
            "call_id": new_id("call_", 24),
            "name": function["name"],
        }
    visible = text_tokens(call["arguments"] if call else text)
    out, reasoning = output_tokens(model, visible, body.get("max_output_tokens") or None)
    used = response_input_tokens(body)
    usage = {
        "input_tokens": used,
        "input_tokens_details": {
            "cached_tokens": cached_tokens(used, prompt_cache_key=bool(body.get("prompt_cache_key")))
        },
        "output_tokens": out,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": used + out,
    }
    background = body.get("background") is True
    response = {
        "id": "resp_" + secrets.token_hex(24),
        "object": "response",
        "created_at": int(time.time()),
        "status": "queued" if background else "in_progress",
        "background": background,
        "completed_at": None,
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"),
        "model": snapshot(model),
        "output": [],
        "parallel_tool_calls": True,
        "previous_response_id": body.get("previous_response_id"),
        "prompt_cache_key": body.get("prompt_cache_key"),
        "reasoning": {"effort": (body.get("reasoning") or {}).get("effort"), "summary": None},
        "service_tier": service_tier(body.get("service_tier")),
        "store": body.get("store", True),
        "temperature": body.get("temperature", 1.0),
        "text": text_config,
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools") or [],
        "top_p": body.get("top_p", 1.0),
        "truncation": "disabled",
        "usage": None,
        "user": body.get("user"),
        "metadata": body.get("metadata") or {},
    }
    return response, text, call, usage


def _message_item(item_id: str, text: str | None) -> JSONObject:
    """An output message item: in progress (no content yet) when ``text`` is None."""
    content = (
        [] if text is None else [{"type": "output_text", "annotations": [], "logprobs": [], "text": text}]
    )
    status = "in_progress" if text is None else "completed"
    return {"id": item_id, "type": "message", "status": status, "content": content, "role": "assistant"}


def _completed(response: JSONObject, item: JSONObject, usage: JSONObject) -> JSONObject:
    return response | {
        "status": "completed",
        "completed_at": int(time.time()),
        "output": [item],
        "usage": usage,
    }


def response_object(body: Mapping[str, Any]) -> JSONObject:
    response, text, call, usage = _response_plan(body)
    return _completed(response, call or _message_item("msg_" + secrets.token_hex(24), text), usage)


def response_events(body: Mapping[str, Any]) -> list[tuple[str, JSONObject]]:
    """(event name, data) in the order the SDK's ``responses.stream()`` helper requires. A background
    run is created ``queued`` and says so (``response.queued``) before it starts. A forced function
    call streams its arguments (``response.function_call_arguments.*``) instead of text."""
    response, text, call, usage = _response_plan(body)
    events: list[tuple[str, JSONObject]] = [("response.created", {"response": response})]
    if response["background"]:
        events.append(("response.queued", {"response": response}))
    events.append(("response.in_progress", {"response": response | {"status": "in_progress"}}))
    output, done_item = _text_events(text) if call is None else _function_call_events(call)
    events += output
    events += [
        ("response.output_item.done", {"output_index": 0, "item": done_item}),
        ("response.completed", {"response": _completed(response, done_item, usage)}),
    ]
    return [(name, {"type": name, **data, "sequence_number": i}) for i, (name, data) in enumerate(events)]


def _text_events(text: str) -> tuple[list[tuple[str, JSONObject]], JSONObject]:
    """A message item's events up to its ``response.output_item.done``, and the done item."""
    item_id = "msg_" + secrets.token_hex(24)
    where = {"item_id": item_id, "output_index": 0, "content_index": 0}
    part = {"type": "output_text", "annotations": [], "logprobs": [], "text": ""}
    events: list[tuple[str, JSONObject]] = [
        ("response.output_item.added", {"output_index": 0, "item": _message_item(item_id, None)}),
        ("response.content_part.added", where | {"part": part}),
    ]
    events += [
        (
            "response.output_text.delta",
            where | {"delta": p, "logprobs": [], "obfuscation": secrets.token_hex(4)},
        )
        for p in text_pieces(text)
    ]
    events += [
        ("response.output_text.done", where | {"text": text, "logprobs": []}),
        ("response.content_part.done", where | {"part": part | {"text": text}}),
    ]
    return events, _message_item(item_id, text)


def _function_call_events(call: JSONObject) -> tuple[list[tuple[str, JSONObject]], JSONObject]:
    """A function call item's events up to its ``response.output_item.done``, and the done item."""
    where = {"item_id": call["id"], "output_index": 0}
    added = call | {"status": "in_progress", "arguments": ""}
    events: list[tuple[str, JSONObject]] = [
        ("response.output_item.added", {"output_index": 0, "item": added})
    ]
    events += [
        ("response.function_call_arguments.delta", where | {"delta": p, "obfuscation": secrets.token_hex(4)})
        for p in text_pieces(call["arguments"])
    ]
    events.append(("response.function_call_arguments.done", where | {"arguments": call["arguments"]}))
    return events, call
