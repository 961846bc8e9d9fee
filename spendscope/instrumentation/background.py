"""Background Responses (`responses.create(background=True)`): usage arrives after the create returns.

The create answers `queued` or `in_progress` with `usage: null`. Its call is then not finished but kept
here, by response id, with the attribution in force at create time. The first `responses.retrieve` or
`responses.cancel` that returns the response in a terminal status, or the first terminal event of
`responses.retrieve(stream=True)` (what `responses.stream(response_id=...)` resumes with), takes the
call out and finishes it with that response's usage: one span per response, the create's, whatever
polls, cancels or resumed streams follow. A resumed stream that stops before its terminal event
leaves the call pending for the next poll.

Only responses created in this process are recorded (a response another process created is that
process's to record). The registry is bounded: a call evicted from it, still pending at
`uninstrument_openai()` or at interpreter exit, is finished with usage `unavailable`.
"""

from __future__ import annotations

import atexit
import functools
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any, Final

from spendscope._internal import ErrorCounter, internal_error
from spendscope.instrumentation.endpoints import RESPONSES
from spendscope.instrumentation.telemetry import BACKGROUND_DONE, LLMCall, Lookup

if TYPE_CHECKING:
    from spendscope.instrumentation.calls import SDKTypes

TERMINAL: Final = BACKGROUND_DONE
PENDING_LIMIT: Final = 10_000

_MODULE = "openai.resources.responses.responses"
PATCHES: Final = (
    (_MODULE, "Responses", "retrieve", False),
    (_MODULE, "AsyncResponses", "retrieve", True),
    (_MODULE, "Responses", "cancel", False),
    (_MODULE, "AsyncResponses", "cancel", True),
)


class PendingCalls:
    """Calls of background responses not finished yet, by response id; an LRU of at most `limit`."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._calls: OrderedDict[str, LLMCall] = OrderedDict()
        self._lock = threading.Lock()
        self._exit_hook = False

    def __len__(self) -> int:
        return len(self._calls)

    def __contains__(self, response_id: object) -> bool:
        return response_id in self._calls

    def park(self, response_id: str, call: LLMCall) -> None:
        """Keep `call` until its response is seen ended; parking it again changes nothing."""
        with self._lock:
            if self._calls.get(response_id) is call:
                return
            if not self._exit_hook:
                # Registered after the app's providers (which flush at exit): atexit runs it first.
                atexit.register(self.finish_all)
                self._exit_hook = True
            evicted = [self._calls.pop(response_id)] if response_id in self._calls else []
            self._calls[response_id] = call
            while len(self._calls) > self.limit:
                evicted.append(self._calls.popitem(last=False)[1])
        for old in evicted:
            old.finish()

    def take(self, response_id: str) -> LLMCall | None:
        """The pending call of `response_id`, removed: of concurrent polls, exactly one gets it."""
        with self._lock:
            return self._calls.pop(response_id, None)

    def finish_all(self) -> None:
        """Finish every pending call as usage unavailable (we never saw its usage)."""
        with self._lock:
            calls = list(self._calls.values())
            self._calls.clear()
        for call in calls:
            call.finish()


pending = PendingCalls(PENDING_LIMIT)


def _complete(response: Any, response_id: str) -> None:
    """Finish the pending call of a response seen in a terminal status, if this process has one."""
    seen_id = getattr(response, "id", None)
    call = pending.take(seen_id if isinstance(seen_id, str) and seen_id else response_id)
    if call is None:
        return
    try:
        call.note_response(response)
        call.usage = RESPONSES.read_usage(getattr(response, "usage", None))
    except Exception:
        internal_error("background", call.telemetry.count_error)
    finally:
        call.finish()


def _on_event(event: Any, response_id: str, count: ErrorCounter | None) -> None:
    try:
        response = getattr(event, "response", None)
        if response is not None and getattr(response, "status", None) in TERMINAL:
            _complete(response, response_id)
    except Exception:
        internal_error("background stream", count)


def _watch_stream(stream: Any, response_id: str, count: ErrorCounter | None) -> None:
    """Read the terminal event as it passes; unlike a create's stream, an early end finishes nothing."""
    inner: Iterator[Any] = stream._iterator

    def iterate() -> Iterator[Any]:
        for event in inner:
            _on_event(event, response_id, count)
            yield event

    stream._iterator = iterate()


def _watch_async_stream(stream: Any, response_id: str, count: ErrorCounter | None) -> None:
    inner: AsyncIterator[Any] = stream._iterator

    async def iterate() -> AsyncIterator[Any]:
        async for event in inner:
            _on_event(event, response_id, count)
            yield event

    stream._iterator = iterate()


def _observe(result: Any, response_id: str, types: SDKTypes, count: ErrorCounter | None) -> None:
    if isinstance(result, types.stream):
        _watch_stream(result, response_id, count)
    elif isinstance(result, types.async_stream):
        _watch_async_stream(result, response_id, count)
    elif isinstance(result, types.legacy_response):  # with_raw_response; parse() is cached
        _observe(result.parse(), response_id, types, count)
    elif isinstance(result, types.api_response):  # with_streaming_response: when the body is parsed
        _observe_parse(result, response_id, types, count)
    elif isinstance(result, types.async_api_response):
        _observe_async_parse(result, response_id, types, count)
    elif getattr(result, "status", None) in TERMINAL:
        _complete(result, response_id)


def _observe_parse(result: Any, response_id: str, types: SDKTypes, count: ErrorCounter | None) -> None:
    parse = result.parse

    def parse_and_observe(**kwargs: Any) -> Any:
        parsed = parse(**kwargs)
        _observe_safely(parsed, response_id, types, count)
        return parsed

    result.parse = parse_and_observe


def _observe_async_parse(result: Any, response_id: str, types: SDKTypes, count: ErrorCounter | None) -> None:
    parse = result.parse

    async def parse_and_observe(**kwargs: Any) -> Any:
        parsed = await parse(**kwargs)
        _observe_safely(parsed, response_id, types, count)
        return parsed

    result.parse = parse_and_observe


def _observe_safely(result: Any, response_id: Any, types: SDKTypes, count: ErrorCounter | None) -> None:
    """Only responses pending here are looked at; anything else costs one dict lookup."""
    if not isinstance(response_id, str) or response_id not in pending:
        return
    try:
        _observe(result, response_id, types, count)
    except Exception:
        internal_error("background", count)


def _response_id(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    return args[0] if args else kwargs.get("response_id")


def _counter(lookup: Lookup, client: Any) -> ErrorCounter | None:
    telemetry = lookup(client)
    return telemetry.count_error if telemetry is not None else None


def wrap_poll(original: Callable[..., Any], *, lookup: Lookup, types: SDKTypes) -> Any:
    """`Responses.retrieve` / `cancel`: the result is returned untouched, after finishing the pending
    call of a response it shows terminal. The call was the create's: no new span is opened."""

    @functools.wraps(original)
    def poll(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = original(self, *args, **kwargs)
        if len(pending):
            _observe_safely(result, _response_id(args, kwargs), types, _counter(lookup, self._client))
        return result

    return poll


def wrap_async_poll(original: Callable[..., Awaitable[Any]], *, lookup: Lookup, types: SDKTypes) -> Any:
    @functools.wraps(original)
    async def poll(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = await original(self, *args, **kwargs)
        if len(pending):
            _observe_safely(result, _response_id(args, kwargs), types, _counter(lookup, self._client))
        return result

    return poll
