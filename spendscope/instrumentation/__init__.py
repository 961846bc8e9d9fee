"""`instrument_openai` / `uninstrument_openai`.

The SDK's methods are wrapped once, at class level; each wrapper asks which `Telemetry`, if any, the
call's client belongs to (a client instrumented on its own, else the global instrumentation). So
instrumenting is idempotent, undoing it is exact, and a method reference captured earlier (such as
`with_raw_response`) simply stops recording after `uninstrument_openai()`.
"""

from __future__ import annotations

import functools
import importlib
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import TracerProvider

from spendscope import settings
from spendscope.instrumentation import _openai, background, batches, realtime
from spendscope.instrumentation.calls import SDKTypes, wrap_async, wrap_sync
from spendscope.instrumentation.endpoints import METHODS
from spendscope.instrumentation.telemetry import Telemetry
from spendscope.pricing import PriceFile, Pricer

__all__ = ["instrument_openai", "uninstrument_openai"]

_MARKER = "__spendscope_original__"


class _State:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        # (class, attribute, original or None when the class inherited it)
        self.patched: list[tuple[type, str, Any]] = []
        self.global_telemetry: Telemetry | None = None
        self.clients: weakref.WeakKeyDictionary[Any, Telemetry] = weakref.WeakKeyDictionary()
        self.telemetries: dict[tuple[object, object], Telemetry] = {}

    def lookup(self, client: Any) -> Telemetry | None:
        if self.clients:
            telemetry = self.clients.get(client)
            if telemetry is not None:
                return telemetry
        return self.global_telemetry


_state = _State()


def _patch(owner: type, attribute: str, make: Callable[[Any], Any]) -> None:
    own = owner.__dict__.get(attribute)
    original = getattr(owner, attribute)
    if getattr(original, _MARKER, None) is not None:
        return
    wrapper = make(original)
    setattr(wrapper, _MARKER, original)
    setattr(owner, attribute, wrapper)
    _state.patched.append((owner, attribute, own))


def _install() -> None:
    if _state.patched:
        return
    types = SDKTypes()
    lookup = _state.lookup
    for module_name, class_name, method, endpoint in METHODS:
        owner = getattr(importlib.import_module(module_name), class_name)
        is_async = class_name.startswith("Async")
        wrap = wrap_async if is_async else wrap_sync
        _patch(owner, method, functools.partial(wrap, endpoint=endpoint, lookup=lookup, types=types))
    factories: dict[str, Callable[[Any], Any]] = {
        "connect": functools.partial(realtime.wrap_connect, lookup=lookup),
        "enter": realtime.wrap_enter,
        "async_enter": realtime.wrap_async_enter,
        "recv_bytes": realtime.wrap_recv_bytes,
        "async_recv_bytes": realtime.wrap_async_recv_bytes,
        "close": realtime.wrap_close,
        "async_close": realtime.wrap_async_close,
    }
    for module_name, class_name, attribute, kind in realtime.PATCHES:
        owner = getattr(importlib.import_module(module_name), class_name)
        _patch(owner, attribute, factories[kind])
    for module_name, class_name, attribute, is_async in batches.PATCHES:
        owner = getattr(importlib.import_module(module_name), class_name)
        wrap_content = batches.wrap_async_content if is_async else batches.wrap_content
        _patch(owner, attribute, functools.partial(wrap_content, lookup=lookup))
    for module_name, class_name, attribute, is_async in background.PATCHES:
        owner = getattr(importlib.import_module(module_name), class_name)
        wrap_poll = background.wrap_async_poll if is_async else background.wrap_poll
        _patch(owner, attribute, functools.partial(wrap_poll, lookup=lookup, types=types))


@dataclass(frozen=True)
class Options:
    """Instrumentation settings; `instrument_openai` takes them from the environment, `configure` from
    its arguments."""

    pricer: Pricer
    user_label_limit: int
    inject_stream_usage: bool

    @classmethod
    def resolve(
        cls,
        *,
        price_file: Path | str | None = None,
        user_label_limit: int | None = None,
        inject_stream_usage: bool | None = None,
    ) -> Options:
        path = settings.resolve("price_file", price_file)
        return cls(
            pricer=Pricer(PriceFile.load(path) if path is not None else None),
            user_label_limit=settings.resolve("user_label_limit", user_label_limit),
            inject_stream_usage=settings.resolve("inject_stream_usage", inject_stream_usage),
        )


def _telemetry(
    tracer_provider: TracerProvider | None, meter_provider: MeterProvider | None, options: Options | None
) -> Telemetry:
    key = (tracer_provider, meter_provider)
    telemetry = _state.telemetries.get(key)
    if telemetry is None:
        options = options or Options.resolve()
        telemetry = Telemetry(
            tracer_provider,
            meter_provider,
            pricer=options.pricer,
            user_label_limit=options.user_label_limit,
            inject_stream_usage=options.inject_stream_usage,
        )
        _state.telemetries[key] = telemetry
    return telemetry


def instrument_openai(
    client: Any = None,
    *,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
) -> None:
    """Record every OpenAI call of `client` (an `OpenAI`/`AsyncOpenAI`), or of every client when None.

    Providers default to the global OpenTelemetry ones. Calling it again for the same client (or
    globally) changes nothing. Instrument before a client's first `with_raw_response` use.
    An openai release outside the tested range (`spendscope[openai]`) is logged once, as a warning.
    Settings (price file, user label cap) come from the environment; see `spendscope.configure`.
    """
    instrument(client, tracer_provider=tracer_provider, meter_provider=meter_provider, options=None)


def instrument(
    client: Any,
    *,
    tracer_provider: TracerProvider | None,
    meter_provider: MeterProvider | None,
    options: Options | None,
) -> None:
    with _state.lock:
        telemetry = _telemetry(tracer_provider, meter_provider, options)
        _install()
        _openai.check_version()
        if client is None:
            if _state.global_telemetry is None:
                _state.global_telemetry = telemetry
        elif client not in _state.clients:
            _state.clients[client] = telemetry


def uninstrument_openai(client: Any = None) -> None:
    """Stop recording: for `client` only, or (None) everywhere, restoring the SDK's own methods."""
    with _state.lock:
        if client is not None:
            _state.clients.pop(client, None)
            return
        _state.global_telemetry = None
        _state.clients = weakref.WeakKeyDictionary()
        _state.telemetries.clear()
        for owner, attribute, original in reversed(_state.patched):
            if original is None:
                delattr(owner, attribute)
            else:
                setattr(owner, attribute, original)
        _state.patched.clear()
        # Nothing will poll them any more: they are finished with usage unavailable.
        background.pending.finish_all()
