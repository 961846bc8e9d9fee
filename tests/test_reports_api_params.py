"""Every bad parameter of the reports API is a 400 with a one-line {"error": ...}, never a 500 or a
store error; and a body nested deeper than any parser goes is a 400 on every route that reads one."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from spendscope.collector import Collector
from spendscope.store import Store
from spendscope.store.times import parse_month, parse_time
from tests.store_fixtures import serve_reports
from tests.test_collector import PROTOBUF, config, request

BAD = [
    ("summary?since=1000000d", "bad --since '1000000d': times must be from 1900-01-01 to 2262-04-11 (UTC)"),
    ("summary?since=99999999999999999999h", "bad --since '99999999999999999999h': use 30d"),
    ("summary?since=" + "9" * 5000 + "d", "bad --since '9999999999999999999999999999999999999...': use 30d"),
    ("summary?since=1000-01-01", "times must be from 1900-01-01"),
    ("summary?until=2300-01-01", "bad --until '2300-01-01': times must be from"),
    ("summary?since=9999-12-31T23:59:59-01:00", "times must be from"),
    ("summary?since=0001-01-01T00:00:00%2B01:00", "times must be from"),
    ("summary?since=2026-02-30", "bad --since '2026-02-30': use 30d"),
    ("summary?since=yesterday", "bad --since 'yesterday'"),
    ("summary?since=2026-11-02&until=2026-11-01", "empty time range"),
    ("summary?by=nope", "unknown --by 'nope'"),
    ("summary?where=tenant", "bad --where 'tenant'"),
    ("summary?since=2w&since=3w", "parameter since given 2 times"),
    ("summary?sincee=2w", "unknown parameter(s) sincee"),
    ("users?limit=0", "bad limit '0'"),
    ("users?limit=99999999999999999999999", "bad limit"),
    ("users/u-1?month=0000-01", "bad month '0000-01': times must be from"),
    ("users/u-1?month=2262-12", "bad month '2262-12': times must be from"),
    ("users/u-1?month=2026-13", "bad month '2026-13': use YYYY-MM"),
    ("daily?since=1000000d", "times must be from"),
    ("endpoints?until=1000000d", "times must be from"),
    ("export.csv?since=1000000d", "times must be from"),
    ("report?by=user&since=1000000d&format=csv", "times must be from"),
    ("report?by=user&format=xml", "bad format 'xml'"),
]


def test_every_bad_parameter_is_a_400_with_one_line(store: Store) -> None:
    with serve_reports(store) as url:
        for query, error in BAD:
            status, headers, body = request(url, "GET", "/api/usage/" + query)
            assert status == 400 and headers["content-type"] == "application/json", (query, body)
            message = json.loads(body)["error"]
            assert error in message and "\n" not in message and len(message) < 300, (query, message)


def test_the_edges_of_the_store_s_range_are_answered(store: Store) -> None:
    with serve_reports(store) as url:
        for query in (
            "summary?since=1900-01-01&until=2262-04-11",
            "export.csv?since=1900-01-01&until=2262-04-11",
            "users/u-1?month=1900-01",
            "users/u-1?month=2262-03",
        ):
            status, _, body = request(url, "GET", "/api/usage/" + query)
            assert status == 200, (query, body)


def test_times_and_months_at_and_past_the_edges() -> None:
    from datetime import UTC, datetime

    from spendscope.store.errors import ReportError

    now = datetime(2026, 11, 1, tzinfo=UTC)
    assert parse_time("1900-01-01", now=now) == datetime(1900, 1, 1, tzinfo=UTC)
    assert parse_time("46000d", now=now).year == 1900
    with pytest.raises(ReportError, match="times must be from"):
        parse_time("47000d", now=now)
    assert parse_month("2262-03")[1].isoformat() == "2262-04-01"
    with pytest.raises(ReportError, match="times must be from"):
        parse_month("1899-12")


@pytest.fixture
def collector(tmp_path: Path, store_dsn: str, store: Store) -> Iterator[Collector]:
    with Collector(config(tmp_path, store_dsn), store=store) as running:
        yield running


def test_a_body_nested_past_the_parsers_is_a_400(collector: Collector) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    objects = b'{"a":' * 50_000 + b"1" + b"}" * 50_000
    for path in ("/v1/traces", "/v1/metrics"):
        for body in (deep, objects):
            status, _, answer = request(
                collector.url, "POST", path, body, {"Content-Type": "application/json"}
            )
            assert (status, json.loads(answer)) == (
                400,
                {"code": 3, "message": "malformed JSON: nested too deeply"},
            )
        status, _, _ = request(collector.url, "POST", path, deep, {"Content-Type": PROTOBUF})
        assert status == 400
    # the reports API reads no body: one sent along changes nothing
    status, _, _ = request(
        collector.url, "GET", "/api/usage/summary", deep, {"Content-Type": "application/json"}
    )
    assert status == 200
    status, _, answer = request(collector.url, "GET", "/healthz")
    assert status == 200 and json.loads(answer)["status"] == "ok"
