"""Realtime sessions (`client.realtime.connect`): one usage record per `response.done`.

Every record of a connection carries the quantity `realtime_seconds`: the connection's time since its
previous record (its first: since it opened), so a connection's records add up to its
duration up to its last response (a response still pending at close takes the time up to the close),
with no code in the app.

The realtime response carries no model. Every response, answered or still pending at close, has the
model passed to `connect` as its request model and the session's (from `session.created` /
`session.updated`, else the one passed to `connect`) as its response model. Every received message
passes through `recv_bytes`, whichever way the app reads events (`recv`, iteration, `dispatch_events`,
or `recv_bytes` with its own parser), so that is where we look.
"""

from __future__ import annotations

import functools
import json
import threading
import time
from collections.abc import Callable
from typing import Any

from spendscope import names as n
from spendscope._internal import internal_error
from spendscope.attribution import Attribution, current
from spendscope.instrumentation.telemetry import LLMCall, Lookup, Telemetry
from spendscope.usage import realtime_usage, transcription_usage

_SESSION_ATTR = "_spendscope_realtime"
_INTERESTING = (b"response.done", b"response.created", b"session.", b"input_audio_transcription.completed")


def _interesting(message: bytes) -> bool:
    # Events put "type" first; audio deltas are large, so look at the head before scanning the rest.
    head = message[:200]
    if b'"type"' in head:
        return any(marker in head for marker in _INTERESTING)
    return any(marker in message for marker in _INTERESTING)


class RealtimeSession:
    def __init__(self, telemetry: Telemetry, model: str, client: Any, attribution: Attribution) -> None:
        self.telemetry = telemetry
        self.requested_model = model  # what connect() asked for
        self.model = model  # what the session reports it runs
        self.transcription_model: str | None = None
        self.client = client
        self.attribution = attribution
        self._started: dict[str, int] = {}  # response id -> response.created time
        self._lock = threading.Lock()
        self._mark_ns = time.time_ns()  # the connection's time up to here is on its records

    def opened(self) -> None:
        """The connection is open: its time starts now."""
        with self._lock:
            self._mark_ns = time.time_ns()

    def _seconds_since_mark(self) -> float:
        now = time.time_ns()
        with self._lock:
            elapsed, self._mark_ns = max(now - self._mark_ns, 0), now
        return elapsed / 1e9

    def on_message(self, message: bytes | str) -> None:
        raw = message.encode() if isinstance(message, str) else message
        if not _interesting(raw):
            return
        event = json.loads(raw)
        if not isinstance(event, dict):
            return
        event_type = event.get("type")
        if event_type in ("session.created", "session.updated"):
            self._note_session(event.get("session"))
        elif event_type == "response.created":
            response_id = (event.get("response") or {}).get("id")
            if isinstance(response_id, str):
                with self._lock:
                    self._started[response_id] = time.time_ns()
        elif event_type == "response.done":
            self._response_done(event.get("response") or {})
        elif event_type == "conversation.item.input_audio_transcription.completed":
            self._transcription_done(event)

    def _note_session(self, session: Any) -> None:
        if not isinstance(session, dict):
            return
        model = session.get("model")
        if isinstance(model, str) and model:
            self.model = model
        transcription = ((session.get("audio") or {}).get("input") or {}).get("transcription") or {}
        if isinstance(transcription, dict) and isinstance(transcription.get("model"), str):
            self.transcription_model = transcription["model"]

    def _response_call(self, response_id: str | None, start: int | None) -> LLMCall:
        """One response's call, whether done or still pending at close: the request model is what
        connect() asked for, the response model what the session reports it runs."""
        call = self.telemetry.start_call(
            n.OP_REALTIME,
            "realtime",
            self.requested_model,
            self.client,
            attribution=self.attribution,
            start_ns=start,
        )
        call.response_model = self.model
        call.response_id = response_id
        call.span.set_attribute(n.QUANTITY_PREFIX + n.QUANTITY_REALTIME_SECONDS, self._seconds_since_mark())
        return call

    def _response_done(self, response: dict[str, Any]) -> None:
        response_id = response.get("id")
        with self._lock:
            start = self._started.pop(response_id, None) if isinstance(response_id, str) else None
        call = self._response_call(response_id if isinstance(response_id, str) else None, start)
        call.usage = realtime_usage(response.get("usage"))
        call.finish()

    def _transcription_done(self, event: dict[str, Any]) -> None:
        usage = transcription_usage(event.get("usage"))
        if usage is None:
            return
        model = self.transcription_model or "unknown"
        call = self.telemetry.start_call(
            n.OP_TRANSCRIPTION, "realtime", model, self.client, attribution=self.attribution
        )
        call.usage = usage
        call.finish()

    def close(self) -> None:
        """Responses created but never done when the connection closed: usage unavailable."""
        with self._lock:
            pending, self._started = self._started, {}
        for response_id, start in pending.items():
            self._response_call(response_id, start).finish()


