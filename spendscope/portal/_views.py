"""What each page shows, read from the store a request may see (its tenant's part for a tenant token:
spendscope/store/scope.py): plain data for the templates, from the same report functions as the API,
so a page and the API cannot disagree."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from spendscope.store import breakdowns, reports
from spendscope.store.billing import default_margin
from spendscope.store.reports import Report, ReportStore
from spendscope.store.times import ch_time

PAGE_SIZES = (5, 20, 50, 100, 500)
JOBS_SHOWN = 100  # the costliest rows of a per-job table (its CSV has them all)
MONTHS_SHOWN = 12


@dataclass
class Overview:
    windows: dict[str, dict[str, Any]]
    daily: Report
    monthly: Report
    pairs: Report
    unknown: Report  # endpoint x model rows with calls of unknown cost
    reconciliation: dict[str, Any] | None = None
    residual: list[dict[str, Any]] = field(default_factory=list)
    budgets: list[dict[str, Any]] = field(default_factory=list)


def month_start(day: date) -> datetime:
    return datetime(day.year, day.month, 1, tzinfo=UTC)


def first_month(now: datetime) -> date:
    """The first of the MONTHS_SHOWN months up to `now`'s."""
    year, month = now.year, now.month - (MONTHS_SHOWN - 1)
    while month < 1:
        year, month = year - 1, month + 12
    return date(year, month, 1)


def overview(
    store: ReportStore,
    *,
    now: datetime,
    since: datetime,
    until: datetime,
    where: Mapping[str, str],
    admin: bool,
    budgets: Path | None = None,
) -> Overview:
    """From two queries when the window is whole days of the last MONTHS_SHOWN months up to now (the
    month so far by default): the days by endpoint and model, and the active users."""
    filters = dict(where)
    start = datetime.combine(first_month(now), datetime.min.time(), UTC)
    found = breakdowns.windows(
        store,
        now=now,
        since=since,
        until=until,
        where=filters,
        default_margin=default_margin(),
        months_from=start,
    )
    daily = breakdowns.collapse(found.window_days, ["day"])
    monthly = breakdowns.collapse(found.months_days, ["month"], key=lambda row: row["day"].strftime("%Y-%m"))
    pairs = breakdowns.collapse(found.window_days, ["endpoint", "model"])
    pairs = Report(pairs.columns, sorted(pairs.rows, key=_by_cost(pairs.columns)))
    unknown_rows = [row for row in pairs.rows if _unknown(pairs.columns, row)]
    view = Overview(found.totals, daily, monthly, pairs, Report(pairs.columns, unknown_rows))
    if admin:
        _admin_sections(store, view, now, budgets)
    return view


def _by_cost(columns: list[str]) -> Any:
    """Costliest first, unknown costs last, then by name (as the API's breakdown sorts)."""
    cost, endpoint, model = columns.index("cost_usd"), columns.index("endpoint"), columns.index("model")

    def key(row: list[Any]) -> tuple[Any, ...]:
        return (row[cost] is None, -(row[cost] or 0), row[endpoint], row[model])

    return key


def _unknown(columns: list[str], row: list[Any]) -> bool:
    values = dict(zip(columns, row, strict=True))
    return bool(values["unpriced_calls"] or values["usage_unavailable_calls"])


def _admin_sections(store: ReportStore, view: Overview, now: datetime, budgets: Path | None) -> None:
    """The latest reconciliation and the budgets at or over their warning, where the store has them
    (an admin's: a tenant scope refuses these queries)."""
    window = {"since": ch_time(datetime(1970, 1, 1, tzinfo=UTC)), "until": ch_time(now)}
    runs = store.run("reconciliation_runs", window)
    if runs.rows:
        latest = dict(zip(runs.columns, runs.rows[0], strict=True))
        view.reconciliation = latest
        residual = store.run(
            "reconciliation_residual_by_cause",
            {"since": ch_time(latest["window_start"]), "until": ch_time(latest["usage_end"])},
        )
        causes: dict[str, dict[str, Any]] = {}
        for row in residual.rows:
            values = dict(zip(residual.columns, row, strict=True))
            entry = causes.setdefault(
                values["cause"], {"cause": values["cause"], "tokens": 0, "usd": None, "calls": 0}
            )
            entry["tokens"] += int(values["residual_tokens"])
            entry["calls"] += int(values["calls"])
            if values["residual_usd"] is not None:
                entry["usd"] = (entry["usd"] or 0) + values["residual_usd"]
        view.residual = list(causes.values())
    view.budgets = _budgets(store, now, budgets)


