"""The reports API: typed FastAPI routes over `spendscope.store.reports`, for what calls reports over
HTTP (the CLI reads the store itself). Described at /openapi.json, and as a page at /docs.

    GET /api/usage/summary?since=30d&until=now&by=model&where=tenant=acme   cost by one dimension + total
    GET /api/usage/stats?since=..&where=..                                totals: UTC day, month, window
    GET /api/usage/users/{user}?month=2026-11                             one user's month, by model
    GET /api/usage/users?since=..&limit=10&sort=cost_usd&order=desc&offset=0&search=..   a page of users
    GET /api/usage/endpoints?since=..&where=..                            cost by endpoint
    GET /api/usage/breakdown?by=endpoint&by2=model&since=..               cost by two dimensions at once
    GET /api/usage/billing?by=attr:job_id&by2=endpoint&since=..           billed cost and quantities
    GET /api/usage/daily?since=..&by=tenant&where=..                      cost per UTC day
    GET /api/usage/monthly?since=..&by=tenant&where=..                    cost per calendar month (UTC)
    GET /api/usage/export.csv?since=..&where=..                           one row per call
    GET /api/usage/report?by=user&since=..&until=..&where=k=v&format=json|csv

JSON answers are {"columns": [...], "rows": [[...]]} (money as exact decimal strings, null when unknown:
see spendscope/store/money.py; times ISO 8601).
Every value is a bound query parameter in the store. A bad or unknown parameter is a 400, a store
that cannot answer a 503, both with {"error": "one line"}.

The routes take their store from `app.state.reports`, a `ReportSource`: the collector's lends the
reports' own connection (reports run beside the writers and each other); tests lend a store. They read
it through `_access.report_source`, which scopes it to the tenant of a tenant token (a 403 for what a
tenant may not read).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel
from starlette.background import BackgroundTask

from spendscope.store import breakdowns, formatting, reports
from spendscope.store.billing import default_margin
from spendscope.store.errors import ReportError, StoreError
from spendscope.store.reports import Report, ReportStore
from spendscope.store.scope import OutsideScope
from spendscope.store.times import parse_month, parse_range

PREFIX = "/api/usage"
DEFAULT_SINCE = "30d"
ReportSource = Callable[[], AbstractContextManager[ReportStore]]


class StoreUnavailable(Exception):
    """The store cannot answer now (a 503): raised by a `ReportSource`."""


class ReportJson(BaseModel):
    """A report: column names, then one list of values per row."""

    columns: list[str]
    rows: list[list[Any]]


class SummaryJson(ReportJson):
    total: dict[str, Any]


class UserMonthJson(ReportJson):
    user: str
    month: str


class UsersJson(ReportJson):
    total: int


class StatsJson(BaseModel):
    """Totals of three windows: the UTC day so far, the calendar month so far, and [since, until)."""

    today: dict[str, Any]
    month: dict[str, Any]
    window: dict[str, Any]
    since: str
    until: str


class ErrorJson(BaseModel):
    error: str


Since = Annotated[
    str, Query(description="start: a duration back from now (30d, 12h), a date or an ISO 8601 time (UTC)")
]
Until = Annotated[str | None, Query(description="end (default now), in the same forms as since")]
Where = Annotated[
    list[str] | None,
    Query(description="a filter DIMENSION=VALUE (tenant=acme); repeat for several, all must hold"),
]
By = Annotated[str | None, Query(description="the dimension to group by: user, tenant, model, endpoint, ...")]
_CSV = {"content": {"text/csv": {}}, "description": "CSV, the header first"}
_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorJson, "description": "a bad or unknown parameter"},
    401: {"model": ErrorJson, "description": "a token is required (Authorization: Bearer ...)"},
    403: {"model": ErrorJson, "description": "not open to this token (a tenant token reads its tenant only)"},
    503: {"model": ErrorJson, "description": "the store is unavailable (see Retry-After)"},
}

router = APIRouter(prefix=PREFIX, tags=["reports"], responses=_ERRORS)


def _only(request: Request, allowed: tuple[str, ...]) -> None:
    """Unknown parameters are an error (a typo must not go unnoticed), and so is one given twice."""
    unknown = sorted(set(request.query_params) - set(allowed))
    if unknown:
        raise ReportError(f"unknown parameter(s) {', '.join(unknown)}: use {', '.join(allowed)}")
    for name in allowed:
        if name != "where" and len(request.query_params.getlist(name)) > 1:
            raise ReportError(f"parameter {name} given {len(request.query_params.getlist(name))} times")


def _run(
    request: Request, allowed: tuple[str, ...], answer: Callable[[ReportStore, datetime], Response]
) -> Response:
    """Check the parameters, lend the store to `answer`; errors as {"error": ...}."""
    from spendscope.collector._access import report_source

    try:
        _only(request, allowed)
        with report_source(request)() as store:
            return answer(store, datetime.now(UTC))
    except ReportError as exc:
        return error_response(400, str(exc))
    except OutsideScope as exc:
        return error_response(403, str(exc))
    except (StoreUnavailable, StoreError) as exc:
        return error_response(503, f"store unavailable: {exc}", {"Retry-After": "5"})


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps({"error": message}), status, headers, media_type="application/json")


def _json(report: Report, **extra: Any) -> Response:
    body = {**report.to_json(), **extra}
    return Response(json.dumps(body, separators=(",", ":")), media_type="application/json")


def _range(since: str, until: str | None, now: datetime) -> tuple[datetime, datetime]:
    return parse_range(since, until, now=now)


@router.get("/summary", response_model=None, responses={200: {"model": SummaryJson}})
def summary(
    request: Request, since: Since = DEFAULT_SINCE, until: Until = None, by: By = "model", where: Where = None
) -> Response:
    """Cost and usage by one dimension, with the total of each numeric column."""

    def answer(store: ReportStore, now: datetime) -> Response:
        start, end = _range(since, until, now)
        result = reports.report(
            store, by=by or "model", since=start, until=end, where=reports.parse_where(where or [])
        )
        return _json(result, total=reports.json_value(result.total()))

    return _run(request, ("since", "until", "by", "where"), answer)


@router.get("/users", response_model=None, responses={200: {"model": UsersJson}})
def users(
    request: Request,
    since: Since = DEFAULT_SINCE,
    until: Until = None,
    limit: Annotated[int, Query(ge=1, le=breakdowns.MAX_PAGE, description="users per page")] = 10,
    offset: Annotated[int, Query(ge=0, description="users to skip (the page's start)")] = 0,
    sort: Annotated[
        Literal[
            "user", "calls", "input_tokens", "output_tokens", "cost_usd", "unpriced_calls", "error_calls"
        ],
        Query(description="the column to sort on (an unknown cost sorts last either way)"),
    ] = "cost_usd",
    order: Annotated[Literal["asc", "desc"], Query(description="ascending or descending")] = "desc",
    search: Annotated[str, Query(description="a part of the user id (any case)")] = "",
    where: Where = None,
) -> Response:
    """A page of users (the ones who cost most by default), sorted and filtered on the server, with
    their tenants; `total` is how many users the filters leave."""

    def answer(store: ReportStore, now: datetime) -> Response:
        start, end = _range(since, until, now)
        filters = reports.parse_where(where or [])
        page, total = breakdowns.users_page(
            store,
            since=start,
            until=end,
            where=filters,
            search=search,
            sort=sort,
            descending=order == "desc",
            limit=limit,
            offset=offset,
        )
        return _json(page, total=total)

    allowed = ("since", "until", "limit", "offset", "sort", "order", "search", "where")
    return _run(request, allowed, answer)


@router.get("/users/{user:path}", response_model=None, responses={200: {"model": UserMonthJson}})
def user_month(
    request: Request,
    user: str,
    month: Annotated[str | None, Query(description="YYYY-MM (default: this month, UTC)")] = None,
) -> Response:
    """One user's month, by model."""

    def answer(store: ReportStore, now: datetime) -> Response:
        month_text = month or now.strftime("%Y-%m")
        first, _ = parse_month(month_text)
        return _json(reports.user_month(store, user=user, month=first), user=user, month=month_text)

    return _run(request, ("month",), answer)


