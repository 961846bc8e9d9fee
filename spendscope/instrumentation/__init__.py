"""`instrument_openai` / `uninstrument_openai`, on a default `Instrumentation` made on first use.

Importing this package patches nothing, imports neither openai nor the prices, and creates no registry:
`instrument_openai()` does (instrumentation.py). Tests can make an `Instrumentation` of their own.
"""

from __future__ import annotations

import threading
from typing import Any

from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import TracerProvider

from spendscope.instrumentation.instrumentation import Instrumentation, Options

__all__ = [
    "Instrumentation",
    "Options",
    "default_instrumentation",
    "instrument_openai",
    "uninstrument_openai",
]

_default: Instrumentation | None = None
_default_lock = threading.Lock()


def default_instrumentation() -> Instrumentation:
    """The `Instrumentation` that `instrument_openai` and `configure` use, made on first use."""
    global _default
    with _default_lock:
        if _default is None:
            _default = Instrumentation()
        return _default


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
    The prices (genai-prices) are loaded here, not when `spendscope` is imported.
    """
    instrument(client, tracer_provider=tracer_provider, meter_provider=meter_provider, options=None)


def instrument(
    client: Any,
    *,
    tracer_provider: TracerProvider | None,
    meter_provider: MeterProvider | None,
    options: Options | None,
) -> None:
    """`instrument_openai` with explicit `options` (as `configure` resolves them)."""
    default_instrumentation().instrument(
        client, tracer_provider=tracer_provider, meter_provider=meter_provider, options=options
    )


def uninstrument_openai(client: Any = None) -> None:
    """Stop recording: for `client` only, or (None) everywhere, restoring the SDK's own methods."""
    if _default is not None:
        _default.uninstrument(client)