def _budgets(store: ReportStore, now: datetime, path: Path | None) -> list[dict[str, Any]]:
    """Budgets at or over their warning, from the collector's budgets file (`collector --budgets`)."""
    if path is None or not path.is_file():
        return []
    from spendscope.budgets import evaluate, load_budgets

    config = load_budgets(path)
    evaluation = evaluate(store, config, now=lambda: now)
    warning = config.warning_percent / 100
    out: list[dict[str, Any]] = [
        {
            "tenant": u.tenant,
            "user": u.user,
            "window": u.window,
            "spend_usd": u.spend_usd,
            "limit_usd": u.limit_usd,
        }
        for u in evaluation.users
    ]
    out += [
        {
            "tenant": t.tenant,
            "user": "",
            "window": t.window,
            "spend_usd": t.spend_usd,
            "limit_usd": t.limit_usd,
        }
        for t in evaluation.tenants
        if t.limit_usd and t.spend_usd >= t.limit_usd * warning
    ]
    return out


@dataclass
class UsersView:
    page: Report
    total: int
    first: int  # 1-based index of the page's first user


def users(
    store: ReportStore,
    *,
    since: datetime,
    until: datetime,
    where: Mapping[str, str],
    search: str,
    sort: str,
    descending: bool,
    page: int,
    size: int,
) -> UsersView:
    offset = (page - 1) * size
    result, total = breakdowns.users_page(
        store,
        since=since,
        until=until,
        where=dict(where),
        search=search,
        sort=sort,
        descending=descending,
        limit=size,
        offset=offset,
    )
    return UsersView(result, total, offset + 1)


@dataclass
class UserMonth:
    by_model: Report
    by_day: Report


def user_month(store: ReportStore, *, user: str, month: date) -> UserMonth:
    since, until = reports.month_range(month)
    return UserMonth(
        reports.user_month(store, user=user, month=month),
        reports.daily_series(store, since=since, until=until, where={"user": user}),
    )


@dataclass
class TenantsView:
    tenants: Report
    dimension: str  # the billing dimension (an attr: key), e.g. job_id
    tenant: str
    columns: list[str]  # the endpoints, one column each
    rows: list[dict[str, Any]]
    quantity_names: list[str]
    total_rows: int


def tenants(
    store: ReportStore, *, since: datetime, until: datetime, dimension: str, tenant: str
) -> TenantsView:
    margin = default_margin()
    by_tenant = breakdowns.billing(store, by="tenant", since=since, until=until, default_margin=margin)
    names = [str(row[0]) for row in by_tenant.rows]
    chosen = tenant if tenant in names or not names else names[0]
    table = breakdowns.Pivot([], [], 0, [])
    if chosen or names:
        jobs = breakdowns.billing(
            store,
            by=f"attr:{dimension}",
            by2="endpoint",
            since=since,
            until=until,
            where={"tenant": chosen},
            default_margin=margin,
        )
        table = breakdowns.pivot(jobs, limit=JOBS_SHOWN)
    return TenantsView(
        by_tenant, dimension, chosen, table.columns, table.rows, table.quantity_names, table.total_rows
    )


@dataclass
class BillingView:
    tenant: str
    month: date
    months: list[str]
    totals: dict[str, Any]
    categories: Report  # per endpoint
    columns: list[str]
    jobs: list[dict[str, Any]]
    quantity_names: list[str]
    margin_percent: Any
    total_jobs: int


def billing(store: ReportStore, *, tenant: str, month: date, dimension: str, now: datetime) -> BillingView:
    margin = default_margin()
    since, until = reports.month_range(month)
    where = {"tenant": tenant}
    categories = breakdowns.billing(
        store, by="endpoint", since=since, until=until, where=where, default_margin=margin
    )
    jobs = breakdowns.billing(
        store,
        by=f"attr:{dimension}",
        by2="endpoint",
        since=since,
        until=until,
        where=where,
        default_margin=margin,
    )
    table = breakdowns.pivot(jobs, limit=JOBS_SHOWN)
    users = reports.run(store, breakdowns.active_users_query(since, until, where=where)).as_dicts()[0]
    totals = {**breakdowns.add_up(categories), "active_users": users["active_users"]}
    names = breakdowns.quantity_names(categories.as_dicts())
    margins = [m for m in store.run("tenant_margins", {"tenant": tenant}).rows if m[1] < until.date()]
    percent = margins[-1][2] if margins else margin
    this_month = month_start(now.date()).date()
    months = []
    current = this_month
    for _ in range(MONTHS_SHOWN):
        months.append(current.strftime("%Y-%m"))
        current = (datetime(current.year, current.month, 1) - timedelta(days=1)).date().replace(day=1)
    return BillingView(
        tenant, month, months, totals, categories, table.columns, table.rows, names, percent, table.total_rows
    )
