"""The reports behind the portal's pages and the API that matches them (pure query builders, thin
runners): totals with billed cost and active users, breakdowns by two dimensions, a sorted page of
users, billed cost and quantities by any dimension, and the per-job table with a column per endpoint.

    stats(store, since=..., until=..., where={"tenant": "acme"})          # one row
    pairs(store, by="endpoint", by2="model", since=..., until=...)         # endpoint x model
    users_page(store, since=..., until=..., sort="cost_usd", limit=50)     # with total_users
    billing(store, by="attr:job_id", by2="endpoint", since=..., until=...)
    pivot(billing_report, value="billed_usd", limit=100)                   # one row per job

Quantities (`spendscope.attributes(quantities=...)`, and `realtime_seconds` on Realtime calls) come
as a `quantities` column of {name: sum}. Costs follow spendscope/store/money.py: None when unknown.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from spendscope.store import money
from spendscope.store.errors import ReportError
from spendscope.store.reports import (
    ATTR,
    ROLLUP_DIMENSIONS,
    Query,
    QueryRunner,
    Report,
    _column,
    _grain,
    _range,
    _rollup_where,
    _where,
    check_dimension,
    run,
)

# The attribute the rollups hold per day and job (grain job_day, clickhouse/migrations/0004_job_rollup.sql),
# and the dimensions beside it there (no user)
JOB_ROLLUP = "attr:job_id"
JOB_ROLLUP_DIMENSIONS = tuple(d for d in ROLLUP_DIMENSIONS if d != "user")
USER_SORTS = ("user", "calls", "input_tokens", "output_tokens", "cost_usd", "unpriced_calls", "error_calls")
MAX_PAGE = 1000


def _money(margin: Decimal) -> str:
    return str(margin)


# --- queries (pure) ----------------------------------------------------------------------------------
def days_query(
    since: datetime,
    until: datetime,
    *,
    where: Mapping[str, str] | None = None,
    default_margin: Decimal = Decimal(0),
) -> Query:
    filters = _rollup_where(where or {}, "totals")
    params = {"grain": _grain(*filters), "default_margin_percent": _money(default_margin)}
    return Query("usage_days", {**params, **_range(since, until), **_where(filters)})


def active_users_query(
    since: datetime,
    until: datetime,
    *,
    where: Mapping[str, str] | None = None,
    month: datetime | None = None,
    today: datetime | None = None,
) -> Query:
    filters = _rollup_where(where or {}, "active users")
    marks = {"month": ch_second(month or since), "today": ch_second(today or since)}
    return Query("active_users", {**_range(since, until), **_where(filters), **marks})


def ch_second(value: datetime) -> str:
    """A UTC time as a DateTime query parameter (whole seconds)."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def pairs_query(
    by: str, by2: str, since: datetime, until: datetime, *, where: Mapping[str, str] | None = None
) -> Query:
    first = check_dimension(by, ROLLUP_DIMENSIONS, option="by")
    second = check_dimension(by2, ROLLUP_DIMENSIONS, option="by2")
    if first.startswith(ATTR) or second.startswith(ATTR):
        raise ReportError(f"a breakdown by two dimensions takes {', '.join(ROLLUP_DIMENSIONS)}")
    if first == second:
        raise ReportError("a breakdown by two dimensions needs two different ones")
    filters = _rollup_where(where or {}, "a breakdown")
    params = {"grain": _grain(first, second, *filters), "column": _column(first), "column2": _column(second)}
    return Query("usage_pairs", {**params, **_range(since, until), **_where(filters)})


def users_page_query(
    since: datetime,
    until: datetime,
    *,
    where: Mapping[str, str] | None = None,
    search: str = "",
    sort: str = "cost_usd",
    descending: bool = True,
    limit: int = 50,
    offset: int = 0,
) -> Query:
    if sort not in USER_SORTS:
        raise ReportError(f"unknown sort {sort!r}: choose {', '.join(USER_SORTS)}")
    if not 1 <= limit <= MAX_PAGE:
        raise ReportError(f"limit must be from 1 to {MAX_PAGE}")
    if offset < 0:
        raise ReportError("offset must not be negative")
    filters = _rollup_where(where or {}, "the users")
    params = {"search": search, "sort": sort, "descending": descending, "limit": limit, "offset": offset}
    return Query("users_page", {**_range(since, until), **_where(filters), **params})


