"""`spendscope.configure()`: OpenTelemetry tracer and meter providers from the standard environment
variables, optionally a Prometheus /metrics endpoint served by the app itself, and the instrumentation.

The OpenTelemetry SDK is imported by `configure()`, not when an app imports spendscope.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opentelemetry import metrics, trace

from spendscope.instrumentation import Options, instrument

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import MetricReader
    from opentelemetry.sdk.trace import TracerProvider


@dataclass
class Configuration:
    """What `configure` set up. `shutdown()` flushes and stops it."""

    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    prometheus_address: tuple[str, int] | None = None  # where /metrics is served, if it is
    # The /metrics servers `configure` started, stopped by `shutdown()`; not a constructor argument.
    _servers: list[Any] = field(default_factory=list, init=False, repr=False, compare=False)

    def shutdown(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


def configure(
    *,
    service_name: str | None = None,
    otlp_endpoint: str | None = None,
    traces_exporter: str | list[str] | None = None,
    metrics_exporter: str | list[str] | None = None,
    metric_export_interval_ms: int | None = None,
    prometheus_host: str | None = None,
    prometheus_port: int | None = None,
    user_label_limit: int | None = None,
    price_file: str | Path | None = None,
    inject_stream_usage: bool | None = None,
    instrument_openai: bool = True,
    set_global: bool = True,
) -> Configuration:
    """Set up tracing, metrics and the OpenAI instrumentation in one call.

    Each argument falls back to its environment variable (`OTEL_SERVICE_NAME`,
    `OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_TRACES_EXPORTER`, `OTEL_METRICS_EXPORTER`,
    `OTEL_METRIC_EXPORT_INTERVAL`, `OTEL_EXPORTER_PROMETHEUS_HOST`/`_PORT`,
    `SPENDSCOPE_USER_LABEL_LIMIT`, `SPENDSCOPE_PRICE_FILE`, `SPENDSCOPE_INJECT_STREAM_USAGE`), then to
    its default (`spendscope.settings.app.AppSettings`). `metrics_exporter="prometheus"` serves
    /metrics from this process. A bad value raises `spendscope.ConfigurationError` before anything is
    started.
    """
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import SERVICE_INSTANCE_ID, SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    from spendscope.settings.app import AppSettings  # pydantic: loaded here, not by `import spendscope`

    # Resolve (and so validate) everything before starting anything.
    settings = AppSettings.resolve(
        service_name=service_name,
        otlp_endpoint=otlp_endpoint,
        traces_exporter=traces_exporter,
        metrics_exporter=metrics_exporter,
        metric_export_interval_ms=metric_export_interval_ms,
        prometheus_host=prometheus_host,
        prometheus_port=prometheus_port,
        user_label_limit=user_label_limit,
        price_file=price_file,
        inject_stream_usage=inject_stream_usage,
    )
    name, endpoint = settings.service_name, settings.otlp_endpoint
    span_exporters, metric_exporters = settings.traces_exporter, settings.metrics_exporter
    interval = settings.metric_export_interval_ms
    prom_host, prom_port = settings.prometheus_host, settings.prometheus_port
    options = Options.from_settings(settings)

    resource = Resource.create({SERVICE_NAME: name} if name else {})
    if SERVICE_INSTANCE_ID not in resource.attributes:
        # Several processes of one service must not overwrite each other's series once a collector
        # re-exposes their metrics (Prometheus' `instance` label comes from this attribute).
        resource = resource.merge(Resource({SERVICE_INSTANCE_ID: str(uuid.uuid4())}))
    tracer_provider = TracerProvider(resource=resource)
    for span_exporter in span_exporters:
        if span_exporter == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            tracer_provider.add_span_processor(
                BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces"))
            )
        elif span_exporter == "console":
            tracer_provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))

    readers: list[MetricReader] = []
    servers: list[Any] = []
    prometheus_address: tuple[str, int] | None = None
    for exporter in metric_exporters:
        if exporter == "otlp":
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

            exporter_ = OTLPMetricExporter(endpoint=f"{endpoint}/v1/metrics")
            readers.append(PeriodicExportingMetricReader(exporter_, export_interval_millis=interval))
        elif exporter == "console":
            readers.append(
                PeriodicExportingMetricReader(ConsoleMetricExporter(), export_interval_millis=interval)
            )
        elif exporter == "prometheus":
            from opentelemetry.exporter.prometheus import PrometheusMetricReader
            from prometheus_client import start_http_server

            readers.append(PrometheusMetricReader())
            server, _ = start_http_server(prom_port, addr=prom_host)
            servers.append(server)
            prometheus_address = (prom_host, server.server_port)
    meter_provider = MeterProvider(resource=resource, metric_readers=readers)

    if set_global:
        trace.set_tracer_provider(tracer_provider)
        metrics.set_meter_provider(meter_provider)
    if instrument_openai:
        instrument(None, tracer_provider=tracer_provider, meter_provider=meter_provider, options=options)
    configuration = Configuration(tracer_provider, meter_provider, prometheus_address)
    configuration._servers.extend(servers)
    return configuration
