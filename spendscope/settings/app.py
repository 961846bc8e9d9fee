"""The app's settings: the price file (every component that prices calls), the instrumentation's, and
`configure()`'s (the standard OpenTelemetry variables)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from spendscope.settings._base import Settings
from spendscope.settings._types import Names, PriceFile, Text, Url, Whole


class PriceSettings(Settings):
    price_file: PriceFile = None


class InstrumentationSettings(PriceSettings):
    """What `instrument_openai()` reads."""

    user_label_limit: Whole = Field(
        1000,
        ge=0,
        validation_alias="SPENDSCOPE_USER_LABEL_LIMIT",
        description="distinct `user` metric label values per process; the rest become __other__",
    )
    inject_stream_usage: bool = Field(
        True,
        validation_alias="SPENDSCOPE_INJECT_STREAM_USAGE",
        description="ask OpenAI for usage on streams the caller did not ask it for (the chunk is hidden "
        "from the caller)",
    )


class AppSettings(InstrumentationSettings):
    """What `configure()` reads."""

    service_name: Text | None = Field(
        None, validation_alias="OTEL_SERVICE_NAME", description="service.name of this app"
    )
    otlp_endpoint: Url = Field(
        "http://localhost:4318",
        validation_alias="OTEL_EXPORTER_OTLP_ENDPOINT",
        description="OTLP/HTTP base URL; /v1/traces and /v1/metrics are appended",
    )
    traces_exporter: Names[Literal["otlp", "console", "none"]] = Field(
        ("otlp",), validation_alias="OTEL_TRACES_EXPORTER", description="where spans go"
    )
    metrics_exporter: Names[Literal["otlp", "prometheus", "console", "none"]] = Field(
        ("otlp",),
        validation_alias="OTEL_METRICS_EXPORTER",
        description="where metrics go; prometheus serves /metrics from the app itself",
    )
    metric_export_interval_ms: Whole = Field(
        60_000,
        ge=1,
        validation_alias="OTEL_METRIC_EXPORT_INTERVAL",
        description="milliseconds between metric exports (push exporters)",
    )
    prometheus_host: Text = Field(
        "localhost",
        validation_alias="OTEL_EXPORTER_PROMETHEUS_HOST",
        description="address to serve /metrics on",
    )
    prometheus_port: Whole = Field(
        9464,
        ge=0,
        le=65535,
        validation_alias="OTEL_EXPORTER_PROMETHEUS_PORT",
        description="port for /metrics",
    )
