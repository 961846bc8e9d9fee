"""Background Responses (`responses.create(background=True)`): usage arrives after the create returns.

The create answers `queued` or `in_progress` with `usage: null`. Its call is then not finished but kept
here, by response id, with the attribution in force at create time. The first `responses.retrieve` or
`responses.cancel` that returns the response in a terminal status, or the first terminal event of
`responses.retrieve(stream=True)` (what `responses.stream(response_id=...)` resumes with), takes the
call out and finishes it with that response's usage: one span per response, the create's, whatever
polls, cancels or resumed streams follow. A resumed stream that stops before its terminal event
leaves the call pending for the next poll.

Only responses created through this instrumentation are recorded (a response another process created
is that process's to record). The registry (`PendingCalls`, one per `Instrumentation`) is bounded: a
call evicted from it, still pending at `uninstrument_openai()` or at interpreter exit, is finished with
usage `unavailable`.
"""

from __future__ import annotations

import atexit
import functools
import threading
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from spendscope._internal import ErrorSink, internal_error
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
    """Calls of background responses not finished yet, by response id; an LRU of at most `limit`.

    The first call parked registers `finish_all` to run at interpreter exit (after the app's providers
    were made, so before they flush: atexit runs the latest registered first); `close` removes it."""

    def __init__(self, limit: int = PENDING_LIMIT) -> None:
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

    def close(self) -> None:
        """Nothing will poll the pending calls any more: finish them, and drop the exit hook."""
        with self._lock:
            if self._exit_hook:
                atexit.unregister(self.finish_all)
                self._exit_hook = False
        self.finish_all()


@dataclass(frozen=True, slots=True)
class _Poll:
    """A retrieve, cancel or resumed stream of a response whose call is pending."""

    pending: PendingCalls
    response_id: str
    types: SDKTypes
    telemetry: ErrorSink | None


def _complete(response: Any, poll: _Poll) -> None:
    """Finish the pending call of a response seen in a terminal status, if it is still pending."""
    seen_id = getattr(response, "id", None)
    call = poll.pending.take(seen_id if isinstance(seen_id, str) and seen_id else poll.response_id)
    if call is None:
        return
    try:
        call.note_response(response)
        call.usage = RESPONSES.read_usage(getattr(response, "usage", None))
    except Exception:
        internal_error("background", call.telemetry)
    finally:
        call.finish()


def _on_event(event: Any, poll: _Poll) -> None:
    try:
        response = getattr(event, "response", None)
        if response is not None and getattr(response, "status", None) in TERMINAL:
            _complete(response, poll)
    except Exception:
        internal_error("background stream", poll.telemetry)


def _watch_stream(stream: Any, poll: _Poll) -> None:
    """Read the terminal event as it passes; unlike a create's stream, an early end finishes nothing."""
    inner: Iterator[Any] = stream._iterator

    def iterate() -> Iterator[Any]:
        for event in inner:
            _on_event(event, poll)
            yield event

    stream._iterator = iterate()


def _watch_async_stream(stream: Any, poll: _Poll) -> None:
    inner: AsyncIterator[Any] = stream._iterator

    async def iterate() -> AsyncIterator[Any]:
        async for event in inner:
            _on_event(event, poll)
            yield event

    stream._iterator = iterate()


def _observe(result: Any, poll: _Poll) -> None:
    types = poll.types
    if isinstance(result, types.stream):
        _watch_stream(result, poll)
    elif isinstance(result, types.async_stream):
        _watch_async_stream(result, poll)
    elif isinstance(result, types.legacy_response):  # with_raw_response; parse() is cached
        _observe(result.parse(), poll)
    elif isinstance(result, types.api_response):  # with_streaming_response: when the body is parsed
        _observe_parse(result, poll)
    elif isinstance(result, types.async_api_response):
        _observe_async_parse(result, poll)
    elif getattr(result, "status", None) in TERMINAL:
        _complete(result, poll)


def _observe_parse(result: Any, poll: _Poll) -> None:
    parse = result.parse

    def parse_and_observe(**kwargs: Any) -> Any:
        parsed = parse(**kwargs)
        _observe_if_pending(parsed, poll)
        return parsed

    result.parse = parse_and_observe


def _observe_async_parse(result: Any, poll: _Poll) -> None:
    parse = result.parse

    async def parse_and_observe(**kwargs: Any) -> Any:
        parsed = await parse(**kwargs)
        _observe_if_pending(parsed, poll)
        return parsed

    result.parse = parse_and_observe


def _observe_if_pending(result: Any, poll: _Poll) -> None:
    if poll.response_id not in poll.pending:
        return
    try:
        _observe(result, poll)
    except Exception:
        internal_error("background", poll.telemetry)


def _poll(
    pending: PendingCalls,
    types: SDKTypes,
    lookup: Lookup,
    client: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> _Poll | None:
    """The poll to observe, when its response's call is pending; anything else costs one dict lookup."""
    response_id = args[0] if args else kwargs.get("response_id")
    if not isinstance(response_id, str) or response_id not in pending:
        return None
    telemetry = lookup(client)
    return _Poll(pending, response_id, types, telemetry)


def wrap_poll(original: Callable[..., Any], *, lookup: Lookup, types: SDKTypes, pending: PendingCalls) -> Any:
    """`Responses.retrieve` / `cancel`: the result is returned untouched, after finishing the pending
    call of a response it shows terminal. The call was the create's: no new span is opened."""

    @functools.wraps(original)
    def poll(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = original(self, *args, **kwargs)
        if (seen := _poll(pending, types, lookup, self._client, args, kwargs)) is not None:
            _observe_if_pending(result, seen)
        return result

    return poll


def wrap_async_poll(
    original: Callable[..., Awaitable[Any]], *, lookup: Lookup, types: SDKTypes, pending: PendingCalls
) -> Any:
    @functools.wraps(original)
    async def poll(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = await original(self, *args, **kwargs)
        if (seen := _poll(pending, types, lookup, self._client, args, kwargs)) is not None:
            _observe_if_pending(result, seen)
        return result

    return poll
