"""`Instrumentation`: the SDK methods it patched, the telemetry of each client, and the registries its
wrappers share.

The SDK's methods are wrapped once, at class level; each wrapper asks which `Telemetry`, if any, the
call's client belongs to (a client instrumented on its own, else the global instrumentation). So
instrumenting is idempotent, undoing it is exact, and a method reference captured earlier (such as
`with_raw_response`) simply stops recording after `uninstrument`.
"""

from __future__ import annotations

import functools
import importlib
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import TracerProvider

from spendscope.instrumentation import _openai, background, batches, realtime
from spendscope.instrumentation.calls import SDKTypes, wrap_async, wrap_sync
from spendscope.instrumentation.endpoints import METHODS
from spendscope.instrumentation.telemetry import Telemetry

if TYPE_CHECKING:  # genai-prices and pydantic are loaded by `Options.resolve`, not at import
    from spendscope.pricing import Pricer
    from spendscope.settings.app import InstrumentationSettings

# On each wrapper: the `Instrumentation` that installed it.
_MARKER = "__spendscope_instrumentation__"

Patch = tuple[type, str, Callable[[Any], Any]]  # (class, attribute, wrapper factory taking the original)


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
        """Settings from the arguments, else the environment; loads the prices (genai-prices)."""
        from spendscope.settings.app import InstrumentationSettings

        return cls.from_settings(
            InstrumentationSettings.resolve(
                price_file=price_file,
                user_label_limit=user_label_limit,
                inject_stream_usage=inject_stream_usage,
            )
        )

    @classmethod
    def from_settings(cls, settings: InstrumentationSettings) -> Options:
        """The options of resolved settings; loads the prices (genai-prices)."""
        from spendscope.pricing import PriceFile, Pricer

        path = settings.price_file
        return cls(
            pricer=Pricer(PriceFile.load(path) if path is not None else None),
            user_label_limit=settings.user_label_limit,
            inject_stream_usage=settings.inject_stream_usage,
        )


def _class(module_name: str, class_name: str) -> type:
    owner = getattr(importlib.import_module(module_name), class_name)
    assert isinstance(owner, type)
    return owner


class Instrumentation:
    """The OpenAI instrumentation of a process (`spendscope.instrument_openai` uses a default one, made
    on first use), or of a test that makes its own. It owns:

    - the SDK methods it patched, with their originals (restored by `uninstrument`);
    - one `Telemetry` per (tracer provider, meter provider), and which clients record to which: one
      telemetry for every client, and others for clients instrumented on their own;
    - `pending`: the calls of background responses waiting for their usage (`background.PendingCalls`),
      handed to each `Telemetry` and so to each call;
    - `seen_files`: the batch output files already recorded (`batches.SeenFiles`).

    openai's methods are patched at class level, so one `Instrumentation` at a time can be installed;
    installing a second one while another is raises `RuntimeError`.
    """

    def __init__(
        self,
        *,
        pending_limit: int = background.PENDING_LIMIT,
        remembered_files: int = batches.REMEMBERED_FILES,
    ) -> None:
        self.pending = background.PendingCalls(pending_limit)
        self.seen_files = batches.SeenFiles(remembered_files)
        self.telemetries: dict[tuple[object, object], Telemetry] = {}
        self._lock = threading.RLock()
        # (class, attribute, original or None when the class inherited it)
        self._patched: list[tuple[type, str, Any]] = []
        self._global: Telemetry | None = None
        self._clients: weakref.WeakKeyDictionary[Any, Telemetry] = weakref.WeakKeyDictionary()

    def lookup(self, client: Any) -> Telemetry | None:
        """The telemetry a call of `client` records to; None when it is not instrumented."""
        if self._clients:
            telemetry = self._clients.get(client)
            if telemetry is not None:
                return telemetry
        return self._global

    def instrument(
        self,
        client: Any = None,
        *,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        options: Options | None = None,
    ) -> None:
        """Record the calls of `client`, or of every client when None (see `instrument_openai`).
        `options` default to the environment's, read when a pair of providers is first seen."""
        with self._lock:
            telemetry = self._telemetry(tracer_provider, meter_provider, options)
            self._install()
            _openai.check_version()
            if client is None:
                if self._global is None:
                    self._global = telemetry
            elif client not in self._clients:
                self._clients[client] = telemetry

    def uninstrument(self, client: Any = None) -> None:
        """Stop recording `client`, or (None) everything: the SDK's own methods are restored, and the
        background calls still pending are finished with usage unavailable (nothing will poll them)."""
        with self._lock:
            if client is not None:
                self._clients.pop(client, None)
                return
            self._global = None
            self._clients = weakref.WeakKeyDictionary()
            self.telemetries.clear()
            for owner, attribute, original in reversed(self._patched):
                if original is None:
                    delattr(owner, attribute)
                else:
                    setattr(owner, attribute, original)
            self._patched.clear()
            self.pending.close()

    def _telemetry(
        self,
        tracer_provider: TracerProvider | None,
        meter_provider: MeterProvider | None,
        options: Options | None,
    ) -> Telemetry:
        key = (tracer_provider, meter_provider)
        telemetry = self.telemetries.get(key)
        if telemetry is None:
            options = options or Options.resolve()
            telemetry = Telemetry(
                tracer_provider,
                meter_provider,
                pricer=options.pricer,
                user_label_limit=options.user_label_limit,
                pending=self.pending,
                inject_stream_usage=options.inject_stream_usage,
            )
            self.telemetries[key] = telemetry
        return telemetry

    def _install(self) -> None:
        if self._patched:
            return
        patches = self._patches(SDKTypes())
        for owner, attribute, _ in patches:
            holder = getattr(getattr(owner, attribute), _MARKER, None)
            if holder is not None and holder is not self:
                raise RuntimeError(
                    f"openai's {owner.__name__}.{attribute} is instrumented by another spendscope "
                    "Instrumentation; uninstrument that one first"
                )
        for owner, attribute, make in patches:
            own = owner.__dict__.get(attribute)
            original = getattr(owner, attribute)
            if getattr(original, _MARKER, None) is self:
                continue
            wrapper = make(original)
            setattr(wrapper, _MARKER, self)
            setattr(owner, attribute, wrapper)
            self._patched.append((owner, attribute, own))

    def _patches(self, types: SDKTypes) -> list[Patch]:
        lookup = self.lookup
        patches: list[Patch] = []
        for module_name, class_name, method, endpoint in METHODS:
            wrap = wrap_async if class_name.startswith("Async") else wrap_sync
            make = functools.partial(wrap, endpoint=endpoint, lookup=lookup, types=types)
            patches.append((_class(module_name, class_name), method, make))
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
            patches.append((_class(module_name, class_name), attribute, factories[kind]))
        for module_name, class_name, attribute, is_async in batches.PATCHES:
            wrap_content = batches.wrap_async_content if is_async else batches.wrap_content
            make = functools.partial(wrap_content, lookup=lookup, seen=self.seen_files)
            patches.append((_class(module_name, class_name), attribute, make))
        for module_name, class_name, attribute, is_async in background.PATCHES:
            wrap_poll = background.wrap_async_poll if is_async else background.wrap_poll
            make = functools.partial(wrap_poll, lookup=lookup, types=types, pending=self.pending)
            patches.append((_class(module_name, class_name), attribute, make))
        return patches