def _session(obj: Any) -> RealtimeSession | None:
    session = getattr(obj, _SESSION_ATTR, None)
    return session if isinstance(session, RealtimeSession) else None


def _guarded(session: RealtimeSession, action: Callable[[], None], where: str) -> None:
    try:
        action()
    except Exception:
        internal_error(where, session.telemetry)


def wrap_connect(original: Callable[..., Any], *, lookup: Lookup) -> Any:
    """`Realtime.connect` / `AsyncRealtime.connect` (both synchronous): tag the connection manager."""

    @functools.wraps(original)
    def connect(self: Any, *args: Any, **kwargs: Any) -> Any:
        manager = original(self, *args, **kwargs)
        telemetry = lookup(self._client)
        if telemetry is not None:
            try:
                model = kwargs.get("model")
                model = model if isinstance(model, str) and model else "unknown"
                setattr(manager, _SESSION_ATTR, RealtimeSession(telemetry, model, self._client, current()))
            except Exception:
                internal_error("realtime connect", telemetry)
        return manager

    return connect


def wrap_enter(original: Callable[..., Any]) -> Any:
    """`RealtimeConnectionManager.__enter__`: hand the session to the connection it opens."""

    @functools.wraps(original)
    def enter(self: Any) -> Any:
        connection = original(self)
        if (session := _session(self)) is not None:
            setattr(connection, _SESSION_ATTR, session)
            session.opened()
        return connection

    return enter


def wrap_async_enter(original: Callable[..., Any]) -> Any:
    @functools.wraps(original)
    async def enter(self: Any) -> Any:
        connection = await original(self)
        if (session := _session(self)) is not None:
            setattr(connection, _SESSION_ATTR, session)
            session.opened()
        return connection

    return enter


def wrap_recv_bytes(original: Callable[..., Any]) -> Any:
    @functools.wraps(original)
    def recv_bytes(self: Any) -> Any:
        message = original(self)
        if (session := _session(self)) is not None:
            _guarded(session, lambda: session.on_message(message), "realtime message")
        return message

    return recv_bytes


def wrap_async_recv_bytes(original: Callable[..., Any]) -> Any:
    @functools.wraps(original)
    async def recv_bytes(self: Any) -> Any:
        message = await original(self)
        if (session := _session(self)) is not None:
            _guarded(session, lambda: session.on_message(message), "realtime message")
        return message

    return recv_bytes


def wrap_close(original: Callable[..., Any]) -> Any:
    @functools.wraps(original)
    def close(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return original(self, *args, **kwargs)
        finally:
            if (session := _session(self)) is not None:
                _guarded(session, session.close, "realtime close")

    return close


def wrap_async_close(original: Callable[..., Any]) -> Any:
    @functools.wraps(original)
    async def close(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return await original(self, *args, **kwargs)
        finally:
            if (session := _session(self)) is not None:
                _guarded(session, session.close, "realtime close")

    return close


_MODULE = "openai.resources.realtime.realtime"
# (module, class, attribute, wrapper factory taking the original)
PATCHES: tuple[tuple[str, str, str, str], ...] = (
    (_MODULE, "Realtime", "connect", "connect"),
    (_MODULE, "AsyncRealtime", "connect", "connect"),
    (_MODULE, "RealtimeConnectionManager", "__enter__", "enter"),
    (_MODULE, "RealtimeConnectionManager", "enter", "enter"),
    (_MODULE, "AsyncRealtimeConnectionManager", "__aenter__", "async_enter"),
    (_MODULE, "AsyncRealtimeConnectionManager", "enter", "async_enter"),
    (_MODULE, "RealtimeConnection", "recv_bytes", "recv_bytes"),
    (_MODULE, "AsyncRealtimeConnection", "recv_bytes", "async_recv_bytes"),
    (_MODULE, "RealtimeConnection", "close", "close"),
    (_MODULE, "AsyncRealtimeConnection", "close", "async_close"),
)
