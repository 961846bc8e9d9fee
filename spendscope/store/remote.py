"""Reports through a running collector, when it holds the embedded store.

chdb lets one process open a data directory, so while `spendscope collector` runs on it, the CLI asks
the collector instead. The collector writes `<chdb dir>/collector.json`:

    {"url": "http://127.0.0.1:4318", "pid": 1234, "token_required": false}

The token itself is never written there (anyone who can read the data directory would have it): when
the collector requires one, the CLI sends `SPENDSCOPE_COLLECTOR_TOKEN`.

and serves `GET {url}/api/usage/report?by=..&since=..&until=..&where=k=v&where=..&format=json` by
calling `ReportRequest.from_query(...)` and `.run(store)`, answering `Report.to_json()`:
{"columns": [...], "rows": [[...]]} (money as decimal strings, null for an unknown cost with the
counts beside it: see spendscope/store/money.py; times ISO 8601), and
`GET {url}/api/usage/export.csv?since=..&until=..&where=k=v` with the CSV `spendscope export` writes.
Errors are answered with a 4xx/5xx status and {"error": "one line"}.
"""

from __future__ import annotations

import http.client
import json
import os
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlencode

from spendscope.store.errors import ReportError, StoreError
from spendscope.store.reports import QueryRunner, Report, check_dimension, parse_where, report
from spendscope.store.times import parse_time

COLLECTOR_FILE = "collector.json"
REPORT_PATH = "/api/usage/report"
EXPORT_PATH = "/api/usage/export.csv"


@dataclass(frozen=True, slots=True)
class Collector:
    url: str
    pid: int
    token: str | None = None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running_collector(chdb_path: Path) -> Collector | None:
    """The collector serving the store in `chdb_path`, if its collector.json names a live process."""
    try:
        data = json.loads((chdb_path / COLLECTOR_FILE).read_text())
        token = os.environ.get("SPENDSCOPE_COLLECTOR_TOKEN") or None
        collector = Collector(str(data["url"]).rstrip("/"), int(data["pid"]), token)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return collector if collector.pid > 0 and _alive(collector.pid) else None


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class ReportRequest:
    """The parameters of a report, as they travel in the collector's query string."""

    by: str
    since: datetime
    until: datetime
    where: dict[str, str] = field(default_factory=dict)

    def to_query(self) -> list[tuple[str, str]]:
        return [
            ("by", self.by),
            ("since", _iso(self.since)),
            ("until", _iso(self.until)),
            *(("where", f"{k}={v}") for k, v in self.where.items()),
            ("format", "json"),
        ]

    @classmethod
    def from_query(cls, query: Mapping[str, Sequence[str]], *, now: datetime | None = None) -> ReportRequest:
        """From a parsed query string (`urllib.parse.parse_qs`); raises ReportError on bad values."""

        def one(name: str, default: str | None = None) -> str:
            values = query.get(name) or ([default] if default is not None else [])
            if len(values) != 1 or values[0] is None:
                raise ReportError(f"give exactly one {name}=")
            return values[0]

        if one("format", "json") != "json":
            raise ReportError("format must be json")
        current = now or datetime.now(UTC)
        since = parse_time(one("since", "30d"), now=current, option="since")
        until = parse_time(one("until", "now"), now=current, option="until")
        if until <= since:
            raise ReportError("empty time range: until is not after since")
        return cls(check_dimension(one("by")), since, until, parse_where(query.get("where", [])))

    def run(self, store: QueryRunner) -> Report:
        return report(store, by=self.by, since=self.since, until=self.until, where=self.where)


def _get(collector: Collector, path: str, query: list[tuple[str, str]], what: str, timeout: float) -> Any:
    """The collector's answer to GET `path` (the `what`), open; StoreError (one line) when it refuses
    or is gone."""
    url = f"{collector.url}{path}?{urlencode(query)}"
    headers = {"Accept": "text/csv" if path == EXPORT_PATH else "application/json"}
    if collector.token:
        headers["Authorization"] = f"Bearer {collector.token}"
    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as exc:
        raise StoreError(f"{_where(collector)} refused the {what} ({exc.code}): {_error_text(exc)}") from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise StoreError(f"cannot reach {_where(collector)}, which holds the store: {reason}") from exc


def _where(collector: Collector) -> str:
    return f"the collector at {collector.url} (pid {collector.pid})"


def remote_report(collector: Collector, request: ReportRequest, *, timeout: float = 30.0) -> Report:
    with _get(collector, REPORT_PATH, request.to_query(), "report", timeout) as response:
        try:
            data: Any = json.load(response)
        except ValueError as exc:
            raise StoreError(f"{_where(collector)} answered something that is not JSON") from exc
    try:
        return Report.from_json(data)
    except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
        raise StoreError(f"{_where(collector)} answered an unexpected report shape: {exc}") from exc


def remote_export_csv(
    collector: Collector,
    out: BinaryIO,
    *,
    since: datetime,
    until: datetime,
    where: Mapping[str, str],
    timeout: float = 3600.0,
) -> None:
    """`GET /api/usage/export.csv` copied to `out` as it arrives. The collector answers once ClickHouse
    has written the whole export (105-107 s for 10 million calls here), hence the long `timeout`."""
    filters = [("where", f"{k}={v}") for k, v in where.items()]
    query = [("since", _iso(since)), ("until", _iso(until)), *filters]
    with _get(collector, EXPORT_PATH, query, "export", timeout) as response:
        length = response.headers.get("Content-Length")
        copied = 0
        try:
            while chunk := response.read(1 << 20):
                out.write(chunk)
                copied += len(chunk)
        except (OSError, http.client.HTTPException) as exc:
            raise StoreError(f"{_where(collector)} broke off the export: {exc!r}") from exc
        # http.client ends a body cut short as if it were whole: the length tells them apart
        if length is not None and copied != int(length):
            raise StoreError(f"{_where(collector)} broke off the export: {copied:,} of {int(length):,} bytes")


def _error_text(exc: urllib.error.HTTPError) -> str:
    try:
        body = exc.read().decode(errors="replace")
        data = json.loads(body)
        return str(data.get("error", body))[:300] if isinstance(data, dict) else body[:300]
    except (OSError, ValueError):
        return str(exc.reason)
