"""Reports and named queries on real chdb, with exact Decimal money, plus the pure query builders."""

from __future__ import annotations

import io
import json
import re
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode

import pytest

from spendscope.pricing import Pricer
from spendscope.store import Report, ReportError, Store, StoreError, report
from spendscope.store import reports as r
from spendscope.store.billing import default_margin, margins, parse_margin, set_margin
from spendscope.store.prices import load_model_prices
from spendscope.store.remote import Collector, ReportRequest, remote_export_csv, remote_report
from spendscope.store.sqlfiles import named_query, query_names
from spendscope.store.times import parse_month, parse_range, parse_time
from tests.store_fixtures import fresh_store, llm_record, serve_reports

D = Decimal
NOV = datetime(2026, 11, 1, tzinfo=UTC)
DEC = datetime(2026, 12, 1, tzinfo=UTC)


def at(day: int, hour: int, minute: int = 0, microsecond: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, microsecond=microsecond, tzinfo=UTC)


def add_month_of_calls(store: Store) -> Store:
    """A month of HR-app calls: CV parsing, question generation and interviews per job."""
    acme = {"tenant": "acme"}
    records = [
        *(llm_record(t, user="u-1", endpoint="cv-parsing", cost="0.001", extra={"job_id": "J-1"}, **acme)
          for t in (at(3, 10, 10), at(3, 10, 40), at(3, 11, 20))),
        llm_record(at(4, 9), user="u-2", endpoint="questions", model="gpt-4.1-2025-04-14", cost="0.01",
                   extra={"job_id": "J-1"}, **acme),
        llm_record(at(20, 15), user="u-2", endpoint="interview", cost="0.002", extra={"job_id": "J-2"}, **acme),
        llm_record(at(5, 8), user="u-3", endpoint="cv-parsing", tenant="globex", cost="0.005",
                   extra={"job_id": "J-9"}),
        llm_record(at(6, 12), user="u-1", endpoint="cv-parsing", model="acme-llm-1", cost=None,
                   extra={"job_id": "J-1"}, **acme),
        llm_record(at(6, 13), user="u-1", endpoint="cv-parsing", cost=None, state="unavailable",
                   error="APITimeoutError", extra={"job_id": "J-1"}, **acme),
        llm_record(datetime(2026, 10, 31, 23, 59, tzinfo=UTC), user="u-1", cost="0.5", **acme),
    ]  # fmt: skip
    store.insert_spans(records, dedup_token="usage")
    return store


@pytest.fixture(scope="module")
def usage(chdb_dsn: str, _chdb_admin: Store) -> Iterator[Store]:
    """The month, shared by the tests that only read it."""
    with fresh_store(chdb_dsn, _chdb_admin) as store:
        yield add_month_of_calls(store)


@pytest.fixture
def usage_rw(store: Store) -> Store:
    """The month, in a database of the test's own (for tests that write margins)."""
    return add_month_of_calls(store)


def by_key(result: Report) -> dict[str, dict[str, Any]]:
    return {row[0]: dict(zip(result.columns[1:], row[1:], strict=True)) for row in result.rows}


# --- reports ------------------------------------------------------------------------------------------
def test_cost_by_user_for_the_month(usage: Store) -> None:
    result = report(usage, by="user", since=NOV, until=DEC)
    assert result.columns == [
        "user",
        "calls",
        "input_tokens",
        "output_tokens",
        "cached_input_tokens",
        "reasoning_tokens",
        "cost_usd",
        "unpriced_calls",
        "usage_unavailable_calls",
        "error_calls",
    ]
    rows = by_key(result)
    assert list(rows) == ["u-2", "u-3", "u-1"]  # most expensive first
    assert rows["u-1"] == {
        "calls": 5,
        "input_tokens": 400,
        "output_tokens": 80,
        "cached_input_tokens": 0,
        "reasoning_tokens": 0,
        "cost_usd": D("0.003"),
        "unpriced_calls": 1,
        "usage_unavailable_calls": 0,
        "error_calls": 1,
    }
    assert rows["u-2"]["cost_usd"] == D("0.012") and rows["u-3"]["cost_usd"] == D("0.005")


