"""One evaluation: a single query over the daily rollup (`budget_status.sql`), then pure Python.

The query joins the limits in SQL and returns only the users at or above the warning percentage of a
limit, so an evaluation costs one scan of this month's rollup rows whatever the number of users, and
what leaves ClickHouse is bounded by `max_listed_users` per tenant.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import Any, Protocol

from spendscope import names as n
from spendscope.budgets._config import BudgetConfig

QUERY = "budget_status"


class Rows(Protocol):
    @property
    def rows(self) -> list[list[Any]]: ...


class Source(Protocol):
    """What the evaluator needs of a store: running a named query (spendscope.store.Store does)."""

    def run(self, name: str, params: Mapping[str, Any]) -> Rows: ...


@dataclass(frozen=True, slots=True)
class UserBudget:
    """A user at or above the warning percentage of its limit in one window."""

    tenant: str
    user: str
    window: str  # names.WINDOW_DAY or names.WINDOW_MONTH
    spend_usd: float
    limit_usd: float

    @property
    def exceeded(self) -> bool:
        return self.spend_usd >= self.limit_usd


@dataclass(frozen=True, slots=True)
class TenantBudget:
    tenant: str
    window: str
    spend_usd: float
    limit_usd: float


@dataclass(frozen=True, slots=True)
class UnpricedTokens:
    """Tokens of calls without a price in a window: their cost is unknown, not in any spend above.
    `user` None: the whole tenant."""

    tenant: str
    user: str | None
    window: str
    tokens: int


@dataclass(frozen=True, slots=True)
class Evaluation:
    at: datetime  # when the evaluation started (UTC)
    day: date  # the UTC day evaluated (its month is the monthly window)
    seconds: float  # how long it took
    users_evaluated: int  # (tenant, user) pairs with rollup rows this month
    users_over_warning: int  # of those, at or above the warning percentage in a window
    users: tuple[UserBudget, ...]  # exported: at most max_listed_users users, one entry per window
    tenants: tuple[TenantBudget, ...]
    unpriced: tuple[UnpricedTokens, ...] = ()  # tenants' and listed users' (windows with some only)

    @property
    def users_exported(self) -> int:
        return len({(u.tenant, u.user) for u in self.users})


def build_evaluation(
    config: BudgetConfig, rows: Sequence[Sequence[Any]], *, at: datetime, day: date, seconds: float
) -> Evaluation:
    """The evaluation from `budget_status.sql`'s rows (pure: no I/O)."""
    listed: list[tuple[float, str, str, tuple[Any, ...]]] = []
    evaluated = over_warning = 0
    spend: dict[str, tuple[float, float]] = {}
    unpriced: list[UnpricedTokens] = []
    for tenant, day_usd, month_usd, users, over, entries, day_unpriced, month_unpriced in rows:
        evaluated += int(users)
        over_warning += int(over)
        spend[str(tenant)] = (float(day_usd), float(month_usd))
        unpriced += _unpriced(str(tenant), None, day_unpriced, month_unpriced)
        for entry in entries:
            listed.append((-float(entry[7]), str(tenant), str(entry[0]), tuple(entry)))
    listed.sort(key=lambda item: item[:3])
    exported: list[UserBudget] = []
    for _, tenant, user, entry in listed[: config.max_listed_users]:
        _, day_usd, day_limit, day_listed, month_usd, month_limit, month_listed, _, day_unp, month_unp = entry
        if day_listed:
            exported.append(UserBudget(tenant, user, n.WINDOW_DAY, float(day_usd), float(day_limit)))
        if month_listed:
            exported.append(UserBudget(tenant, user, n.WINDOW_MONTH, float(month_usd), float(month_limit)))
        unpriced += _unpriced(tenant, user, day_unp, month_unp)
    tenants: list[TenantBudget] = []
    for tenant, (daily, monthly) in config.tenant_totals().items():
        day_usd, month_usd = spend.get(tenant, (0.0, 0.0))
        if daily is not None:
            tenants.append(TenantBudget(tenant, n.WINDOW_DAY, day_usd, daily))
        if monthly is not None:
            tenants.append(TenantBudget(tenant, n.WINDOW_MONTH, month_usd, monthly))
    return Evaluation(
        at=at,
        day=day,
        seconds=seconds,
        users_evaluated=evaluated,
        users_over_warning=over_warning,
        users=tuple(exported),
        tenants=tuple(tenants),
        unpriced=tuple(unpriced),
    )


def _unpriced(tenant: str, user: str | None, day: Any, month: Any) -> list[UnpricedTokens]:
    windows = ((n.WINDOW_DAY, int(day)), (n.WINDOW_MONTH, int(month)))
    return [UnpricedTokens(tenant, user, window, tokens) for window, tokens in windows if tokens]


def evaluate(
    source: Source, config: BudgetConfig, *, now: Callable[[], datetime] = lambda: datetime.now(UTC)
) -> Evaluation:
    """Evaluate every user's and tenant's budget for today (UTC) with one query."""
    at = now().astimezone(UTC)
    started = time.perf_counter()
    result = source.run(QUERY, config.query_params(at.date()))
    evaluation = build_evaluation(config, result.rows, at=at, day=at.date(), seconds=0.0)
    return replace(evaluation, seconds=time.perf_counter() - started)