def billing_query(
    by: str,
    since: datetime,
    until: datetime,
    *,
    by2: str = "",
    where: Mapping[str, str] | None = None,
    default_margin: Decimal = Decimal(0),
    with_users: bool = False,
) -> Query:
    """Billed cost by one or two dimensions: from the rollups for one rollup dimension and rollup
    filters (per day and user `with_users`, for its active users), or for the job (JOB_ROLLUP) and at
    most one more rollup dimension but the user; else from llm_usage (attr:KEY, or two dimensions)."""
    first = check_dimension(by, ROLLUP_DIMENSIONS, option="by")
    second = check_dimension(by2, ROLLUP_DIMENSIONS, option="by2") if by2 else ""
    filters = {check_dimension(k, ROLLUP_DIMENSIONS, option="where key"): v for k, v in (where or {}).items()}
    margin = {"default_margin_percent": _money(default_margin)}
    rollup = not second and first in ROLLUP_DIMENSIONS and all(k in ROLLUP_DIMENSIONS for k in filters)
    if rollup:
        grain = _grain("user" if with_users else first, *filters)
        params = {"grain": grain, "column": _column(first)}
        return Query("billing_by", {**params, **_range(since, until), **_where(filters), **margin})
    if (
        first == JOB_ROLLUP
        and second in ("", *JOB_ROLLUP_DIMENSIONS)
        and all(k in JOB_ROLLUP_DIMENSIONS for k in filters)
    ):
        params = {"by2": second, "column2": _column(second or "tenant")}
        return Query("billing_jobs", {**params, **_range(since, until), **_where(filters), **margin})
    return Query(
        "billing_pairs", {"by": first, "by2": second, **_range(since, until), **_where(filters), **margin}
    )


# --- runners -----------------------------------------------------------------------------------------
def days(
    store: QueryRunner,
    *,
    since: datetime,
    until: datetime,
    where: Mapping[str, str] | None = None,
    default_margin: Decimal = Decimal(0),
) -> Report:
    """Totals per UTC day, endpoint and model (calls, tokens, cost_usd, billed_usd, counts,
    quantities): `collapse` adds them up by any of those."""
    return run(store, days_query(since, until, where=where, default_margin=default_margin))


def collapse(report: Report, by: Sequence[str], *, key: Any = None) -> Report:
    """`report`'s rows added up per value of the columns `by` (or of `key(row)`, named by[0]): the
    costs as Costs (money.total), the counts summed, the quantities by name; in the order first met."""
    measures = [c for c in report.columns if c not in ("day", "endpoint", "model")]
    groups: dict[Any, list[list[Any]]] = {}
    for row in report.as_dicts():
        group = key(row) if key is not None else tuple(row[c] for c in by)
        groups.setdefault(group, []).append([row[c] for c in measures])
    rows = []
    for group, members in groups.items():
        values = group if isinstance(group, tuple) else (group,)
        totals = add_up(Report(measures, members))
        rows.append([*values, *(totals[c] for c in measures)])
    return Report([*by, *measures], rows)


def add_up(report: Report) -> dict[str, Any]:
    """The rows of a report added up: costs as Costs (money.total), quantities by name; zeros
    without rows."""
    names = [c for c in report.columns if c not in ("day", "endpoint", "model", "quantities")]
    totals = money.total(names, [[row[report.columns.index(c)] for c in names] for row in report.rows])
    if not totals:
        totals = {c: 0 for c in names} | {"cost_usd": Decimal(0), "billed_usd": Decimal(0)}
    quantities: dict[str, float] = {}
    for row in report.as_dicts():
        for name, value in (row.get("quantities") or {}).items():
            quantities[name] = quantities.get(name, 0.0) + value
    return {**totals, "quantities": quantities}