def test_cost_by_extra_attribute_with_filters(usage: Store) -> None:
    result = report(usage, by="attr:job_id", since=NOV, until=DEC, where={"tenant": "acme"})
    assert result.columns[0] == "attr:job_id"
    rows = by_key(result)
    assert {k: (v["calls"], v["cost_usd"], v["unpriced_calls"]) for k, v in rows.items()} == {
        "J-1": (6, D("0.013"), 1),
        "J-2": (1, D("0.002"), 0),
    }
    only = report(usage, by="endpoint", since=NOV, until=DEC, where={"attr:job_id": "J-1", "user": "u-1"})
    assert [(k, v["calls"], v["cost_usd"]) for k, v in by_key(only).items()] == [
        ("cv-parsing", 5, D("0.003"))
    ]


@pytest.mark.parametrize(
    ("since", "until"),
    [
        (at(3, 10, 30), at(3, 11, 30)),  # inside two partial hours: llm_usage only
        (at(3, 10, 30), at(5, 0)),  # a partial hour, whole hours, a whole day
        (at(3, 11), at(6, 12, 30)),  # whole hours, whole days, a partial hour
        (NOV, DEC),  # a whole month
        (NOV - timedelta(minutes=1), at(30, 23, 59)),  # partial hours, hours, days, weeks
        (datetime(2026, 10, 31, 23, 59, 30, tzinfo=UTC), at(20, 15, 0, 1)),  # to the microsecond
        (datetime(2026, 9, 30, 12, tzinfo=UTC), at(4, 9, 30)),  # a month, days, hours
    ],
)
def test_rollup_reports_equal_llm_usage_reports_over_any_range(
    usage: Store, since: datetime, until: datetime
) -> None:
    questions: list[tuple[str, dict[str, str]]] = [
        *((by, {}) for by in r.ROLLUP_DIMENSIONS),  # one dimension: llm_usage_by_dimension
        ("user", {"user": "u-1"}),
        ("model", {"tenant": "acme"}),  # two: the rollups of all five
        ("endpoint", {"user": "u-1", "model": "gpt-4o-mini-2024-07-18"}),
    ]
    for by, where in questions:
        raw = r.run(usage, r.usage_query(by, since, until, where, raw=True))
        # now: the window's end (later calls cancel out), long after it, before it (a clock behind)
        for now in (until, until + timedelta(days=40), since):
            fast = r.usage_query(by, since, until, where, now=now)
            assert fast.name == ("usage_by_dimension" if len({by, *where}) == 1 else "usage_by")
            assert r.run(usage, fast) == raw, (by, where, now)
    # usage_window (the view dashboards read) holds the same calls
    window = "usage_window(since = {since:DateTime64(9, 'UTC')}, until = {until:DateTime64(9, 'UTC')})"
    by_user = (
        f"SELECT user_id, sum(calls), sum(cost_usd), sum(error_calls) FROM {window} GROUP BY ALL ORDER BY ALL"
    )
    expected = r.run(usage, r.usage_query("user", since, until, raw=True)).as_dicts()
    assert usage.query(by_user, {"since": since, "until": until}).rows == sorted(
        [x["key"], x["calls"], x["cost_usd"], x["error_calls"]] for x in expected
    )
    edge = by_key(report(usage, by="user", since=at(3, 10, 30), until=at(3, 11, 30)))
    assert {k: (v["calls"], v["cost_usd"]) for k, v in edge.items()} == {"u-1": (2, D("0.002"))}


def test_calls_after_until_are_never_counted(usage: Store) -> None:
    """A window ending now is read as whole buckets running past its end (to the end of November here)
    minus the timeline from `until` on: the calls stamped after `until` cancel out, and a value whose
    only call is after it (the interview endpoint, Nov 20 15:00) is no row at all."""
    since, until = at(3, 10, 30), at(20, 12)
    raw = "time >= {since:DateTime64(9, 'UTC')} AND time < {until:DateTime64(9, 'UTC')}"
    for by in r.ROLLUP_DIMENSIONS:
        fast = r.usage_query(by, since, until, now=until)
        assert (fast.params["tail_since"], fast.params["tail_sign"]) == ("2026-11-20 12:00:00.000000", -1)
        assert fast.params["tail_until"] > "2026-11-21"  # the buckets run past the calls after `until`
        assert r.run(usage, fast) == r.run(usage, r.usage_query(by, since, until, raw=True)), by
    endpoints = by_key(r.run(usage, r.usage_query("endpoint", since, until, now=until)))
    assert list(endpoints) == ["questions", "cv-parsing"]
    top = r.top_users_query(since, until, now=until)
    assert top.params["tail_sign"] == -1
    assert [(row[0], row[1], row[4]) for row in r.run(usage, top).rows] == [
        ("u-2", 1, D("0.01")),  # not its Nov 20 15:00 call
        ("u-3", 1, D("0.005")),
        ("u-1", 4, D("0.002")),  # Nov 3 10:40 and 11:20, Nov 6 12:00 and 13:00 (unpriced)
    ]
    daily = r.series_query("day", since, until, now=until)
    assert daily.params["tail_sign"] == -1
    expected = usage.query(
        f"SELECT toDate(time), '', count(), sum(ifNull(cost_usd, 0)) FROM llm_usage FINAL WHERE {raw} "
        "GROUP BY 1 ORDER BY 1",
        {"since": since, "until": until},
    ).rows
    assert [[row[0], row[1], row[2], row[5]] for row in r.run(usage, daily).rows] == expected
    monthly = r.series_query("month", NOV - timedelta(days=3), until, by="tenant", now=until)
    assert monthly.params["tail_sign"] == -1
    assert [(row[0], row[1], row[2], row[5]) for row in r.run(usage, monthly).rows] == [
        (date(2026, 10, 1), "acme", 1, D("0.5")),
        (date(2026, 11, 1), "acme", 6, D("0.013")),  # not u-2's Nov 20 interview, after `until`
        (date(2026, 11, 1), "globex", 1, D("0.005")),
    ]


