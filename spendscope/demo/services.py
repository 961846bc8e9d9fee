"""The demo workload's instrumented services: each its own telemetry (its `service.name`), exporting
OTLP/HTTP to one collector, set up the first time the workload hands it a client."""

from __future__ import annotations

from types import TracebackType
from typing import Any

from spendscope.config import Configuration, configure
from spendscope.instrumentation import instrument, uninstrument_openai


class DemoServices:
    """`instrument` is the workload's `on_client` hook. On exit the clients are uninstrumented and
    every service's telemetry is shut down, which exports what is left: nothing recorded stays unexported."""

    def __init__(
        self, url: str, *, metrics_exporter: str = "otlp", metric_export_interval_ms: int | None = None
    ) -> None:
        self.url = url
        self.metrics_exporter = metrics_exporter
        self.metric_export_interval_ms = metric_export_interval_ms
        self.configurations: dict[str, Configuration] = {}

    def instrument(self, client: Any, service: str) -> None:
        conf = self.configurations.get(service)
        if conf is None:
            conf = self.configurations[service] = configure(
                service_name=service,
                otlp_endpoint=self.url,
                traces_exporter="otlp",
                metrics_exporter=self.metrics_exporter,
                metric_export_interval_ms=self.metric_export_interval_ms,
                instrument_openai=False,
                set_global=False,
            )
        instrument(
            client, tracer_provider=conf.tracer_provider, meter_provider=conf.meter_provider, options=None
        )

    def flush(self) -> bool:
        """Export now, not at the next batch or metric interval; False if an export timed out."""
        flushed = True
        for conf in self.configurations.values():
            flushed &= conf.tracer_provider.force_flush()
            flushed &= conf.meter_provider.force_flush()
        return flushed

    def __enter__(self) -> DemoServices:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        uninstrument_openai()
        for conf in self.configurations.values():
            conf.shutdown()  # exports what is left: the batch span processor's queue, a last collection