def stats(
    store: QueryRunner,
    *,
    since: datetime,
    until: datetime,
    where: Mapping[str, str] | None = None,
    default_margin: Decimal = Decimal(0),
) -> dict[str, Any]:
    """Totals of the window: one dict (calls, tokens, cost_usd, billed_usd, counts, quantities,
    active_users)."""
    totals = add_up(days(store, since=since, until=until, where=where, default_margin=default_margin))
    users = run(store, active_users_query(since, until, where=where)).as_dicts()[0]
    return {**totals, "active_users": users["active_users"]}


@dataclass(frozen=True, slots=True)
class Windows:
    """The overview's figures: the totals of the UTC day so far, the month so far and the window, and
    the rows (day, endpoint, model) of the window and of the months up to now."""

    totals: dict[str, dict[str, Any]]
    window_days: Report
    months_days: Report


def windows(
    store: QueryRunner,
    *,
    now: datetime,
    since: datetime,
    until: datetime,
    where: Mapping[str, str] | None = None,
    default_margin: Decimal = Decimal(0),
    months_from: datetime | None = None,
) -> Windows:
    """The totals of the UTC day so far, the month so far and [since, until), from one query of the
    days (by endpoint and model) from `months_from` (default: the month's start) to now, which also
    answers for the window when it is whole days in that span up to now (another query otherwise);
    and the active users of each (one query, or two for another window)."""
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    month = day.replace(day=1)
    first = min(months_from or month, month)
    span = days(store, since=first, until=now, where=where, default_margin=default_margin)
    users = run(store, active_users_query(month, now, where=where, month=month, today=day)).as_dicts()[0]

    def part(start: datetime) -> Report:
        return Report(span.columns, [row for row in span.rows if row[0] >= start.date()])

    out = {
        "today": {**add_up(part(day)), "active_users": users["active_today"]},
        "month": {**add_up(part(month)), "active_users": users["active_month"]},
    }
    whole_days = since == since.replace(hour=0, minute=0, second=0, microsecond=0) and since >= first
    if whole_days and until == now:
        window_days = part(since)
    else:
        window_days = days(store, since=since, until=until, where=where, default_margin=default_margin)
    if (since, until) == (month, now):
        active = users["active_month"]
    else:
        active = run(store, active_users_query(since, until, where=where)).as_dicts()[0]["active_users"]
    out["window"] = {**add_up(window_days), "active_users": active}
    return Windows(out, window_days, span)


def pairs(
    store: QueryRunner,
    *,
    by: str,
    by2: str,
    since: datetime,
    until: datetime,
    where: Mapping[str, str] | None = None,
) -> Report:
    result = run(store, pairs_query(by, by2, since, until, where=where))
    return Report([by, by2, *result.columns[2:]], result.rows)


def users_page(
    store: QueryRunner,
    *,
    since: datetime,
    until: datetime,
    where: Mapping[str, str] | None = None,
    search: str = "",
    sort: str = "cost_usd",
    descending: bool = True,
    limit: int = 50,
    offset: int = 0,
) -> tuple[Report, int]:
    """One page of users and how many users the filters leave in all."""
    query = users_page_query(
        since, until, where=where, search=search, sort=sort, descending=descending, limit=limit, offset=offset
    )
    result = run(store, query)
    total = int(result.rows[0][-1]) if result.rows else 0
    if not result.rows and offset:
        # past the last page: the count still says how many there are
        first = users_page_query(since, until, where=where, search=search, limit=1)
        rows = run(store, first).rows
        total = int(rows[0][-1]) if rows else 0
    return Report(result.columns[:-1], [row[:-1] for row in result.rows]), total


def billing(
    store: QueryRunner,
    *,
    by: str,
    since: datetime,
    until: datetime,
    by2: str = "",
    where: Mapping[str, str] | None = None,
    default_margin: Decimal = Decimal(0),
    with_users: bool = False,
) -> Report:
    """Calls, tokens, provider and billed cost, counts and quantities by `by` (and `by2`);
    `with_users`: and active users (one rollup dimension only)."""
    query = billing_query(
        by, since, until, by2=by2, where=where, default_margin=default_margin, with_users=with_users
    )
    result = run(store, query)
    if query.name == "billing_by":
        keep = [i for i, c in enumerate(result.columns) if with_users or c != "active_users"]
        columns = [by, *(result.columns[i] for i in keep[1:])]
        return Report(columns, [[row[i] for i in keep] for row in result.rows])
    if by2:
        return Report([by, by2, *result.columns[2:]], result.rows)
    return Report([by, *result.columns[2:]], [[row[0], *row[2:]] for row in result.rows])