def test_a_filter_value_is_a_value_not_sql(usage: Store) -> None:
    attack = "u-1' OR '1'='1"
    query = r.usage_query("user", NOV, DEC, {"user": attack, "attr:job_id": "x'); DROP TABLE llm_usage; --"})
    assert attack not in query.sql and "DROP" not in query.sql
    assert query.params["where_values"] == [attack, "x'); DROP TABLE llm_usage; --"]
    assert r.run(usage, query).rows == []
    assert report(usage, by="user", since=NOV, until=DEC, where={"user": attack}).rows == []
    assert usage.query("SELECT count() FROM llm_usage").rows == [[9]]
    with pytest.raises(ReportError, match="bad --by"):
        r.usage_query("attr:job_id') --", NOV, DEC)


def test_daily_and_monthly_series(usage: Store) -> None:
    daily = r.daily_series(usage, since=at(3, 10, 30), until=at(5, 12))
    assert daily.columns[:2] == ["day", "key"]
    assert [(row[0], row[1], row[2], row[5]) for row in daily.rows] == [
        (date(2026, 11, 3), "", 2, D("0.002")),
        (date(2026, 11, 4), "", 1, D("0.01")),
        (date(2026, 11, 5), "", 1, D("0.005")),
    ]
    monthly = r.monthly_series(usage, since=datetime(2026, 10, 1, tzinfo=UTC), until=DEC, by="tenant")
    assert monthly.columns[:2] == ["month", "tenant"]
    assert [(row[0], row[1], row[5]) for row in monthly.rows] == [
        (date(2026, 10, 1), "acme", D("0.5")),
        (date(2026, 11, 1), "acme", D("0.015")),
        (date(2026, 11, 1), "globex", D("0.005")),
    ]


def test_top_users_and_one_users_month_by_model(usage: Store) -> None:
    top = r.top_users(usage, since=NOV, until=DEC, limit=2)
    assert [(row[0], row[4]) for row in top.rows] == [("u-2", D("0.012")), ("u-3", D("0.005"))]
    acme_only = r.top_users(usage, since=NOV, until=DEC, limit=5, where={"tenant": "acme"})
    assert [row[0] for row in acme_only.rows] == ["u-2", "u-1"]
    month = by_key(r.user_month(usage, user="u-1", month=date(2026, 11, 17)))
    assert {k: (v["calls"], v["cost_usd"], v["unpriced_calls"]) for k, v in month.items()} == {
        "gpt-4o-mini-2024-07-18": (4, D("0.003"), 0),
        "acme-llm-1": (1, D("0"), 1),
    }


def test_unpriced_calls_are_listed(usage: Store) -> None:
    result = r.unpriced_calls(usage, since=NOV, until=DEC)
    assert [(row[0], row[2], row[7]) for row in result.rows] == [(at(6, 12), "acme-llm-1", "u-1")]


