"""The reports API: thin HTTP handlers over `spendscope.store.reports` (the embedded store can be
opened by one process only, so the CLI asks the collector that has it open).

    GET /api/usage/summary?since=30d&until=now&by=model&where=tenant=acme   cost by one dimension + total
    GET /api/usage/users/{id}?month=2026-11                               one user's month, by model
    GET /api/usage/users?since=..&limit=10                                the users who cost most
    GET /api/usage/endpoints?since=..&where=..                            cost by endpoint
    GET /api/usage/daily?since=..&by=tenant&where=..                      cost per UTC day
    GET /api/usage/export.csv?since=..&where=..                           one row per call
    GET /api/usage/report?by=user&since=..&until=..&where=k=v&format=json|csv

JSON answers are {"columns": [...], "rows": [[...]]} (money as exact decimal strings, times ISO 8601).
Every value is a bound query parameter in the store; a bad one is a 400 with the reason.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from spendscope.store import formatting, reports
from spendscope.store.billing import default_margin
from spendscope.store.errors import ReportError
from spendscope.store.reports import Report, ReportStore
from spendscope.store.times import parse_month, parse_range

PREFIX = "/api/usage/"
DEFAULT_SINCE = "30d"


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    body: bytes
    file: Path | None = None  # the body is this file's content instead: send it, then delete it


class _Params:
    """Query parameters, each checked once; unknown ones are an error (a typo must not go unnoticed)."""

    def __init__(self, query: Mapping[str, list[str]], allowed: tuple[str, ...]) -> None:
        unknown = sorted(set(query) - set(allowed))
        if unknown:
            raise ReportError(f"unknown parameter(s) {', '.join(unknown)}: use {', '.join(allowed)}")
        self._query = query

    def one(self, name: str, default: str | None = None) -> str | None:
        values = self._query.get(name)
        if not values:
            return default
        if len(values) > 1:
            raise ReportError(f"parameter {name} given {len(values)} times")
        return values[0]

    def range(self, now: datetime) -> tuple[datetime, datetime]:
        return parse_range(self.one("since", DEFAULT_SINCE) or DEFAULT_SINCE, self.one("until"), now=now)

    def where(self) -> dict[str, str]:
        return reports.parse_where(self._query.get("where", []))

    def limit(self, default: int) -> int:
        text = self.one("limit")
        if text is None:
            return default
        if not text.isdigit() or not 1 <= int(text) <= 10_000:
            raise ReportError(f"bad limit {text!r}: a whole number from 1 to 10000")
        return int(text)


def _json(report: Report, **extra: Any) -> Answer:
    body = {**report.to_json(), **extra}
    return Answer(200, "application/json", json.dumps(body, separators=(",", ":")).encode())


def _csv(report: Report) -> Answer:
    return Answer(200, "text/csv; charset=utf-8", formatting.to_csv(report).encode())


def _summary(store: ReportStore, p: _Params, now: datetime) -> Answer:
    since, until = p.range(now)
    result = reports.report(
        store, by=p.one("by", "model") or "model", since=since, until=until, where=p.where()
    )
    return _json(result, total=reports.json_value(result.total()))


def _users(store: ReportStore, p: _Params, now: datetime) -> Answer:
    since, until = p.range(now)
    return _json(reports.top_users(store, since=since, until=until, limit=p.limit(10), where=p.where()))


def _endpoints(store: ReportStore, p: _Params, now: datetime) -> Answer:
    since, until = p.range(now)
    return _json(reports.report(store, by="endpoint", since=since, until=until, where=p.where()))


def _daily(store: ReportStore, p: _Params, now: datetime) -> Answer:
    since, until = p.range(now)
    return _json(reports.daily_series(store, since=since, until=until, by=p.one("by"), where=p.where()))


def _export(store: ReportStore, p: _Params, now: datetime) -> Answer:
    """Any number of calls: ClickHouse writes the CSV to a temporary file, so the store is held only
    while it does, and the file is sent after (see _server.py)."""
    since, until = p.range(now)
    fd, name = tempfile.mkstemp(prefix="spendscope-export-", suffix=".csv")
    path = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            reports.write_calls_csv(
                store, out, since=since, until=until, where=p.where(), default_margin=default_margin()
            )
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return Answer(200, "text/csv; charset=utf-8", b"", file=path)


def _report(store: ReportStore, p: _Params, now: datetime) -> Answer:
    by = p.one("by")
    if not by:
        raise ReportError("parameter by is required, e.g. by=user")
    since, until = p.range(now)
    result = reports.report(store, by=by, since=since, until=until, where=p.where())
    fmt = p.one("format", "json")
    if fmt == "csv":
        return _csv(result)
    if fmt != "json":
        raise ReportError(f"bad format {fmt!r}: json or csv")
    return _json(result)


_Handler = Callable[[ReportStore, _Params, datetime], Answer]
_ROUTES: dict[str, tuple[_Handler, tuple[str, ...]]] = {
    "summary": (_summary, ("since", "until", "by", "where")),
    "users": (_users, ("since", "until", "limit", "where")),
    "endpoints": (_endpoints, ("since", "until", "where")),
    "daily": (_daily, ("since", "until", "by", "where")),
    "export.csv": (_export, ("since", "until", "where")),
    "report": (_report, ("by", "since", "until", "where", "format")),
}


def route_exists(path: str) -> bool:
    name = path.removeprefix(PREFIX)
    return path.startswith(PREFIX) and (name in _ROUTES or (name.startswith("users/") and len(name) > 6))


def metric_path(path: str) -> str:
    """The path as a metric label (user ids left out)."""
    return "/api/usage/users/{id}" if path.startswith(PREFIX + "users/") else path


def handle(
    path: str, query: Mapping[str, list[str]], store: ReportStore, now: datetime | None = None
) -> Answer:
    """Answer one reports request. Raises ReportError (a 400) for bad parameters."""
    current = now or datetime.now(UTC)
    name = path.removeprefix(PREFIX)
    if name.startswith("users/"):
        user = unquote(name.removeprefix("users/"))
        p = _Params(query, ("month",))
        month_text = p.one("month") or current.strftime("%Y-%m")
        month, _ = parse_month(month_text)
        return _json(reports.user_month(store, user=user, month=month), user=user, month=month_text)
    handler, allowed = _ROUTES[name]
    return handler(store, _Params(query, allowed), current)