# --- shaping (pure) ----------------------------------------------------------------------------------
def quantity_names(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Every quantity name in the rows' `quantities`, sorted."""
    return sorted({name for row in rows for name in (row.get("quantities") or {})})


def flatten_quantities(report: Report) -> Report:
    """`quantities` as one column per name (`quantity:NAME`, 0 where a row has none): for CSV."""
    if "quantities" not in report.columns:
        return report
    rows = report.as_dicts()
    names = quantity_names(rows)
    columns = [c for c in report.columns if c != "quantities"]
    out = [
        [row[c] for c in columns] + [_number((row["quantities"] or {}).get(n, 0)) for n in names]
        for row in rows
    ]
    return Report(columns + [f"quantity:{n}" for n in names], out)


def _number(value: float) -> int | Decimal:
    """A quantity as sent back: whole numbers as ints, others as exact decimals of their double."""
    return int(value) if float(value).is_integer() else Decimal(repr(float(value)))


@dataclass(frozen=True, slots=True)
class Pivot:
    """A report by (key, key2) as one row per key: see `pivot`."""

    columns: list[str]  # the key2 values, by total cost
    rows: list[dict[str, Any]]  # {"key", "cells": {key2: Cost}, "total": Cost, "calls", "quantities"}
    total_rows: int  # the keys in all, the rows left out by `limit` included
    quantity_names: list[str]  # of every key's quantities, sorted


def pivot(report: Report, *, value: str = "billed_usd", limit: int | None = None) -> Pivot:
    """A report by (key, key2) as one row per key with a Cost per key2 and the total: the per-job table
    with a column per endpoint. The columns and rows are by total cost (then by name); `limit` keeps the
    costliest rows (Costs are made for those only: a tenant's month can have tens of thousands of jobs)."""
    index = {c: i for i, c in enumerate(report.columns)}
    at_value, at_calls, at_quantities = index[value], index["calls"], index.get("quantities")
    at_counts = [index[c] for c in money.COUNTS]
    # per key and per key2: [priced part of the cost, *COUNTS]; per key also its calls, quantities, rows
    keys: dict[Any, list[Any]] = {}
    key2s: dict[Any, list[Any]] = {}
    for row in report.rows:
        amount = row[at_value] or 0
        counts = [row[i] for i in at_counts]
        entry = keys.get(row[0])
        if entry is None:
            entry = keys[row[0]] = [Decimal(0), 0, 0, 0, 0, 0, 0, {}, []]
        column = key2s.get(row[1])
        if column is None:
            column = key2s[row[1]] = [Decimal(0), 0, 0, 0, 0, 0]
        for totals in (entry, column):
            totals[0] += amount
            for j, count in enumerate(counts, 1):
                totals[j] += count
        entry[6] += row[at_calls]
        if at_quantities is not None:
            for name, amount_ in (row[at_quantities] or {}).items():
                entry[7][name] = entry[7].get(name, 0) + amount_
        entry[8].append(row)

    def cost(totals: list[Any]) -> money.Cost:
        unknown = totals[1] == 0 and totals[2] + totals[5] > 0
        return money.Cost(None if unknown else totals[0], *totals[1:6])

    def order(totals: list[Any]) -> Decimal:
        return -(cost(totals).usd or Decimal(0))

    columns = sorted(key2s, key=lambda c: (order(key2s[c]), c))
    ordered = sorted(keys, key=lambda k: (order(keys[k]), k))
    rows = []
    for key in ordered[:limit]:
        entry = keys[key]
        cells = {
            row[1]: money.Cost(
                None if row[at_value] is None else Decimal(row[at_value]), *(int(row[i]) for i in at_counts)
            )
            for row in entry[8]
        }
        rows.append(
            {"key": key, "cells": cells, "total": cost(entry), "calls": entry[6], "quantities": entry[7]}
        )
    names = sorted({name for entry in keys.values() for name in entry[7]})
    return Pivot(columns, rows, len(keys), names)