@router.get("/endpoints", response_model=None, responses={200: {"model": ReportJson}})
def endpoints(
    request: Request, since: Since = DEFAULT_SINCE, until: Until = None, where: Where = None
) -> Response:
    """Cost and usage by endpoint."""

    def answer(store: ReportStore, now: datetime) -> Response:
        start, end = _range(since, until, now)
        filters = reports.parse_where(where or [])
        return _json(reports.report(store, by="endpoint", since=start, until=end, where=filters))

    return _run(request, ("since", "until", "where"), answer)


@router.get("/daily", response_model=None, responses={200: {"model": ReportJson}})
def daily(
    request: Request, since: Since = DEFAULT_SINCE, until: Until = None, by: By = None, where: Where = None
) -> Response:
    """Cost per UTC day, optionally by one dimension."""

    def answer(store: ReportStore, now: datetime) -> Response:
        start, end = _range(since, until, now)
        filters = reports.parse_where(where or [])
        return _json(reports.daily_series(store, since=start, until=end, by=by, where=filters))

    return _run(request, ("since", "until", "by", "where"), answer)


@router.get("/monthly", response_model=None, responses={200: {"model": ReportJson}})
def monthly(
    request: Request, since: Since = "365d", until: Until = None, by: By = None, where: Where = None
) -> Response:
    """Cost per calendar month (UTC; the first and last may be partial), optionally by one dimension."""

    def answer(store: ReportStore, now: datetime) -> Response:
        start, end = _range(since, until, now)
        filters = reports.parse_where(where or [])
        return _json(reports.monthly_series(store, since=start, until=end, by=by, where=filters))

    return _run(request, ("since", "until", "by", "where"), answer)


