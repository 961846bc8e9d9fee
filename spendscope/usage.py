"""Pure functions that read token usage out of OpenAI responses, whatever their shape.

Every field is treated as nullable: the SDK does not validate responses strictly, so a field the server
left out comes back as None even where it is typed `int`. Objects may be SDK models or plain dicts
(Realtime events are read from the raw WebSocket message).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

_log = logging.getLogger("spendscope")


@dataclass(frozen=True, slots=True)
class TokenUsage:
    """Usage of one call, in OpenAI's semantics: `input` and `output` are totals; the others are subsets."""

    input: int = 0
    output: int = 0
    cached_input: int = 0
    cache_write_input: int = 0
    reasoning: int = 0
    input_audio: int = 0
    cached_input_audio: int = 0
    output_audio: int = 0
    audio_seconds: float | None = None  # duration-billed audio (whisper-1)


# Reads the usage object of one kind of response (`chat_usage`, `responses_usage`, ...).
UsageReader = Callable[[Any], TokenUsage | None]


def _get(obj: Any, name: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


def _int(obj: Any, name: str) -> int:
    value = _get(obj, name)
    return value if isinstance(value, int) and value > 0 else 0


def _clamped(usage: TokenUsage) -> TokenUsage:
    """Keep subsets inside their totals; OpenAI has been seen reporting cached > input."""
    cached = min(usage.cached_input, usage.input)
    cache_write = min(usage.cache_write_input, usage.input - cached)
    input_audio = min(usage.input_audio, usage.input)
    cached_audio = min(usage.cached_input_audio, cached, input_audio)
    reasoning = min(usage.reasoning, usage.output)
    output_audio = min(usage.output_audio, usage.output)
    if (cached, cache_write, input_audio, cached_audio, reasoning, output_audio) == (
        usage.cached_input,
        usage.cache_write_input,
        usage.input_audio,
        usage.cached_input_audio,
        usage.reasoning,
        usage.output_audio,
    ):
        return usage  # the usual case: consistent, no second object (this runs on every call)
    clamped = TokenUsage(
        input=usage.input,
        output=usage.output,
        cached_input=cached,
        cache_write_input=cache_write,
        reasoning=reasoning,
        input_audio=input_audio,
        cached_input_audio=cached_audio,
        output_audio=output_audio,
        audio_seconds=usage.audio_seconds,
    )
    _log.warning("spendscope: inconsistent usage from OpenAI %s, clamped to %s", usage, clamped)
    return clamped


def chat_usage(usage: Any) -> TokenUsage | None:
    """`CompletionUsage` of Chat Completions (and legacy Completions)."""
    if usage is None:
        return None
    prompt_details = _get(usage, "prompt_tokens_details")
    completion_details = _get(usage, "completion_tokens_details")
    return _clamped(
        TokenUsage(
            input=_int(usage, "prompt_tokens"),
            output=_int(usage, "completion_tokens"),
            cached_input=_int(prompt_details, "cached_tokens"),
            cache_write_input=_int(prompt_details, "cache_write_tokens"),
            input_audio=_int(prompt_details, "audio_tokens"),
            reasoning=_int(completion_details, "reasoning_tokens"),
            output_audio=_int(completion_details, "audio_tokens"),
        )
    )


def responses_usage(usage: Any) -> TokenUsage | None:
    """`ResponseUsage` of the Responses API."""
    if usage is None:
        return None
    input_details = _get(usage, "input_tokens_details")
    output_details = _get(usage, "output_tokens_details")
    return _clamped(
        TokenUsage(
            input=_int(usage, "input_tokens"),
            output=_int(usage, "output_tokens"),
            cached_input=_int(input_details, "cached_tokens"),
            cache_write_input=_int(input_details, "cache_write_tokens"),
            reasoning=_int(output_details, "reasoning_tokens"),
        )
    )


def embeddings_usage(usage: Any) -> TokenUsage | None:
    if usage is None:
        return None
    return TokenUsage(input=_int(usage, "prompt_tokens"))


def transcription_usage(usage: Any) -> TokenUsage | None:
    """`UsageTokens` (gpt-4o-transcribe) or `UsageDuration` (whisper-1)."""
    if usage is None:
        return None
    if _get(usage, "type") == "duration":
        seconds = _get(usage, "seconds")
        if not isinstance(seconds, int | float):
            return None
        return TokenUsage(audio_seconds=float(seconds))
    details = _get(usage, "input_token_details")
    return _clamped(
        TokenUsage(
            input=_int(usage, "input_tokens"),
            output=_int(usage, "output_tokens"),
            input_audio=_int(details, "audio_tokens"),
        )
    )


def realtime_usage(usage: Any) -> TokenUsage | None:
    """`response.done` usage: cached tokens are a subset of input, broken down by modality."""
    if usage is None:
        return None
    input_details = _get(usage, "input_token_details")
    cached_details = _get(input_details, "cached_tokens_details")
    output_details = _get(usage, "output_token_details")
    return _clamped(
        TokenUsage(
            input=_int(usage, "input_tokens"),
            output=_int(usage, "output_tokens"),
            cached_input=_int(input_details, "cached_tokens"),
            input_audio=_int(input_details, "audio_tokens"),
            cached_input_audio=_int(cached_details, "audio_tokens"),
            output_audio=_int(output_details, "audio_tokens"),
        )
    )
