"""Metrics the collector re-exposes: named, labelled and valued exactly as the app would expose them
itself with `configure(metrics_exporter="prometheus")`, plus `job` and `instance`."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import AggregationTemporality, PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from prometheus_client.parser import text_string_to_metric_families

import spendscope
from spendscope import configure, uninstrument_openai
from spendscope import names as n
from spendscope.collector import Collector, CollectorConfig
from spendscope.demo.fake_openai import FakeOpenAI
from spendscope.store import Store
from tests.conftest import make_client

Sample = tuple[str, frozenset[tuple[str, str]], float]


def scrape(url: str) -> str:
    return str(urllib.request.urlopen(url, timeout=5).read().decode())


def families(text: str, keep: Any) -> dict[str, tuple[str, str, set[Sample]]]:
    """name -> (type, help, samples) for the families `keep(name)` selects."""
    out: dict[str, tuple[str, str, set[Sample]]] = {}
    for family in text_string_to_metric_families(text):
        if keep(family.name):
            samples = {(s.name, frozenset(s.labels.items()), s.value) for s in family.samples}
            out[family.name] = (family.type, family.documentation, samples)
    return out


def ours(name: str) -> bool:
    return (
        name.startswith("spendscope_") and not name.startswith("spendscope_collector_")
    ) or name.startswith("gen_ai_")


@pytest.fixture
def collector(tmp_path: Path, store_dsn: str, store: Store) -> Iterator[Collector]:
    settings = CollectorConfig(listen=("127.0.0.1", 0), store=store_dsn, spool=tmp_path / "spool")
    with Collector(settings, store=store) as running:
        yield running


def test_reexposed_metrics_equal_what_the_app_exposes_itself(
    collector: Collector, server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.namespace=hr,service.instance.id=pod-7")
    app = configure(
        service_name="hr-app",
        traces_exporter="none",
        metrics_exporter=["otlp", "prometheus"],
        otlp_endpoint=collector.url,
        metric_export_interval_ms=3_600_000,
        prometheus_host="127.0.0.1",
        prometheus_port=0,
        set_global=False,
    )
    try:
        client = make_client(server)
        with spendscope.attributes(user="u-1", endpoint="cv-parsing", tenant="acme"):
            client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
            client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "again"}]
            )
        with spendscope.attributes(user="u-2", endpoint="interview", tenant="globex"):
            for _ in client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}], stream=True
            ):
                pass
            client.embeddings.create(model="text-embedding-3-small", input="hello")
        client.close()
        assert app.meter_provider.force_flush()  # pushes OTLP to the collector
        assert app.prometheus_address is not None
        host, port = app.prometheus_address
        own = families(scrape(f"http://{host}:{port}/metrics"), ours)
    finally:
        uninstrument_openai()
        app.shutdown()
    seen = families(scrape(collector.url + "/metrics"), ours)

    sample_names = {name for _, _, samples in own.values() for name, _, _ in samples}
    assert {n.PROM_COST, n.PROM_TOKENS, n.PROM_TOKEN_USAGE + "_bucket"} <= sample_names
    assert n.PROM_OPERATION_DURATION + "_bucket" in sample_names
    assert set(seen) == set(own)
    extra = {("job", "hr/hr-app"), ("instance", "pod-7")}
    for name, (kind, help_text, samples) in own.items():
        assert seen[name][:2] == (kind, help_text), name
        assert seen[name][2] == {(s, labels | extra, value) for s, labels, value in samples}, name
    text = scrape(collector.url + "/metrics")
    assert "spendscope_cost_usd_total{" in text and "gen_ai_client_token_usage_bucket{" in text
    assert "target_info{" in text and 'job="hr/hr-app"' in text


def _provider(url: str, instance: str, temporality: AggregationTemporality) -> MeterProvider:
    exporter = OTLPMetricExporter(
        endpoint=url + "/v1/metrics", preferred_temporality={Counter: temporality, Histogram: temporality}
    )
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    resource = Resource.create({"service.name": "worker", "service.instance.id": instance})
    view = View(instrument_name="latency", aggregation=ExplicitBucketHistogramAggregation((1.0, 10.0)))
    return MeterProvider(metric_readers=[reader], resource=resource, views=[view])


def test_processes_keep_their_own_series_and_deltas_accumulate(collector: Collector) -> None:
    cumulative = _provider(collector.url, "a", AggregationTemporality.CUMULATIVE)
    delta = _provider(collector.url, "b", AggregationTemporality.DELTA)
    for provider, amounts in ((cumulative, (2, 3)), (delta, (2, 3))):
        meter = provider.get_meter("worker")
        jobs = meter.create_counter("jobs", unit="{job}", description="Jobs done.")
        latency = meter.create_histogram("latency", unit="s", description="Job latency.")
        for amount in amounts:
            jobs.add(amount, {"queue": "q1"})
            latency.record(amount * 2, {"queue": "q1"})
            assert provider.force_flush()
    for provider in (cumulative, delta):
        provider.shutdown()
    seen = families(scrape(collector.url + "/metrics"), lambda name: name in ("jobs", "latency_seconds"))
    labels = {"a": {("job", "worker"), ("instance", "a"), ("queue", "q1")}}
    labels["b"] = {("job", "worker"), ("instance", "b"), ("queue", "q1")}
    scope = {("otel_scope_name", "worker"), ("otel_scope_version", ""), ("otel_scope_schema_url", "")}
    jobs_samples = {s for s in seen["jobs"][2]}
    assert jobs_samples == {
        ("jobs_total", frozenset(labels["a"] | scope), 5.0),
        ("jobs_total", frozenset(labels["b"] | scope), 5.0),
    }
    buckets = {
        (dict(lbls)["instance"], dict(lbls)["le"]): value
        for name, lbls, value in seen["latency_seconds"][2]
        if name == "latency_seconds_bucket"
    }
    # integral bounds render as the SDK's defaults and SpendScope's token buckets do in the app: le="10"
    assert buckets == {
        ("a", "1"): 0,
        ("a", "10"): 2,
        ("a", "+Inf"): 2,
        ("b", "1"): 0,
        ("b", "10"): 2,
        ("b", "+Inf"): 2,
    }
