"""Run the demo workload with SpendScope instrumenting it, into an in-memory OpenTelemetry pipeline."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from spendscope import instrument_openai, names, uninstrument_openai
from spendscope.demo import workload
from spendscope.demo.report import summarize
from spendscope.fake_openai import FakeOpenAI


@dataclass
class DemoResult:
    outcome: workload.Outcome
    spans: Sequence[Mapping[str, Any]]  # span attributes, one mapping per LLM call
    span_cost_usd: Decimal
    metric_cost_usd: float


def _counter_total(reader: InMemoryMetricReader, name: str) -> float:
    data = reader.get_metrics_data()
    total = 0.0
    for resource in data.resource_metrics if data else []:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == name:
                    total += sum(getattr(point, "value", 0) for point in metric.data.data_points)
    return total


def run_demo(seed: int = 7) -> DemoResult:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider(resource=Resource.create({"service.name": "spendscope-demo"}))
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(resource=tracer_provider.resource, metric_readers=[reader])
    with FakeOpenAI() as server:
        instrument_openai(tracer_provider=tracer_provider, meter_provider=meter_provider)
        try:
            outcome = workload.run(server, seed=seed)
        finally:
            uninstrument_openai()
    spans = [dict(span.attributes or {}) for span in exporter.get_finished_spans()]
    metric_cost = _counter_total(reader, names.METRIC_COST)
    tracer_provider.shutdown()
    meter_provider.shutdown()
    return DemoResult(outcome, spans, summarize(spans, None)[0].cost_usd, metric_cost)