def test_margins_and_invoices_per_tenant_and_per_job(usage_rw: Store) -> None:
    set_margin(usage_rw, "acme", D(20), effective_from=date(2026, 11, 1))
    set_margin(usage_rw, "acme", D("50"), effective_from=date(2026, 11, 10))
    set_margin(usage_rw, "acme", D("25"), effective_from=date(2026, 11, 10))  # corrected the same day
    assert margins(usage_rw, "acme") == [
        ("acme", date(2026, 11, 1), D(20)),
        ("acme", date(2026, 11, 10), D(25)),
    ]
    result = r.invoice(usage_rw, tenant="acme", month=date(2026, 11, 1), default_margin=D(10))
    assert result.columns == [
        "model",
        "calls",
        "priced_calls",
        "unpriced_calls",
        "input_tokens",
        "output_tokens",
        "cost_usd",
        "billed_usd",
    ]
    assert {row[0]: (row[1], row[3], row[6], row[7]) for row in result.rows} == {
        # 3 x 0.001 at +20% on Nov 3, 0.002 at +25% on Nov 20, and the failed call
        "gpt-4o-mini-2024-07-18": (5, 0, D("0.005"), D("0.0061")),
        "gpt-4.1-2025-04-14": (1, 0, D("0.01"), D("0.012")),
        "acme-llm-1": (1, 1, D(0), D(0)),
    }
    jobs = r.invoice(usage_rw, tenant="acme", month=date(2026, 11, 1), by="attr:job_id", default_margin=D(10))
    assert {row[0]: (row[6], row[7]) for row in jobs.rows} == {
        "J-1": (D("0.013"), D("0.0156")),
        "J-2": (D("0.002"), D("0.0025")),
    }
    globex = r.invoice(usage_rw, tenant="globex", month=date(2026, 11, 1), default_margin=D("12.5"))
    assert [(row[6], row[7]) for row in globex.rows] == [(D("0.005"), D("0.005625"))]


def test_export_has_one_row_per_call_with_billed_cost(usage_rw: Store) -> None:
    set_margin(usage_rw, "acme", D(20), effective_from=date(2026, 11, 1))
    result = r.export_calls(usage_rw, since=NOV, until=DEC, where={"user": "u-1"})
    rows = result.as_dicts()
    assert len(rows) == 5
    assert [(x["model"], x["cost_usd"], x["margin_percent"], x["billed_usd"]) for x in rows[:1]] == [
        ("gpt-4o-mini-2024-07-18", D("0.001"), D(20), D("0.0012"))
    ]
    assert rows[3]["cost_usd"] is None and rows[3]["billed_usd"] is None  # unknown, not 0
    assert rows[0]["attributes"] == {"job_id": "J-1"}
    assert rows[0]["time"].replace(microsecond=0) == at(3, 10, 10)


def test_cache_savings_use_the_prices_in_force(store: Store) -> None:
    store.insert_spans(
        [
            llm_record(at(3, 10), input_tokens=2000, cached=1000, cost="0.000000"),
            llm_record(at(3, 11), model="acme-llm-1", cached=500),
        ],
        dedup_token="c",
    )
    assert load_model_prices(store, Pricer()) > 10
    result = r.cache_savings(store, since=NOV, until=DEC)
    assert {row[0]: row[1:] for row in result.rows} == {
        # gpt-4o-mini: $0.15 input, $0.075 cached input per 1M tokens
        "gpt-4o-mini-2024-07-18": [1, 1000, D("0.000075"), 0],
        "acme-llm-1": [1, 500, D(0), 1],
    }


def test_every_named_query_runs_with_bound_parameters(usage: Store) -> None:
    samples = {
        "String": "model",
        "DateTime64(9, 'UTC')": "2026-11-01 00:00:00.000000",
        "Array(String)": [],
        "UInt32": 10,
        "UInt64": 10,
        "Int8": -1,
        "Identifier": "service",
        "Date": "2026-11-01",
        "Decimal(9, 4)": "12.5",
        "Float64": 80.0,
        "Array(Nullable(Float64))": [],
        "Array(Date)": ["2026-11-03"],
        "Array(DateTime('UTC'))": ["2026-11-03 10:00:00"],
        "Array(Tuple(String, DateTime('UTC')))": [("day", "2026-11-03 00:00:00")],
    }
    for name in query_names():
        query = named_query(name)
        params = (
            {p: samples[t] for p, t in query.params.items()} if name != "tenant_margins" else {"tenant": ""}
        )
        columns = usage.run(name, params).columns
        assert columns, name
    with pytest.raises(ValueError, match="missing parameters"):
        usage.run("top_users", {"since": "2026-11-01 00:00:00"})


