"""Prometheus metrics of the reconciler (names in spendscope/names.py), on a registry it is given.

Gauges describe the latest complete run; a failed run only moves the run counter and the last-run
time, so an alert on `time() - spendscope_reconciliation_last_success_timestamp_seconds` fires when runs
keep failing.
"""

from __future__ import annotations

from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Gauge

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
        self.tracked_usd = Gauge(
            n.PROM_RECONCILIATION_TRACKED_USD, "SpendScope's cost of the closed cost days (USD)", registry=r
        )
        self.reported_usd = Gauge(
            n.PROM_RECONCILIATION_REPORTED_USD,
            "OpenAI Costs API amount of the closed cost days (USD)",
            registry=r,
        )
        self.coverage = Gauge(n.PROM_RECONCILIATION_COVERAGE, "Tracked / reported spend", registry=r)
        self.token_coverage = Gauge(
            n.PROM_RECONCILIATION_TOKEN_COVERAGE, "Tracked / reported tokens (input + output)", registry=r
        )
        self.residual_tokens = Gauge(
            n.PROM_RECONCILIATION_RESIDUAL_TOKENS,
            "Reported - tracked tokens by cause (price causes: tokens affected)",
            [n.LABEL_CAUSE],
            registry=r,
        )
        self.residual_usd = Gauge(
            n.PROM_RECONCILIATION_RESIDUAL_USD,
            "Reported - tracked dollars by cause",
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
        self.tracked_usd.set(float(t.tracked_usd))
        self.reported_usd.set(float(t.reported_usd) if t.reported_usd is not None else float("nan"))
        coverage = t.coverage_ratio
        self.coverage.set(coverage if coverage is not None else float("nan"))
        tokens = t.token_coverage_ratio
        self.token_coverage.set(tokens if tokens is not None else float("nan"))
        cause_tokens = result.cause_tokens()
        cause_usd = result.cause_usd()
        cause_calls = result.cause_calls()
        for cause in CAUSES:
            self.residual_tokens.labels(cause).set(cause_tokens[cause])
            self.residual_usd.labels(cause).set(float(cause_usd[cause]))
            self.cause_calls.labels(cause).set(cause_calls[cause])
        self.ambiguous_keys.set(len(result.ambiguous_keys))

    def failed(self, at: datetime) -> None:
        self.runs.labels("failed").inc()
        self.last_run.set(at.timestamp())
