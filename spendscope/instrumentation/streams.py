"""Observe `openai.Stream` / `AsyncStream` without changing their type or what the caller sees.

The stream's private iterator is replaced by a generator that reads usage as items pass. The usage-only
chunk we asked for on the caller's behalf is taken out of the server-sent events before the SDK builds
a model of it (read from its JSON instead), so the caller pays nothing for a chunk it never sees. The
span is finished exactly once: when the stream ends, breaks, is closed, or is garbage-collected unread
(usage state `unavailable`).
"""

from __future__ import annotations

import json
import re
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from spendscope._internal import internal_error
from spendscope.instrumentation.telemetry import LLMCall
from spendscope.usage import UsageReader

# Reads one stream item into the call; returns True when the item must be hidden from the caller.
ItemHandler = Callable[[LLMCall, Any], bool]

_RESPONSES_TERMINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})
# Events about the response rather than its output; any other event (an output item added, a text,
# function-call arguments, reasoning or audio delta) is output, and the first one is the first chunk.
_RESPONSES_NOT_OUTPUT = frozenset(
    {"response.created", "response.queued", "response.in_progress", "error", *_RESPONSES_TERMINAL}
)

# An event whose `usage` is an object, not null: the candidate usage chunk. Inside JSON strings quotes
# are escaped, so this only matches the key itself.
_USAGE_OBJECT = re.compile(r'"usage"\s*:\s*\{')


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
            call.note_background(response)
            if event_type != "response.created":
                call.usage = read_usage(getattr(response, "usage", None))
        elif call.first_chunk_ns is None and event_type not in _RESPONSES_NOT_OUTPUT:
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


def _take_usage_event(call: LLMCall, data: str, read_usage: UsageReader) -> bool:
    """Read the usage-only chunk from its raw JSON; True when it was ours to hide. Anything else (a
    chunk that also has choices, an error) is left to the SDK, and to `handle`."""
    try:
        chunk = json.loads(data)
        if not isinstance(chunk, dict) or chunk.get("choices") or chunk.get("error"):
            return False
        usage = chunk.get("usage")
        if not isinstance(usage, dict):
            return False
        call.note_response(chunk)
        call.usage = read_usage(usage)
        return True
    except Exception:
        internal_error("stream event", call.telemetry)
        return False


def _hide_usage_event(stream: Any, ref: weakref.ref[Any], call: LLMCall, read_usage: UsageReader) -> None:
    """Filter the SDK's server-sent events (`Stream._iter_events`, looked up when iteration starts).
    The stream is held weakly, so that a finished stream is not left in a reference cycle."""
    events: Callable[[Any], Iterator[Any]] = type(stream)._iter_events

    def iter_events() -> Iterator[Any]:
        for sse in events(ref()):
            data = sse.data
            if _USAGE_OBJECT.search(data) is None or not _take_usage_event(call, data, read_usage):
                yield sse

    stream._iter_events = iter_events


def _hide_async_usage_event(
    stream: Any, ref: weakref.ref[Any], call: LLMCall, read_usage: UsageReader
) -> None:
    events: Callable[[Any], AsyncIterator[Any]] = type(stream)._iter_events

    async def iter_events() -> AsyncIterator[Any]:
        async for sse in events(ref()):
            data = sse.data
            if _USAGE_OBJECT.search(data) is None or not _take_usage_event(call, data, read_usage):
                yield sse

    stream._iter_events = iter_events


def observe_stream(stream: Any, call: LLMCall, handle: ItemHandler, read_usage: UsageReader) -> None:
    inner: Iterator[Any] = stream._iterator
    ref = weakref.ref(stream)
    if call.hide_usage_chunk and callable(getattr(type(stream), "_iter_events", None)):
        _hide_usage_event(stream, ref, call, read_usage)

    def iterate() -> Iterator[Any]:
        try:
            for item in inner:
                try:
                    hide = handle(call, item)
                except Exception:
                    internal_error("stream item", call.telemetry)
                    hide = False
                if not hide:
                    yield item
        except GeneratorExit:
            call.end()
            raise
        except BaseException as exc:
            call.end(exc)
            raise
        call.end()

    stream._iterator = iterate()
    close = type(stream).close

    def close_and_finish() -> None:
        try:
            if (s := ref()) is not None:
                close(s)
        finally:
            call.end()

    stream.close = close_and_finish
    weakref.finalize(stream, call.end)


def observe_async_stream(stream: Any, call: LLMCall, handle: ItemHandler, read_usage: UsageReader) -> None:
    inner: AsyncIterator[Any] = stream._iterator
    ref = weakref.ref(stream)
    if call.hide_usage_chunk and callable(getattr(type(stream), "_iter_events", None)):
        _hide_async_usage_event(stream, ref, call, read_usage)

    async def iterate() -> AsyncIterator[Any]:
        try:
            async for item in inner:
                try:
                    hide = handle(call, item)
                except Exception:
                    internal_error("stream item", call.telemetry)
                    hide = False
                if not hide:
                    yield item
        except GeneratorExit:
            call.end()
            raise
        except BaseException as exc:
            call.end(exc)
            raise
        call.end()

    stream._iterator = iterate()
    close = type(stream).close

    async def close_and_finish() -> None:
        try:
            if (s := ref()) is not None:
                await close(s)
        finally:
            call.end()

    stream.close = close_and_finish
    weakref.finalize(stream, call.end)
