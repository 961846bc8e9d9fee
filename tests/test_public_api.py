"""The public surface is small on purpose; this pins it (names are part of the product)."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import spendscope

ROOT = Path(__file__).resolve().parents[1]


def test_exported_names() -> None:
    assert sorted(spendscope.__all__) == [
        "Configuration",
        "ConfigurationError",
        "__version__",
        "attributes",
        "configure",
        "instrument_openai",
        "uninstrument_openai",
    ]
    assert list(inspect.signature(spendscope.instrument_openai).parameters) == [
        "client",
        "tracer_provider",
        "meter_provider",
    ]
    assert list(inspect.signature(spendscope.attributes).parameters) == [
        "user",
        "endpoint",
        "tenant",
        "quantities",
        "extra",
    ]
    quantities = inspect.signature(spendscope.attributes).parameters["quantities"]
    assert quantities.kind is inspect.Parameter.KEYWORD_ONLY and quantities.default is None
    assert list(inspect.signature(spendscope.configure).parameters) == [
        "service_name",
        "otlp_endpoint",
        "traces_exporter",
        "metrics_exporter",
        "metric_export_interval_ms",
        "prometheus_host",
        "prometheus_port",
        "user_label_limit",
        "price_file",
        "inject_stream_usage",
        "instrument_openai",
        "set_global",
    ]
    kinds = {p.kind for p in inspect.signature(spendscope.configure).parameters.values()}
    assert kinds == {inspect.Parameter.KEYWORD_ONLY}
    # what `configure` returns; its /metrics servers are its own business, not a constructor argument
    assert list(inspect.signature(spendscope.Configuration).parameters) == [
        "tracer_provider",
        "meter_provider",
        "prometheus_address",
    ]


def test_importing_spendscope_loads_neither_openai_nor_the_prices() -> None:
    """openai, genai-prices and pydantic are loaded when instrumenting, the OpenTelemetry SDK by
    `configure()`, not when an app imports spendscope; nor is any instrumentation state created then."""
    heavy = ("genai_prices", "pydantic", "openai", "opentelemetry.sdk")
    code = (
        "import sys, spendscope, spendscope.instrumentation as i; "
        f"print([m for m in {heavy!r} if m in sys.modules], i._default)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[] None"


def test_ruff_and_mypy_strict_are_clean() -> None:
    paths = [p for p in ("spendscope", "tests", "bench") if (ROOT / p).exists()]
    ruff = subprocess.run(
        [sys.executable, "-m", "ruff", "check", *paths], cwd=ROOT, capture_output=True, text=True
    )
    assert ruff.returncode == 0, ruff.stdout + ruff.stderr
    mypy = subprocess.run(
        [sys.executable, "-m", "mypy", "spendscope"], cwd=ROOT, capture_output=True, text=True
    )
    assert mypy.returncode == 0, mypy.stdout + mypy.stderr
