"""Observe `openai.Stream` / `AsyncStream` without changing their type or what the caller sees.

The stream's private iterator is replaced by a generator that reads usage as items pass and hides
the usage-only chunk we asked for on the caller's behalf. The span is finished exactly once: when the
stream ends, breaks, is closed, or is garbage-collected unread (usage state `unavailable`).
"""

from __future__ import annotations

import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from spendscope._internal import internal_error
from spendscope.instrumentation.telemetry import LLMCall
from spendscope.usage import TokenUsage

# Reads one stream item into the call; returns True when the item must be hidden from the caller.
ItemHandler = Callable[[LLMCall, Any], bool]
UsageReader = Callable[[Any], TokenUsage | None]

_RESPONSES_TERMINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})


def chunk_handler(read_usage: UsageReader) -> ItemHandler:
    """Chat Completions (and legacy Completions) chunks; usage rides on a chunk with no choices."""

    def handle(call: LLMCall, chunk: Any) -> bool:
        if call.first_chunk_ns is None:
            call.first_chunk_ns = time.time_ns()
            call.note_response(chunk)
        usage = getattr(chunk, "usage", None)
        if usage is None:
            return False
        call.note_response(chunk)
        call.usage = read_usage(usage)
        return call.hide_usage_chunk and not getattr(chunk, "choices", None)

    return handle


def responses_event_handler(read_usage: UsageReader) -> ItemHandler:
    """Responses API events; usage rides on the terminal event, whichever it is."""

    def handle(call: LLMCall, event: Any) -> bool:
        event_type = getattr(event, "type", None)
        if event_type in _RESPONSES_TERMINAL or event_type == "response.created":
            response = getattr(event, "response", None)
            call.note_response(response)
            if event_type != "response.created":
                call.usage = read_usage(getattr(response, "usage", None))
        elif call.first_chunk_ns is None and event_type == "response.output_text.delta":
            call.first_chunk_ns = time.time_ns()
        return False

    return handle


def transcript_event_handler(read_usage: UsageReader) -> ItemHandler:
    """Streaming transcription; usage rides on `transcript.text.done`."""

    def handle(call: LLMCall, event: Any) -> bool:
        event_type = getattr(event, "type", None)
        if call.first_chunk_ns is None:
            call.first_chunk_ns = time.time_ns()
        if event_type == "transcript.text.done":
            call.usage = read_usage(getattr(event, "usage", None))
        return False

    return handle


def _safe(handle: ItemHandler, call: LLMCall, item: Any) -> bool:
    try:
        return handle(call, item)
    except Exception:
        internal_error("stream item", call.telemetry.count_error)
        return False


def observe_stream(stream: Any, call: LLMCall, handle: ItemHandler) -> None:
    inner: Iterator[Any] = stream._iterator

    def iterate() -> Iterator[Any]:
        try:
            for item in inner:
                if not _safe(handle, call, item):
                    yield item
        except GeneratorExit:
            call.finish()
            raise
        except BaseException as exc:
            call.finish(error=exc)
            raise
        call.finish()

    stream._iterator = iterate()
    ref = weakref.ref(stream)
    close = type(stream).close

    def close_and_finish() -> None:
        try:
            if (s := ref()) is not None:
                close(s)
        finally:
            call.finish()

    stream.close = close_and_finish
    weakref.finalize(stream, call.finish)


def observe_async_stream(stream: Any, call: LLMCall, handle: ItemHandler) -> None:
    inner: AsyncIterator[Any] = stream._iterator

    async def iterate() -> AsyncIterator[Any]:
        try:
            async for item in inner:
                if not _safe(handle, call, item):
                    yield item
        except GeneratorExit:
            call.finish()
            raise
        except BaseException as exc:
            call.finish(error=exc)
            raise
        call.finish()

    stream._iterator = iterate()
    ref = weakref.ref(stream)
    close = type(stream).close

    async def close_and_finish() -> None:
        try:
            if (s := ref()) is not None:
                await close(s)
        finally:
            call.finish()

    stream.close = close_and_finish
    weakref.finalize(stream, call.finish)
