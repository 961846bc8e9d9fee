"""What the collector's /metrics takes from clients (spendscope/collector/_metric_rules.py): valid
Prometheus names only, none in SpendScope's own namespaces, counters that only count up, well-formed
histograms, and one metric per Prometheus name. A refused metric is answered with partial_success when
it arrives; no request can make a scrape fail (checked with Prometheus' own parser, promtool) or
change another client's series."""

from __future__ import annotations

import math
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1 import metrics_pb2
from prometheus_client.parser import text_string_to_metric_families

from spendscope import names as n
from spendscope.collector import Collector, CollectorConfig
from spendscope.store import Store
from tests.monitoring import binary
from tests.test_collector import PROTOBUF, request

START = 1_790_000_000_000_000_000
CUMULATIVE = metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE
DELTA = metrics_pb2.AGGREGATION_TEMPORALITY_DELTA


# --- metrics made by hand (the SDK refuses to make most of these) -------------------------------------------
def kvs(attributes: dict[str, str]) -> list[KeyValue]:
    return [KeyValue(key=k, value=AnyValue(string_value=v)) for k, v in attributes.items()]


def gauge(
    name: str, value: float, attributes: dict[str, str] | None = None, unit: str = ""
) -> metrics_pb2.Metric:
    metric = metrics_pb2.Metric(name=name, unit=unit)
    point = metric.gauge.data_points.add(as_double=value, time_unix_nano=START + 1)
    point.attributes.extend(kvs(attributes or {}))
    return metric


def counter(
    name: str,
    value: float,
    attributes: dict[str, str] | None = None,
    *,
    start: int = START,
    at: int = START + 1,
    temporality: int = CUMULATIVE,
    unit: str = "",
) -> metrics_pb2.Metric:
    metric = metrics_pb2.Metric(name=name, unit=unit)
    metric.sum.aggregation_temporality = temporality
    metric.sum.is_monotonic = True
    point = metric.sum.data_points.add(as_double=value, start_time_unix_nano=start, time_unix_nano=at)
    point.attributes.extend(kvs(attributes or {}))
    return metric


def histogram(
    name: str,
    bounds: list[float],
    counts: list[int],
    *,
    count: int | None = None,
    total: float = 1.0,
    attributes: dict[str, str] | None = None,
) -> metrics_pb2.Metric:
    metric = metrics_pb2.Metric(name=name)
    metric.histogram.aggregation_temporality = CUMULATIVE
    point = metric.histogram.data_points.add(
        start_time_unix_nano=START,
        time_unix_nano=START + 1,
        count=sum(counts) if count is None else count,
        sum=total,
        explicit_bounds=bounds,
        bucket_counts=counts,
    )
    point.attributes.extend(kvs(attributes or {}))
    return metric


def export(*metrics: metrics_pb2.Metric, service: str = "hr-app", instance: str = "i-1") -> bytes:
    message = ExportMetricsServiceRequest()
    rm = message.resource_metrics.add()
    rm.resource.attributes.extend(kvs({"service.name": service, "service.instance.id": instance}))
    rm.scope_metrics.add().metrics.extend(metrics)
    data: bytes = message.SerializeToString()
    return data


def send(collector: Collector, body: bytes) -> tuple[int, str]:
    """(points refused, why), asserting the request itself was answered 200."""
    status, _, answer = request(collector.url, "POST", "/v1/metrics", body, {"Content-Type": PROTOBUF})
    assert status == 200, answer
    response = ExportMetricsServiceResponse()
    response.ParseFromString(answer)
    return response.partial_success.rejected_data_points, response.partial_success.error_message