@router.get("/stats", response_model=None, responses={200: {"model": StatsJson}})
def stats(
    request: Request, since: Since = DEFAULT_SINCE, until: Until = None, where: Where = None
) -> Response:
    """Calls, tokens, provider cost, billed cost (with each tenant's margin), active users and
    quantities, for the UTC day so far, the calendar month so far and the window [since, until)."""

    def answer(store: ReportStore, now: datetime) -> Response:
        start, end = _range(since, until, now)
        body = {
            **windows(store, now, start, end, reports.parse_where(where or [])),
            "since": start.isoformat(),
            "until": end.isoformat(),
        }
        return Response(
            json.dumps(reports.json_value(body), separators=(",", ":")), media_type="application/json"
        )

    return _run(request, ("since", "until", "where"), answer)


def windows(
    store: ReportStore, now: datetime, since: datetime, until: datetime, where: dict[str, str]
) -> dict[str, dict[str, Any]]:
    """The totals of the UTC day so far, the month so far and [since, until): what /stats and the
    overview show."""
    found = breakdowns.windows(
        store, now=now, since=since, until=until, where=where, default_margin=default_margin()
    )
    return found.totals


@router.get("/breakdown", response_model=None, responses={200: {"model": ReportJson}})
def breakdown(
    request: Request,
    by: Annotated[
        str, Query(description="the first dimension: endpoint, model, tenant, user, service, operation")
    ] = "endpoint",
    by2: Annotated[str, Query(description="the second dimension, another of the same")] = "model",
    since: Since = DEFAULT_SINCE,
    until: Until = None,
    where: Where = None,
) -> Response:
    """Cost and usage by two dimensions at once (endpoint x model by default), with quantities."""

    def answer(store: ReportStore, now: datetime) -> Response:
        start, end = _range(since, until, now)
        filters = reports.parse_where(where or [])
        return _json(breakdowns.pairs(store, by=by, by2=by2, since=start, until=end, where=filters))

    return _run(request, ("by", "by2", "since", "until", "where"), answer)


@router.get("/billing", response_model=None, responses={200: {"model": ReportJson, **_CSV}})
def billing(
    request: Request,
    by: Annotated[
        str, Query(description="the dimension: tenant, endpoint, user, model, ... or attr:KEY (attr:job_id)")
    ] = "tenant",
    by2: Annotated[
        str, Query(description="a second dimension (attr:job_id by endpoint: a row per job and endpoint)")
    ] = "",
    since: Since = DEFAULT_SINCE,
    until: Until = None,
    month: Annotated[
        str | None, Query(description="YYYY-MM: that calendar month (UTC) instead of since and until")
    ] = None,
    where: Where = None,
    format: Literal["json", "csv"] = "json",
) -> Response:
    """Provider cost, billed cost (each tenant's margin in force on each day) and quantities by one or
    two dimensions. CSV: a column per quantity (`quantity:NAME`)."""

    def answer(store: ReportStore, now: datetime) -> Response:
        if month is not None:
            start, end = reports.month_range(parse_month(month)[0])
        else:
            start, end = _range(since, until, now)
        filters = reports.parse_where(where or [])
        result = breakdowns.billing(
            store, by=by, by2=by2, since=start, until=end, where=filters, default_margin=default_margin()
        )
        if format == "csv":
            return Response(
                formatting.to_csv(breakdowns.flatten_quantities(result)), media_type="text/csv; charset=utf-8"
            )
        return _json(result)

    return _run(request, ("by", "by2", "since", "until", "month", "where", "format"), answer)


@router.get("/export.csv", response_class=FileResponse, responses={200: _CSV})
def export_csv(
    request: Request, since: Since = DEFAULT_SINCE, until: Until = None, where: Where = None
) -> Response:
    """One row per call, any number of calls: ClickHouse writes the CSV to a temporary file while the
    store is lent, and the file is sent after (then deleted)."""

    def answer(store: ReportStore, now: datetime) -> Response:
        start, end = _range(since, until, now)
        filters = reports.parse_where(where or [])
        fd, name = tempfile.mkstemp(prefix="spendscope-export-", suffix=".csv")
        path = Path(name)
        try:
            with os.fdopen(fd, "wb") as out:
                reports.write_calls_csv(
                    store, out, since=start, until=end, where=filters, default_margin=default_margin()
                )
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        cleanup = BackgroundTask(path.unlink, missing_ok=True)
        return FileResponse(path, media_type="text/csv; charset=utf-8", background=cleanup)

    return _run(request, ("since", "until", "where"), answer)


@router.get("/report", response_model=None, responses={200: {"model": ReportJson, **_CSV}})
def report(
    request: Request,
    by: Annotated[str, Query(description="the dimension to group by: user, tenant, model, endpoint, ...")],
    since: Since = DEFAULT_SINCE,
    until: Until = None,
    where: Where = None,
    format: Literal["json", "csv"] = "json",
) -> Response:
    """Cost and usage by one dimension, as JSON or CSV (what `spendscope report` prints)."""

    def answer(store: ReportStore, now: datetime) -> Response:
        start, end = _range(since, until, now)
        result = reports.report(store, by=by, since=start, until=end, where=reports.parse_where(where or []))
        if format == "csv":
            return Response(formatting.to_csv(result), media_type="text/csv; charset=utf-8")
        return _json(result)

    return _run(request, ("by", "since", "until", "where", "format"), answer)