# --- pure builders ------------------------------------------------------------------------------------
def test_the_smallest_rollup_that_answers_is_used() -> None:
    aligned = {
        "head_since": "2026-11-01 00:00:00.000000",
        "head_until": "2026-11-01 00:00:00.000000",
        "tail_since": "2026-12-01 00:00:00.000000",
        "tail_until": "2026-12-01 00:00:00.000000",
    }
    assert r.usage_query("user", NOV, DEC).params == {
        "dimension": "user",
        "column": "user_id",
        "values": [],
        "buckets": [("month", "2026-11-01 00:00:00")],
        "minus_buckets": [],
        **aligned,
        "head_sign": 1,
        "tail_sign": 1,
    }
    assert r.usage_query("user", NOV, DEC, {"tenant": "acme"}).params == {
        "by": "user",
        "where_keys": ["tenant"],
        "where_values": ["acme"],
        "days": [f"2026-11-{d:02d}" for d in range(1, 31)],
        "hours": [],
        **aligned,
    }
    # the partial day of Nov 3 is read as the day minus its first 10 hours, minus the timeline's
    # [10:00, 10:30) (the ranges above check it)
    partial = r.usage_query("user", at(3, 10, 30), at(5, 0), now=at(30, 0)).params
    assert partial["minus_buckets"] == [("hour", f"2026-11-03 {h:02d}:00:00") for h in range(10)]
    assert (partial["head_since"], partial["head_until"], partial["head_sign"]) == (
        "2026-11-03 10:00:00.000000",
        "2026-11-03 10:30:00.000000",
        -1,
    )
    assert r.usage_query("tenant", NOV, DEC, {"tenant": "acme"}).name == "usage_by_dimension"
    assert r.usage_query("model", NOV, DEC, {"tenant": "acme"}).name == "usage_by"
    assert r.usage_query("attr:job_id", NOV, DEC).name == "usage_by_raw"
    assert r.usage_query("user", NOV, DEC, {"attr:job_id": "J-1"}).name == "usage_by_raw"
    assert r.usage_query("operation", NOV, DEC).name == "usage_by_raw"
    assert r.usage_query("user", NOV, DEC, raw=True).params == {
        "by": "user",
        "since": "2026-11-01 00:00:00.000000",
        "until": "2026-12-01 00:00:00.000000",
        "where_keys": [],
        "where_values": [],
    }
    assert r.top_users_query(NOV, DEC, where={"user": "u-1"}).name == "top_users_by_dimension"
    assert r.top_users_query(NOV, DEC, where={"tenant": "acme"}).name == "top_users"
    daily = r.series_query("day", NOV, DEC)  # one series: any dimension's rows hold every call
    assert (daily.name, daily.params["dimension"], daily.params["buckets"][0]) == (
        "cost_series_by_dimension",
        "service",
        ("day", "2026-11-01 00:00:00"),  # never a month or week bucket in a daily series
    )
    monthly = r.series_query("month", NOV, DEC, by="model")
    assert (monthly.name, monthly.params["buckets"]) == (
        "cost_series_by_dimension",
        [("month", "2026-11-01 00:00:00")],
    )
    assert r.series_query("month", NOV, DEC, by="model", where={"tenant": "acme"}).name == "cost_series"
    assert r.user_month_query("u-1", date(2026, 11, 17)).params == {"user": "u-1", "month": "2026-11-01"}
    assert r.invoice_query("acme", date(2026, 11, 1)).name == "tenant_invoice"
    assert (
        r.invoice_query("acme", date(2026, 11, 1), by="attr:job_id").params["until"]
        == "2026-12-01 00:00:00.000000"
    )


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: r.usage_query("users", NOV, DEC), "unknown --by 'users': choose user, endpoint"),
        (lambda: r.usage_query("user", DEC, NOV), "empty time range"),
        (lambda: r.parse_where(["tenant"]), "bad --where 'tenant': use KEY=VALUE"),
        (lambda: r.parse_where(["colour=red"]), "unknown --where key 'colour'"),
        (
            lambda: r.series_query("day", NOV, DEC, where={"attr:job_id": "J"}),
            "a cost series filters on user, endpoint, tenant, model, service only",
        ),
        (lambda: r.invoice_query("acme", date(2026, 11, 1), by="tenant"), "unknown --by 'tenant'"),
        (lambda: parse_time("yesterday-ish", now=NOV), "bad time 'yesterday-ish': use 30d"),
        (lambda: parse_month("2026-13"), "bad month '2026-13'"),
        (lambda: parse_margin("lots"), "bad margin 'lots'"),
        (
            lambda: default_margin({"SPENDSCOPE_MARGIN_PERCENT": "x"}),
            "environment variable SPENDSCOPE_MARGIN_PERCENT",
        ),
    ],
)
def test_bad_inputs_are_clear_errors(call: Any, message: str) -> None:
    with pytest.raises(ReportError) as info:
        call()
    assert message in str(info.value)


