"""Prometheus metrics of the reconciler (names in spendscope/names.py), on a registry it is given.

Gauges describe the latest complete run; a failed run only moves the run counter and the last-run
time, so an alert on `time() - spendscope_reconciliation_last_success_timestamp_seconds` fires when runs
keep failing. The dollar figures (tracked and reported USD, spend coverage, residual USD by cause) have
no sample at all when the run compared no dollars (`--no-costs`, or no cost day closed yet): an
absent series, never a 0 that reads as "nothing tracked".
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from spendscope import names as n
from spendscope.reconciler._model import CAUSES, ReconciliationResult


class ReconcileMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.last_success = Gauge(
            n.PROM_RECONCILIATION_LAST_SUCCESS,
            "Unix time the last complete reconciliation finished",
            registry=r,
        )
        self.last_run = Gauge(
            n.PROM_RECONCILIATION_LAST_RUN, "Unix time the last reconciliation ended", registry=r
        )
        self.runs = Counter(n.PROM_RECONCILIATION_RUNS, "Reconciliation runs", [n.LABEL_STATUS], registry=r)
        self.window_end = Gauge(
            n.PROM_RECONCILIATION_WINDOW_END, "End of the usage window of the last complete run", registry=r
        )
        self.tracked_tokens = Gauge(
            n.PROM_RECONCILIATION_TRACKED_TOKENS,
            "Tracked by SpendScope in the window",
            [n.LABEL_TYPE],
            registry=r,
        )
        self.reported_tokens = Gauge(
            n.PROM_RECONCILIATION_REPORTED_TOKENS,
            "Reported by the OpenAI Usage API in the window",
            [n.LABEL_TYPE],
            registry=r,
        )
        self.dollars = _Dollars(r)
        self.token_coverage = Gauge(
            n.PROM_RECONCILIATION_TOKEN_COVERAGE, "Tracked / reported tokens (input + output)", registry=r
        )
        self.residual_tokens = Gauge(
            n.PROM_RECONCILIATION_RESIDUAL_TOKENS,
            "Reported - tracked tokens by cause (price causes: tokens affected)",
            [n.LABEL_CAUSE],
            registry=r,
        )
        self.cause_calls = Gauge(
            n.PROM_RECONCILIATION_CAUSE_CALLS,
            "Calls each cause of the residual concerns (price causes: calls affected)",
            [n.LABEL_CAUSE],
            registry=r,
        )
        self.ambiguous_keys = Gauge(
            n.PROM_RECONCILIATION_AMBIGUOUS_KEYS, "Client keys that match several OpenAI api keys", registry=r
        )
        for status in ("complete", "failed"):
            self.runs.labels(status)

    def observe(self, result: ReconciliationResult) -> None:
        t = result.totals
        self.runs.labels("complete").inc()
        self.last_success.set(result.finished_at.timestamp())
        self.last_run.set(result.finished_at.timestamp())
        self.window_end.set(result.windows.usage_end.timestamp())
        self.tracked_tokens.labels("requests").set(t.tracked_requests)
        self.reported_tokens.labels("requests").set(t.reported_requests)
        input_tracked = sum(s.get("tracked_input_tokens", 0) for s in t.by_source.values())
        input_reported = sum(s.get("reported_input_tokens", 0) for s in t.by_source.values())
        self.tracked_tokens.labels("input").set(input_tracked)
        self.reported_tokens.labels("input").set(input_reported)
        self.tracked_tokens.labels("output").set(t.tracked_tokens - input_tracked)
        self.reported_tokens.labels("output").set(t.reported_tokens - input_reported)
        compared = result.windows.has_costs and t.reported_usd is not None
        self.dollars.publish(result if compared else None)
        tokens = t.token_coverage_ratio
        self.token_coverage.set(tokens if tokens is not None else float("nan"))
        cause_tokens = result.cause_tokens()
        cause_calls = result.cause_calls()
        for cause in CAUSES:
            self.residual_tokens.labels(cause).set(cause_tokens[cause])
            self.cause_calls.labels(cause).set(cause_calls[cause])
        self.ambiguous_keys.set(len(result.ambiguous_keys))

    def failed(self, at: datetime) -> None:
        self.runs.labels("failed").inc()
        self.last_run.set(at.timestamp())


class _Dollars(Collector):
    """The dollar gauges of the latest complete run, or none when it compared no dollars."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._lock = threading.Lock()
        self._latest: ReconciliationResult | None = None
        registry.register(self)

    def publish(self, result: ReconciliationResult | None) -> None:
        with self._lock:
            self._latest = result

    def describe(self) -> Iterable[Metric]:
        return []  # the names are fixed; nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            result = self._latest
        tracked = GaugeMetricFamily(
            n.PROM_RECONCILIATION_TRACKED_USD, "SpendScope's cost of the closed cost days (USD)"
        )
        reported = GaugeMetricFamily(
            n.PROM_RECONCILIATION_REPORTED_USD, "OpenAI Costs API amount of the closed cost days (USD)"
        )
        coverage = GaugeMetricFamily(n.PROM_RECONCILIATION_COVERAGE, "Tracked / reported spend")
        residual = GaugeMetricFamily(
            n.PROM_RECONCILIATION_RESIDUAL_USD, "Reported - tracked dollars by cause", labels=[n.LABEL_CAUSE]
        )
        billed = result.totals.reported_usd if result is not None else None
        if result is not None and billed is not None:
            t = result.totals
            tracked.add_metric([], float(t.tracked_usd))
            reported.add_metric([], float(billed))
            ratio = t.coverage_ratio
            coverage.add_metric([], ratio if ratio is not None else float("nan"))
            for cause, usd in result.cause_usd().items():
                residual.add_metric([cause], float(usd))
        yield from (tracked, reported, coverage, residual)
