"""Fixtures: a fresh OpenTelemetry pipeline per test (in-memory exporter and reader), the fake OpenAI
server on 127.0.0.1, and real openai clients pointed at it."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from spendscope import instrument_openai, uninstrument_openai
from spendscope.demo.fake_openai import FakeOpenAI

# ClickHouse fixtures (one local store server per test process; a database per test).
pytest_plugins = ["tests.store_fixtures"]

# A failure inside SpendScope must fail the test, not be swallowed (see spendscope/_internal.py).
os.environ["SPENDSCOPE_RAISE_INTERNAL_ERRORS"] = "1"

CONFORMANCE_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "conformance" / "openai"
API_KEY = "sk-proj-testkey0000000000000000wxyz"
PROJECT = "proj_test"


@dataclass
class Capture:
    """What the instrumentation emitted during one test."""

    exporter: InMemorySpanExporter
    reader: InMemoryMetricReader
    tracer_provider: TracerProvider
    meter_provider: MeterProvider

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def span(self) -> ReadableSpan:
        spans = self.spans()
        assert len(spans) == 1, [s.name for s in spans]
        return spans[0]

    def attrs(self) -> dict[str, Any]:
        return dict(self.span().attributes or {})

    def points(self, name: str) -> list[tuple[dict[str, Any], Any]]:
        """(attributes, point) for every data point of metric `name`."""
        data = self.reader.get_metrics_data()
        out: list[tuple[dict[str, Any], Any]] = []
        for resource_metrics in data.resource_metrics if data else []:
            for scope in resource_metrics.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        out += [(dict(p.attributes or {}), p) for p in metric.data.data_points]
        return out

    def total(self, name: str, **labels: Any) -> float:
        """Sum of a counter's points whose attributes include `labels`."""
        return sum(
            p.value for attrs, p in self.points(name) if all(attrs.get(k) == v for k, v in labels.items())
        )


def make_capture() -> Capture:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider(resource=Resource.create({"service.name": "test-app"}))
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    return Capture(exporter, reader, tracer_provider, meter_provider)


@pytest.fixture
def capture() -> Iterator[Capture]:
    cap = make_capture()
    instrument_openai(tracer_provider=cap.tracer_provider, meter_provider=cap.meter_provider)
    yield cap
    uninstrument_openai()
    cap.tracer_provider.shutdown()
    cap.meter_provider.shutdown()


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


def make_client(server: FakeOpenAI, **kwargs: Any) -> openai.OpenAI:
    options: dict[str, Any] = {
        "api_key": API_KEY,
        "project": PROJECT,
        "base_url": server.base_url,
        "websocket_base_url": server.websocket_base_url,
        "max_retries": 0,
        **kwargs,
    }
    return openai.OpenAI(**options)


@pytest.fixture
def client(server: FakeOpenAI) -> Iterator[openai.OpenAI]:
    c = make_client(server)
    yield c
    c.close()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def aclient(server: FakeOpenAI) -> AsyncIterator[openai.AsyncOpenAI]:
    c = openai.AsyncOpenAI(
        api_key=API_KEY,
        project=PROJECT,
        base_url=server.base_url,
        websocket_base_url=server.websocket_base_url,
        max_retries=0,
    )
    yield c
    await c.close()
