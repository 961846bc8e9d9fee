"""The evaluator's Prometheus metrics: the latest evaluation, served whole (no series left behind).

Each scrape renders the latest `Evaluation` as it is: a user who fell below the warning percentage
(a new day, a new month, a raised limit) simply is not in the next scrape, so Prometheus marks the
series stale and its alert resolves. Names and labels come from spendscope/names.py.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from spendscope import names as n
from spendscope.budgets._evaluate import Evaluation

_USER_LABELS = [n.LABEL_TENANT, n.LABEL_USER, n.LABEL_WINDOW]
_TENANT_LABELS = [n.LABEL_TENANT, n.LABEL_WINDOW]
STATUS_OK = "ok"
STATUS_FAILED = "failed"


class BudgetMetrics(Collector):
    """Registers itself on `registry`; `publish` swaps in a new evaluation atomically."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._lock = threading.Lock()
        self._latest: Evaluation | None = None
        self._counts = {STATUS_OK: 0, STATUS_FAILED: 0}
        registry.register(self)

    @property
    def latest(self) -> Evaluation | None:
        with self._lock:
            return self._latest

    def publish(self, evaluation: Evaluation) -> None:
        with self._lock:
            self._latest = evaluation
            self._counts[STATUS_OK] += 1

    def failed(self) -> None:
        """A failed evaluation: the previous one stays served, and its timestamp stops moving."""
        with self._lock:
            self._counts[STATUS_FAILED] += 1

    def describe(self) -> Iterable[Metric]:
        return []  # nothing to check at registration; the names are fixed

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            latest, counts = self._latest, dict(self._counts)
        evaluations = CounterMetricFamily(
            n.PROM_BUDGET_EVALUATIONS, "Budget evaluations, by status (ok, failed)", labels=[n.LABEL_STATUS]
        )
        for status, count in counts.items():
            evaluations.add_metric([status], count)
        yield evaluations
        last = GaugeMetricFamily(
            n.PROM_BUDGET_LAST_EVALUATION,
            "Unix time of the last successful budget evaluation (0: none yet)",
        )
        last.add_metric([], latest.at.timestamp() if latest else 0.0)
        yield last
        if latest is None:
            return
        yield GaugeMetricFamily(
            n.PROM_BUDGET_EVALUATION_DURATION,
            "Seconds the last successful evaluation took (query and processing)",
            value=latest.seconds,
        )
        yield GaugeMetricFamily(
            n.PROM_BUDGET_USERS_EVALUATED,
            "(tenant, user) pairs with usage this month in the last evaluation",
            value=latest.users_evaluated,
        )
        yield GaugeMetricFamily(
            n.PROM_BUDGET_USERS_OVER_WARNING,
            "Users at or above the warning percentage of a limit (before max_listed_users)",
            value=latest.users_over_warning,
        )
        yield GaugeMetricFamily(
            n.PROM_BUDGET_USERS_EXPORTED,
            "Users with spendscope_budget_spend_usd series (at most max_listed_users)",
            value=latest.users_exported,
        )
        spend = GaugeMetricFamily(
            n.PROM_BUDGET_SPEND,
            "Spend in USD of users at or above the warning percentage of their limit (day: today UTC, "
            "month: this calendar month UTC)",
            labels=_USER_LABELS,
        )
        limit = GaugeMetricFamily(
            n.PROM_BUDGET_LIMIT,
            "Budget limit in USD of the users in spendscope_budget_spend_usd",
            labels=_USER_LABELS,
        )
        for user in latest.users:
            labels = [user.tenant, user.user, user.window]
            spend.add_metric(labels, user.spend_usd)
            limit.add_metric(labels, user.limit_usd)
        yield spend
        yield limit
        tenant_spend = GaugeMetricFamily(
            n.PROM_BUDGET_TENANT_SPEND,
            "Spend in USD of tenants with a total budget (day: today UTC, month: this calendar month UTC)",
            labels=_TENANT_LABELS,
        )
        tenant_limit = GaugeMetricFamily(
            n.PROM_BUDGET_TENANT_LIMIT, "Total budget in USD of a tenant", labels=_TENANT_LABELS
        )
        for tenant in latest.tenants:
            tenant_spend.add_metric([tenant.tenant, tenant.window], tenant.spend_usd)
            tenant_limit.add_metric([tenant.tenant, tenant.window], tenant.limit_usd)
        yield tenant_spend
        yield tenant_limit
        user_unpriced = GaugeMetricFamily(
            n.PROM_BUDGET_UNPRICED_TOKENS,
            "Tokens of a user's calls without a price (their cost is unknown: not in "
            "spendscope_budget_spend_usd), for the users listed after those at or above the warning "
            "percentage (at most max_listed_users in all)",
            labels=_USER_LABELS,
        )
        tenant_unpriced = GaugeMetricFamily(
            n.PROM_BUDGET_TENANT_UNPRICED_TOKENS,
            "Tokens of a tenant's calls without a price (their cost is unknown: not in any spend series)",
            labels=_TENANT_LABELS,
        )
        for unpriced in latest.unpriced:
            if unpriced.user is None:
                tenant_unpriced.add_metric([unpriced.tenant, unpriced.window], unpriced.tokens)
            else:
                user_unpriced.add_metric([unpriced.tenant, unpriced.user, unpriced.window], unpriced.tokens)
        yield user_unpriced
        yield tenant_unpriced