def test_times_and_filters_people_type() -> None:
    now = datetime(2026, 11, 22, 15, 30, tzinfo=UTC)
    assert parse_time("30d", now=now) == now - timedelta(days=30)
    assert parse_time("90m", now=now) == now - timedelta(minutes=90)
    assert parse_time("today", now=now) == datetime(2026, 11, 22, tzinfo=UTC)
    assert parse_time("2026-11-01", now=now) == NOV
    assert parse_time("2026-11-01T10:00+01:00", now=now) == datetime(2026, 11, 1, 9, tzinfo=UTC)
    assert parse_range("2w", "1d", now=now) == (now - timedelta(weeks=2), now - timedelta(days=1))
    assert parse_month("2026-12") == (date(2026, 12, 1), date(2027, 1, 1))
    assert r.parse_where(["user=a=b", "attr:job_id=J-1"]) == {"user": "a=b", "attr:job_id": "J-1"}
    assert default_margin({}) == 0 and default_margin({"SPENDSCOPE_MARGIN_PERCENT": "12.5"}) == D("12.5")


def test_report_json_is_exact_and_round_trips() -> None:
    result = Report(["user", "calls", "cost_usd"], [["u-1", 3, D("0.001500000000000000")], ["u-2", 1, D(0)]])
    assert result.to_json() == {
        "columns": ["user", "calls", "cost_usd"],
        "rows": [["u-1", 3, "0.0015"], ["u-2", 1, "0"]],
    }
    assert Report.from_json(json.loads(json.dumps(result.to_json()))) == Report(
        ["user", "calls", "cost_usd"], [["u-1", 3, D("0.0015")], ["u-2", 1, D(0)]]
    )


# --- through a collector ------------------------------------------------------------------------------
def test_report_request_travels_in_a_query_string() -> None:
    request = ReportRequest("attr:job_id", NOV, DEC, {"tenant": "acme", "user": "a&b=c"})
    query = request.to_query()
    assert query[:3] == [
        ("by", "attr:job_id"),
        ("since", "2026-11-01T00:00:00Z"),
        ("until", "2026-12-01T00:00:00Z"),
    ]
    assert ReportRequest.from_query(parse_qs(urlencode(query))) == request
    with pytest.raises(ReportError, match="unknown --by"):
        ReportRequest.from_query({"by": ["nope"]})


@pytest.fixture
def fake_collector(usage: Store) -> Iterator[Collector]:
    with serve_reports(usage, token="s3cret") as url:
        yield Collector(url, 1, "s3cret")


def test_remote_report_equals_the_local_one(usage: Store, fake_collector: Collector) -> None:
    request = ReportRequest("user", NOV, DEC, {"tenant": "acme"})
    assert remote_report(fake_collector, request) == request.run(usage)
    with pytest.raises(StoreError, match=r"refused the report \(400\): unknown --by"):
        remote_report(fake_collector, ReportRequest("nope", NOV, DEC))
    with pytest.raises(StoreError, match=re.escape("cannot reach the collector at http://127.0.0.1:9")):
        remote_report(Collector("http://127.0.0.1:9", 1), request, timeout=2)


def test_remote_export_streams_the_collectors_csv_and_says_when_it_is_cut_short(
    usage: Store, fake_collector: Collector
) -> None:
    through_it, local = io.BytesIO(), io.BytesIO()
    remote_export_csv(fake_collector, through_it, since=NOV, until=DEC, where={"tenant": "acme"})
    r.write_calls_csv(usage, local, since=NOV, until=DEC, where={"tenant": "acme"})
    assert through_it.getvalue() == local.getvalue() and local.getvalue().count(b"\n") > 1
    with pytest.raises(StoreError, match=r"refused the export \(400\): unknown --where key"):
        remote_export_csv(fake_collector, io.BytesIO(), since=NOV, until=DEC, where={"colour": "red"})

    class CutShort(BaseHTTPRequestHandler):  # promises 1,000 bytes, sends 10 and hangs up
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b'"time",...')

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), CutShort)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        cut = Collector(f"http://127.0.0.1:{server.server_address[1]}", 1)
        with pytest.raises(StoreError, match=r"broke off the export: 10 of 1,000 bytes"):
            remote_export_csv(cut, io.BytesIO(), since=NOV, until=DEC, where={})
    finally:
        server.shutdown()
        server.server_close()
