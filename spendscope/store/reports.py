"""Reports over the store: pure functions that pick a named query and bind its parameters, and thin
functions that run them.

    report(store, by="user", since=..., until=..., where={"tenant": "acme"}) -> Report

Dimensions: user, endpoint, tenant, model, service and operation (answered from the `usage` view:
clean rollup buckets, and llm_usage for the rest of the window, exact over any window), service_tier,
project, api_key, status, error_type and attr:KEY (answered from llm_usage). Every value a caller gives,
filter values included, is a bound query parameter, never SQL text.

`usage` reads daily buckets: whole days from the daily rollup, the whole hours of the window's first and
last days from the hourly one, its partial first and last hours from llm_usage; or, when the user is
grouped or filtered on, per day and user (the other rollups have no users: the partial days are read
from llm_usage).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, BinaryIO, Protocol

from spendscope.store import money
from spendscope.store.errors import ReportError
from spendscope.store.sqlfiles import named_query
from spendscope.store.times import ch_time

ROLLUP_DIMENSIONS = ("user", "endpoint", "tenant", "model", "service", "operation")
RAW_DIMENSIONS = (
    *ROLLUP_DIMENSIONS,
    "service_tier",
    "project",
    "api_key",
    "status",
    "error_type",
)
INVOICE_DIMENSIONS = ("model", "user", "endpoint", "service")
ATTR = "attr:"
_ALL_ROWS = (1 << 64) - 1  # LIMIT of the largest UInt64: every row
_ATTR_KEY = re.compile(r"^[A-Za-z0-9_.\-]{1,128}$")


class QueryRunner(Protocol):
    def run(self, name: str, params: Mapping[str, Any]) -> Any: ...


class CsvWriter(Protocol):
    def write_csv(self, name: str, params: Mapping[str, Any], out: BinaryIO) -> None: ...


class ReportStore(QueryRunner, CsvWriter, Protocol):
    """What the reports read of spendscope.store.Store."""


@dataclass(frozen=True, slots=True)
class Query:
    """A named query (clickhouse/queries/<name>.sql) and the values for its parameters."""

    name: str
    params: dict[str, Any]

    @property
    def sql(self) -> str:
        return named_query(self.name).sql


@dataclass(frozen=True, slots=True)
class Report:
    columns: list[str]
    rows: list[list[Any]]

    def as_dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]

    def total(self) -> dict[str, Any]:
        """The numeric columns summed, each cost as the sum of its rows' Costs (None: wholly unknown;
        see spendscope.store.money); {} without rows."""
        return money.total(self.columns, self.rows)

    def to_json(self) -> dict[str, Any]:
        """{"columns": [...], "rows": [[...]]}: money as exact decimal strings (null: unknown, see
        spendscope.store.money), times in ISO 8601."""
        return {"columns": list(self.columns), "rows": [[json_value(v) for v in row] for row in self.rows]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Report:
        columns = [str(c) for c in data["columns"]]
        money = [c.endswith("_usd") for c in columns]
        rows = [
            [Decimal(v) if is_money and v is not None else v for v, is_money in zip(row, money, strict=True)]
            for row in data["rows"]
        ]
        return cls(columns, rows)


def json_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value else "0"
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    return value


# --- validation (pure) -------------------------------------------------------------------------------
def check_dimension(name: str, allowed: Iterable[str] = RAW_DIMENSIONS, *, option: str = "--by") -> str:
    text = name.strip()
    if text.startswith(ATTR):
        if _ATTR_KEY.match(text[len(ATTR) :]):
            return text
        raise ReportError(f"bad {option} {name!r}: attr: needs a key made of letters, digits, _ . -")
    choices = tuple(allowed)
    if text not in choices:
        raise ReportError(f"unknown {option} {name!r}: choose {', '.join(choices)} or attr:KEY")
    return text


def parse_where(items: Iterable[str]) -> dict[str, str]:
    """`KEY=VALUE` filters (KEY a dimension or attr:KEY); the value may contain anything, even `=`."""
    where: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise ReportError(f"bad --where {item!r}: use KEY=VALUE, e.g. tenant=acme or attr:job_id=J-42")
        where[check_dimension(key, option="--where key")] = value
    return where


def _rollup(by: str | None, where: Mapping[str, str]) -> bool:
    return (by is None or by in ROLLUP_DIMENSIONS) and all(k in ROLLUP_DIMENSIONS for k in where)


def _column(dimension: str) -> str:
    """The column of a rollup dimension in the `usage` view and llm_usage."""
    return "user_id" if dimension == "user" else dimension


def _grain(*dimensions: str | None) -> str:
    """The grain of `usage` to read (see the module's docstring)."""
    return "user_day" if "user" in dimensions else "day"


def _where(where: Mapping[str, str]) -> dict[str, list[str]]:
    return {"where_keys": list(where), "where_values": [str(v) for v in where.values()]}


def _check_range(since: datetime, until: datetime) -> None:
    if until <= since:
        raise ReportError("empty time range: until is not after since")


def _range(since: datetime, until: datetime) -> dict[str, str]:
    _check_range(since, until)
    return {"since": ch_time(since), "until": ch_time(until)}


def _rollup_where(where: Mapping[str, str], what: str) -> Mapping[str, str]:
    for key in where:
        check_dimension(key, ROLLUP_DIMENSIONS, option=f"filter of {what}")
        if key.startswith(ATTR):
            raise ReportError(f"{what} filters on {', '.join(ROLLUP_DIMENSIONS)} only, not {key}")
    return where


# --- queries (pure) ----------------------------------------------------------------------------------
def usage_query(
    by: str,
    since: datetime,
    until: datetime,
    where: Mapping[str, str] | None = None,
    *,
    raw: bool = False,
) -> Query:
    """Cost by one dimension: from the `usage` view when the dimension and filters allow, else (or with
    `raw`) from llm_usage itself."""
    by = check_dimension(by)
    filters = {check_dimension(k, option="--where key"): v for k, v in (where or {}).items()}
    if raw or not _rollup(by, filters):
        return Query("usage_by_raw", {"by": by, **_range(since, until), **_where(filters)})
    params = {"grain": _grain(by, *filters), "column": _column(by)}
    return Query("usage_by", {**params, **_range(since, until), **_where(filters)})


def series_query(
    period: str,
    since: datetime,
    until: datetime,
    *,
    by: str | None = None,
    where: Mapping[str, str] | None = None,
) -> Query:
    if period not in ("day", "month"):
        raise ReportError(f"unknown period {period!r}: day or month")
    by_ = check_dimension(by, ROLLUP_DIMENSIONS) if by else ""
    filters = _rollup_where(where or {}, "a cost series")
    params = {"grain": _grain(by_, *filters), "period": period, "by": by_, "column": _column(by_ or "tenant")}
    return Query("cost_series", {**params, **_range(since, until), **_where(filters)})


def top_users_query(
    since: datetime, until: datetime, *, limit: int = 10, where: Mapping[str, str] | None = None
) -> Query:
    if limit < 1:
        raise ReportError("limit must be at least 1")
    filters = _rollup_where(where or {}, "top users")
    return Query("top_users", {**_range(since, until), **_where(filters), "limit": limit})


def month_range(month: date) -> tuple[datetime, datetime]:
    """The calendar month (UTC) of `month`: its first instant and the next month's."""
    first = month.replace(day=1)
    following = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return datetime.combine(first, datetime.min.time(), UTC), datetime.combine(
        following, datetime.min.time(), UTC
    )


def user_month_query(user: str, month: date) -> Query:
    return Query("user_monthly_by_model", {"user": user, "month": month.replace(day=1).isoformat()})


def invoice_query(
    tenant: str, month: date, *, by: str = "model", default_margin: Decimal = Decimal(0)
) -> Query:
    by = check_dimension(by, (*INVOICE_DIMENSIONS, "operation"))
    since, until = month_range(month)
    margin = str(default_margin)
    if by in INVOICE_DIMENSIONS:
        days = {"since_day": since.date().isoformat(), "until_day": until.date().isoformat()}
        params = {"grain": _grain(by), "tenant": tenant, "by": by, **days, "default_margin_percent": margin}
        return Query("tenant_invoice", params)
    return Query(
        "tenant_invoice_raw",
        {"tenant": tenant, "by": by, **_range(since, until), "default_margin_percent": margin},
    )


def calls_query(
    since: datetime,
    until: datetime,
    *,
    where: Mapping[str, str] | None = None,
    default_margin: Decimal = Decimal(0),
    limit: int | None = None,
) -> Query:
    """One row per call, the oldest first; `limit`: only the first ones."""
    filters = {
        check_dimension(k, ROLLUP_DIMENSIONS, option="--where key"): v for k, v in (where or {}).items()
    }
    if limit is not None and limit < 0:
        raise ReportError("limit must not be negative")
    params = {**_range(since, until), **_where(filters), "default_margin_percent": str(default_margin)}
    return Query("calls", {**params, "limit": _ALL_ROWS if limit is None else limit})


def unpriced_query(since: datetime, until: datetime, *, limit: int = 100) -> Query:
    return Query("unpriced_calls", {**_range(since, until), "limit": limit})


def cache_savings_query(since: datetime, until: datetime, *, where: Mapping[str, str] | None = None) -> Query:
    filters = _rollup_where(where or {}, "cache savings")
    return Query("cache_savings", {**_range(since, until), **_where(filters)})


# --- I/O ---------------------------------------------------------------------------------------------
def run(store: QueryRunner, query: Query, *, key: str | None = None) -> Report:
    rows = store.run(query.name, query.params)
    columns = [key if key and c == "key" else c for c in rows.columns]
    return Report(columns, rows.rows)


def report(
    store: QueryRunner,
    *,
    by: str,
    since: datetime,
    until: datetime,
    where: Mapping[str, str] | None = None,
) -> Report:
    """Calls, tokens and cost in [since, until) by `by`, filtered by `where` (exact matches)."""
    return run(store, usage_query(by, since, until, where), key=by.strip())


def export_calls(
    store: QueryRunner,
    *,
    since: datetime,
    until: datetime,
    where: Mapping[str, str] | None = None,
    default_margin: Decimal = Decimal(0),
    limit: int | None = None,
) -> Report:
    """One row per call, with provider cost and billed cost, in memory: for a few calls (`limit`).
    Any number of calls: `write_calls_csv` or `Store.run_blocks`."""
    return run(store, calls_query(since, until, where=where, default_margin=default_margin, limit=limit))


def write_calls_csv(
    store: CsvWriter,
    out: BinaryIO,
    *,
    since: datetime,
    until: datetime,
    where: Mapping[str, str] | None = None,
    default_margin: Decimal = Decimal(0),
) -> None:
    """export_calls as CSV written to `out`, rendered by ClickHouse and streamed block by block: any
    number of calls."""
    query = calls_query(since, until, where=where, default_margin=default_margin)
    store.write_csv(query.name, query.params, out)


def invoice(
    store: QueryRunner, *, tenant: str, month: date, by: str = "model", default_margin: Decimal = Decimal(0)
) -> Report:
    """A tenant's month: provider cost and billed cost (with its margin) by model or any dimension."""
    return run(store, invoice_query(tenant, month, by=by, default_margin=default_margin), key=by)


def daily_series(
    store: QueryRunner,
    *,
    since: datetime,
    until: datetime,
    by: str | None = None,
    where: Mapping[str, str] | None = None,
) -> Report:
    return _series(store, "day", since, until, by, where)


def monthly_series(
    store: QueryRunner,
    *,
    since: datetime,
    until: datetime,
    by: str | None = None,
    where: Mapping[str, str] | None = None,
) -> Report:
    return _series(store, "month", since, until, by, where)


def _series(
    store: QueryRunner,
    period: str,
    since: datetime,
    until: datetime,
    by: str | None,
    where: Mapping[str, str] | None,
) -> Report:
    result = run(store, series_query(period, since, until, by=by, where=where), key=by or "key")
    return Report([period if c == "period" else c for c in result.columns], result.rows)


def top_users(
    store: QueryRunner,
    *,
    since: datetime,
    until: datetime,
    limit: int = 10,
    where: Mapping[str, str] | None = None,
) -> Report:
    return run(store, top_users_query(since, until, limit=limit, where=where))


def user_month(store: QueryRunner, *, user: str, month: date) -> Report:
    return run(store, user_month_query(user, month))


def unpriced_calls(store: QueryRunner, *, since: datetime, until: datetime, limit: int = 100) -> Report:
    return run(store, unpriced_query(since, until, limit=limit))


def cache_savings(
    store: QueryRunner, *, since: datetime, until: datetime, where: Mapping[str, str] | None = None
) -> Report:
    return run(store, cache_savings_query(since, until, where=where))