def scrape(collector: Collector) -> str:
    """/metrics, which must answer 200 and parse with Prometheus' own parser (promtool) and
    prometheus-client's."""
    with urllib.request.urlopen(collector.url + "/metrics", timeout=10) as response:
        assert response.status == 200
        text = str(response.read().decode())
    checked = subprocess.run(
        [binary("promtool"), "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
    )
    # exit 1 and "error while linting" is a parse error; 3 is lint advice (names, help texts)
    assert checked.returncode in (0, 3) and "parsing error" not in checked.stderr + checked.stdout, (
        checked.stderr + checked.stdout
    )
    list(text_string_to_metric_families(text))
    return text


def samples(text: str, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {
        frozenset((k, v) for k, v in s.labels.items() if not k.startswith("otel_scope")): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    }


@pytest.fixture
def collector(tmp_path: Path, store_dsn: str, store: Store) -> Iterator[Collector]:
    settings = CollectorConfig(listen=("127.0.0.1", 0), store=store_dsn, spool=tmp_path / "spool")
    with Collector(settings, store=store) as running:
        yield running


# --- the report that led here ------------------------------------------------------------------------------
def test_a_metric_without_a_name_is_refused_and_every_scrape_answers(collector: Collector) -> None:
    body = export(gauge("", 1.0), gauge("queue.depth", 3.0, {"queue": "q1"}))
    assert send(collector, body) == (1, "a metric has no name")
    for _ in range(3):
        text = scrape(collector)
        assert samples(text, "queue_depth") == {
            frozenset({("job", "hr-app"), ("instance", "i-1"), ("queue", "q1")}): 3.0
        }


def test_a_forged_negative_cost_is_refused_and_the_real_one_stays(collector: Collector) -> None:
    labels = {"tenant": "acme", "model": "gpt-4o-mini"}
    assert send(collector, export(counter(n.METRIC_COST, 0.25, labels, unit="{USD}"), service="billing")) == (
        0,
        "",
    )
    forged = counter(n.METRIC_COST, -1000.0, labels, at=START + 2, unit="{USD}")
    assert send(collector, export(forged, service="billing")) == (
        1,
        "a counter's value must be a finite number of at least 0, not -1000.0",
    )
    text = scrape(collector)
    assert samples(text, n.PROM_COST) == {
        frozenset({("job", "billing"), ("instance", "i-1"), *labels.items()}): 0.25
    }


# --- one refusal per rule ----------------------------------------------------------------------------------
REFUSED: list[tuple[str, Any, str]] = [
    (
        "a name that is no name",
        gauge("queue depth", 1.0),
        "metric name 'queue depth' is not an OpenTelemetry",
    ),
    ("a name starting with a digit", gauge("9lives", 1.0), "metric name '9lives' is not an OpenTelemetry"),
    ("a unit that is not ASCII", gauge("speed", 1.0, unit="µs"), "unit 'µs' is not printable ASCII"),
    (
        "the collector's namespace",
        counter("spendscope.collector.written_spans", 5.0),
        "would be exposed as 'spendscope_collector_written_spans'",
    ),
    (
        "the collector's namespace, as Prometheus names it",
        gauge("spendscope_collector_store_up", 1.0),
        "keeps",
    ),
    ("the budget evaluator's", gauge("spendscope_budget_spend_usd", 1.0), "'spendscope_budget_spend_usd'"),
    (
        "the budget evaluator's, with a unit",
        gauge("spendscope.budget.spend", 1.0, unit="USD"),
        "'spendscope_budget_spend_USD'",
    ),
    ("the reconciler's", counter("spendscope.reconciliation.runs", 1.0), "'spendscope_reconciliation_runs'"),
    ("target_info", gauge("target_info", 1.0), "would be exposed as 'target_info'"),
    (
        "SpendScope's counter as a gauge",
        gauge(n.METRIC_COST, 5.0),
        "is SpendScope's counter: send it as a monotonic sum",
    ),
    ("a NaN counter", counter("jobs", math.nan), "at least 0, not nan"),
    ("an infinite counter", counter("jobs", math.inf), "at least 0, not inf"),
    ("a negative delta", counter("jobs", -1.0, temporality=DELTA), "at least 0, not -1.0"),
    (
        "a histogram missing its +Inf bucket",
        histogram("latency", [1.0, 2.0], [1, 1]),
        "2 bucket counts for 2 bounds",
    ),
    ("unsorted bounds", histogram("latency", [2.0, 1.0], [1, 1, 0]), "bounds must be finite and increasing"),
    (
        "an infinite bound",
        histogram("latency", [1.0, math.inf], [1, 1, 0]),
        "bounds must be finite and increasing",
    ),
    ("counts that do not add up", histogram("latency", [1.0], [1, 1], count=5), "add up to 2, not to 5"),
    ("a NaN sum", histogram("latency", [1.0], [1, 1], total=math.nan), "sum must be finite"),
    (
        "a label that is the buckets'",
        histogram("latency", [1.0], [1, 0], attributes={"le": "x"}),
        "the histogram's bucket label 'le'",
    ),
    ("an empty label", gauge("depth", 1.0, {"": "x"}), "data point has an attribute with an empty key"),
    ("a label value too long", gauge("depth", 1.0, {"k": "v" * 65_537}), "longer than 65536 characters"),
]


def test_each_rule_refuses_its_metric_alone(collector: Collector) -> None:
    for what, metric, why in REFUSED:
        fine = gauge("fine", 2.0)
        rejected, message = send(collector, export(metric, fine))
        assert rejected == 1 and why in message, (what, message)
        text = scrape(collector)
        assert samples(text, "fine") == {frozenset({("job", "hr-app"), ("instance", "i-1")}): 2.0}, what
        exposed = {s.name for family in text_string_to_metric_families(text) for s in family.samples}
        assert exposed - {"fine", "target_info"} == {
            name for name in exposed if name.startswith("spendscope_collector_")
        }, what


@pytest.mark.parametrize("job", [n.JOB_COLLECTOR, n.JOB_BUDGETS, n.JOB_RECONCILER, n.JOB_APPS])
def test_spendscope_s_own_scrape_jobs_are_not_for_clients(collector: Collector, job: str) -> None:
    assert send(collector, export(gauge("depth", 1.0), counter("jobs", 1.0), service=job)) == (
        2,
        f"job {job!r} (service.name) is one of SpendScope's own scrape jobs",
    )
    assert samples(scrape(collector), "depth") == {}


# --- counters count up -------------------------------------------------------------------------------------
def test_a_counter_goes_down_only_with_a_new_start(collector: Collector) -> None:
    assert send(collector, export(counter("jobs", 10.0))) == (0, "")
    assert send(collector, export(counter("jobs", 4.0, at=START + 2))) == (
        1,
        "a counter went down (10.0 to 4.0) without a new start time",
    )
    assert samples(scrape(collector), "jobs_total") == {
        frozenset({("job", "hr-app"), ("instance", "i-1")}): 10.0
    }
    assert send(collector, export(counter("jobs", 4.0, start=START + 5, at=START + 6))) == (
        0,
        "",
    )  # a restart
    assert samples(scrape(collector), "jobs_total") == {
        frozenset({("job", "hr-app"), ("instance", "i-1")}): 4.0
    }


# --- one Prometheus name, one metric -----------------------------------------------------------------------
def test_a_metric_cannot_take_another_s_prometheus_name_or_change_its_kind(collector: Collector) -> None:
    mine = {frozenset({("job", "a"), ("instance", "i-1")}): 3.0}
    assert send(collector, export(counter("jobs.done", 3.0), service="a")) == (0, "")
    for intruder, why in (
        (counter("jobs_done", 100.0), "would be exposed as 'jobs_done', as 'jobs.done' is"),
        (counter("jobs_done_total", 100.0), "would be exposed as 'jobs_done', as 'jobs.done' is"),
        (gauge("jobs_done_total", 100.0), "would be exposed as 'jobs_done_total', as 'jobs.done' is"),
        (gauge("jobs.done", 100.0), "'jobs.done' is exposed as a counter with unit '' for other series"),
        (counter("jobs.done", 100.0, unit="s"), "'jobs.done' is exposed as a counter with unit ''"),
        (histogram("jobs.done", [1.0], [1, 0]), "'jobs.done' is exposed as a counter"),
    ):
        rejected, message = send(collector, export(intruder, service="b"))
        assert rejected == 1 and why in message, message
        assert samples(scrape(collector), "jobs_done_total") == mine
    # a histogram's names are its own too
    assert send(collector, export(histogram("latency", [1.0], [1, 0]), service="a")) == (0, "")
    rejected, message = send(collector, export(gauge("latency.count", 7.0), service="b"))
    assert rejected == 1 and "as 'latency' is" in message


def test_the_instrumentation_s_counters_are_taken(collector: Collector) -> None:
    """SpendScope's instruments as the instrumentation sends them (monotonic sums, cumulative or
    delta) are re-exposed under their names."""
    tokens = {"type": "input", "model": "gpt-4o-mini"}
    assert send(collector, export(counter(n.METRIC_TOKENS, 100.0, tokens, unit="{token}"))) == (0, "")
    delta = counter(n.METRIC_USAGE_UNAVAILABLE, 1.0, {"model": "m"}, temporality=DELTA, unit="{call}")
    assert send(collector, export(delta, service="other")) == (0, "")
    text = scrape(collector)
    assert samples(text, n.PROM_TOKENS) == {
        frozenset({("job", "hr-app"), ("instance", "i-1"), *tokens.items()}): 100.0
    }
    assert samples(text, n.PROM_USAGE_UNAVAILABLE) == {
        frozenset({("job", "other"), ("instance", "i-1"), ("model", "m")}): 1.0
    }
