"""Reports and named queries on a real ClickHouse server (the local store server), with exact Decimal money, plus the pure query builders."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from spendscope.settings import ConfigurationError
from spendscope.store import Report, ReportError, Store, report
from spendscope.store import reports as r
from spendscope.store.billing import default_margin, margins, parse_margin, set_margin
from spendscope.store.rollups import build_rollups
from spendscope.store.sqlfiles import named_query, query_names
from spendscope.store.times import parse_month, parse_range, parse_time
from tests.store_fixtures import fresh_store, llm_record

D = Decimal
NOV = datetime(2026, 11, 1, tzinfo=UTC)
DEC = datetime(2026, 12, 1, tzinfo=UTC)
MINI = "gpt-4.1-mini-2025-04-14"  # $0.40 per million input tokens
FULL = "gpt-4.1-2025-04-14"  # $2 per million input tokens


def at(day: int, hour: int, minute: int = 0, microsecond: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, microsecond=microsecond, tzinfo=UTC)


def costing(cost: str, model: str = MINI) -> dict[str, Any]:
    """A call the store prices at `cost` (input tokens only), whose client sent the same cost."""
    per_token = D("0.0000004") if model == MINI else D("0.000002")
    return {"model": model, "input_tokens": int(D(cost) / per_token), "output_tokens": 0, "cost": cost}


def add_month_of_calls(store: Store) -> Store:
    """A month of HR-app calls: CV parsing, question generation and interviews per job."""
    acme = {"tenant": "acme"}
    records = [
        *(llm_record(t, user="u-1", endpoint="cv-parsing", extra={"job_id": "J-1"}, **costing("0.001"), **acme)
          for t in (at(3, 10, 10), at(3, 10, 40), at(3, 11, 20))),
        llm_record(at(4, 9), user="u-2", endpoint="questions", **costing("0.01", FULL),
                   extra={"job_id": "J-1"}, **acme),
        llm_record(at(20, 15), user="u-2", endpoint="interview", **costing("0.002"), extra={"job_id": "J-2"},
                   **acme),
        llm_record(at(5, 8), user="u-3", endpoint="cv-parsing", tenant="globex", **costing("0.005"),
                   extra={"job_id": "J-9"}),
        llm_record(at(6, 12), user="u-1", endpoint="cv-parsing", model="acme-llm-1", cost=None,
                   extra={"job_id": "J-1"}, **acme),
        llm_record(at(6, 13), user="u-1", endpoint="cv-parsing", model=MINI, cost=None, state="unavailable",
                   error="APITimeoutError", extra={"job_id": "J-1"}, **acme),
        llm_record(datetime(2026, 10, 31, 23, 59, tzinfo=UTC), user="u-1", **costing("0.5"), **acme),
    ]  # fmt: skip
    store.insert_spans(records)
    return store


@pytest.fixture(scope="module")
def usage(server_dsn: str, _store_admin: Store) -> Iterator[Store]:
    """The month, shared by the tests that only read it (no rollup built: every answer from llm_usage)."""
    with fresh_store(server_dsn, _store_admin) as store:
        yield add_month_of_calls(store)


@pytest.fixture(scope="module")
def built(server_dsn: str, _store_admin: Store) -> Iterator[Store]:
    """The month with its rollups built: whole clean buckets are read from them."""
    with fresh_store(server_dsn, _store_admin) as store:
        add_month_of_calls(store)
        build_rollups(store, lag=timedelta(0))
        yield store


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
        "priced_calls",
        "unpriced_calls",
        "unpriced_input_tokens",
        "unpriced_output_tokens",
        "usage_unavailable_calls",
        "error_calls",
        "cost_mismatch_calls",
    ]
    rows = by_key(result)
    assert list(rows) == ["u-2", "u-3", "u-1"]  # most expensive first
    assert rows["u-1"] == {
        "calls": 5,
        "input_tokens": 3 * 2500 + 100,
        "output_tokens": 20,
        "cached_input_tokens": 0,
        "reasoning_tokens": 0,
        "cost_usd": D("0.003"),  # the priced calls' part: one call's cost is unknown
        "priced_calls": 3,
        "unpriced_calls": 1,
        "unpriced_input_tokens": 100,
        "unpriced_output_tokens": 20,
        "usage_unavailable_calls": 0,
        "error_calls": 1,
        "cost_mismatch_calls": 0,
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


WINDOWS = [
    (at(3, 10, 30), at(3, 11, 30)),  # inside two partial hours
    (at(3, 10, 30), at(5, 0)),  # a partial hour, whole hours, a whole day
    (at(3, 11), at(6, 12, 30)),  # whole hours, whole days, a partial hour
    (NOV, DEC),  # a whole month
    (NOV - timedelta(minutes=1), at(30, 23, 59)),  # partial days at both ends
    (datetime(2026, 10, 31, 23, 59, 30, tzinfo=UTC), at(20, 15, 0, 1)),  # to the microsecond
    (datetime(2026, 9, 30, 12, tzinfo=UTC), at(4, 9, 30)),  # a month before the calls
]
QUESTIONS: list[tuple[str, dict[str, str]]] = [
    *((by, {}) for by in r.ROLLUP_DIMENSIONS),
    ("user", {"user": "u-1"}),
    ("model", {"tenant": "acme"}),
    ("endpoint", {"user": "u-1", "model": MINI}),
]


@pytest.mark.parametrize(("since", "until"), WINDOWS)
def test_reports_from_the_rollups_equal_llm_usage_over_any_range(
    usage: Store, built: Store, since: datetime, until: datetime
) -> None:
    """Whole clean buckets from the rollups, the rest from llm_usage: the same answer as llm_usage
    alone, before any build and after it, at every grain."""
    for by, where in QUESTIONS:
        raw = r.run(usage, r.usage_query(by, since, until, where, raw=True))
        fast = r.usage_query(by, since, until, where)
        assert fast.name == "usage_by"
        assert r.run(usage, fast) == raw, (by, where)
        assert r.run(built, fast) == r.run(built, r.usage_query(by, since, until, where, raw=True)) == raw
        grains = ("user_day",) if "user" in (by, *where) else ("day", "hour", "user_day", "job_day")
        assert fast.params["grain"] == grains[0]
        for grain in grains:  # every grain that can answer answers the same
            other = r.Query("usage_by", {**fast.params, "grain": grain})
            assert r.run(built, other) == r.run(usage, other) == raw, (by, where, grain)
    edge = by_key(report(built, by="user", since=at(3, 10, 30), until=at(3, 11, 30)))
    assert {k: (v["calls"], v["cost_usd"]) for k, v in edge.items()} == {"u-1": (2, D("0.002"))}


JOB_QUESTIONS: list[tuple[str, dict[str, str]]] = [
    ("", {}),
    ("endpoint", {}),
    ("endpoint", {"tenant": "acme"}),
    ("model", {"tenant": "acme", "endpoint": "cv-parsing"}),
    ("tenant", {"model": MINI}),
]


@pytest.mark.parametrize(("since", "until"), WINDOWS)
def test_billing_per_job_from_the_rollups_equals_llm_usage_over_any_range(
    usage: Store, built: Store, since: datetime, until: datetime
) -> None:
    """The per-job tables from the rollups per day and job (billing_jobs) answer as llm_usage alone
    (billing_pairs), before any build and after it."""
    from spendscope.store import breakdowns as b

    for by2, where in JOB_QUESTIONS:
        fast = b.billing_query("attr:job_id", since, until, by2=by2, where=where, default_margin=D("12.5"))
        assert fast.name == "billing_jobs"
        raw = r.Query("billing_pairs", {
            "by": "attr:job_id", "by2": by2, **{k: fast.params[k] for k in (
                "since", "until", "where_keys", "where_values", "default_margin_percent")}})  # fmt: skip
        for store in (usage, built):
            expected = r.run(store, raw).rows
            assert r.run(store, fast).rows == expected and expected, (by2, where)
    # the question answered from llm_usage alone was answered at all: a job and its cost
    jobs = b.billing(built, by="attr:job_id", since=NOV, until=DEC, where={"tenant": "acme"})
    assert {x["attr:job_id"]: (x["calls"], x["cost_usd"]) for x in jobs.as_dicts()} == {
        "J-1": (6, D("0.013")),
        "J-2": (1, D("0.002")),
    }


def test_the_rollups_are_read_where_they_are_clean(usage_rw: Store) -> None:
    """A built month: whole clean days come from the daily rollups, whole clean hours of the other days
    from the hourly one (marked here: their rows are made to count 1,000 calls more), the rest from
    llm_usage."""
    build_rollups(usage_rw, lag=timedelta(0))
    [[days, user_days, hours]] = usage_rw.query(
        "SELECT countIf(grain = 'day'), countIf(grain = 'user_day'), countIf(grain = 'hour') FROM rollup_builds"
    ).rows
    assert (days, user_days, hours) == (6, 6, 8)  # the days and hours with calls
    [[job_days]] = usage_rw.query("SELECT countIf(grain = 'job_day') FROM rollup_builds").rows
    assert job_days == 6
    usage_rw.command(
        "ALTER TABLE llm_usage_rollup UPDATE calls = calls + 1000 WHERE 1 SETTINGS mutations_sync = 2"
    )
    calls = {
        (grain, since, until): sum(row[1] for row in r.run(usage_rw, r.Query("usage_by", {
            "grain": grain, "column": "tenant", "since": since, "until": until, "where_keys": [],
            "where_values": []})).rows)
        for grain, since, until in (
            ("day", "2026-11-01 00:00:00", "2026-12-01 00:00:00"),  # Nov 3, 4, 5, 6 (two rows), 20
            ("day", "2026-11-03 10:30:00", "2026-11-05 00:00:00"),  # Nov 4, and 11:00 on Nov 3 hourly
            ("user_day", "2026-11-01 00:00:00", "2026-12-01 00:00:00"),  # Nov 3, 4, 5, 6 (two rows), 20
            ("user_day", "2026-11-03 10:30:00", "2026-11-05 00:00:00"),  # Nov 4; Nov 3 from llm_usage
            ("job_day", "2026-11-01 00:00:00", "2026-12-01 00:00:00"),  # Nov 3, 4, 5, 6 (two rows), 20
            ("job_day", "2026-11-03 10:30:00", "2026-11-05 00:00:00"),  # Nov 4; Nov 3 from llm_usage
            ("hour", "2026-11-03 10:30:00", "2026-11-04 10:00:00"),  # 11:00 on Nov 3, 9:00 on Nov 4
            ("hour", "2026-11-03 10:30:00", "2026-11-03 10:50:00"),  # inside an hour: llm_usage only
        )
    }  # fmt: skip
    # 1,000 per rollup row read
    assert list(calls.values()) == [8 + 6000, 3 + 2000, 8 + 6000, 3 + 1000, 8 + 6000, 3 + 1000, 3 + 2000, 1]


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


@pytest.mark.parametrize("built_first", [False, True])
def test_daily_and_monthly_series(usage: Store, built: Store, built_first: bool) -> None:
    store = built if built_first else usage
    daily = r.daily_series(store, since=at(3, 10, 30), until=at(5, 12))
    assert daily.columns[:2] == ["day", "key"]
    assert [(row[0], row[1], row[2], row[5]) for row in daily.rows] == [
        (date(2026, 11, 3), "", 2, D("0.002")),
        (date(2026, 11, 4), "", 1, D("0.01")),
        (date(2026, 11, 5), "", 1, D("0.005")),
    ]
    monthly = r.monthly_series(store, since=datetime(2026, 10, 1, tzinfo=UTC), until=DEC, by="tenant")
    assert monthly.columns[:2] == ["month", "tenant"]
    assert [(row[0], row[1], row[5]) for row in monthly.rows] == [
        (date(2026, 10, 1), "acme", D("0.5")),
        (date(2026, 11, 1), "acme", D("0.015")),
        (date(2026, 11, 1), "globex", D("0.005")),
    ]


@pytest.mark.parametrize("built_first", [False, True])
def test_top_users_and_one_users_month_by_model(usage: Store, built: Store, built_first: bool) -> None:
    store = built if built_first else usage
    top = r.top_users(store, since=NOV, until=DEC, limit=2)
    assert [(row[0], row[4]) for row in top.rows] == [("u-2", D("0.012")), ("u-3", D("0.005"))]
    acme_only = r.top_users(store, since=NOV, until=DEC, limit=5, where={"tenant": "acme"})
    assert [row[0] for row in acme_only.rows] == ["u-2", "u-1"]
    month = by_key(r.user_month(store, user="u-1", month=date(2026, 11, 17)))
    assert {k: (v["calls"], v["cost_usd"], v["unpriced_calls"]) for k, v in month.items()} == {
        MINI: (4, D("0.003"), 0),
        "acme-llm-1": (1, None, 1),  # unknown, not $0
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
    for build in (False, True):
        if build:
            build_rollups(usage_rw, lag=timedelta(0))
        result = r.invoice(usage_rw, tenant="acme", month=date(2026, 11, 1), default_margin=D(10))
        assert result.columns == [
            "model",
            "calls",
            "input_tokens",
            "output_tokens",
            "cost_usd",
            "billed_usd",
            "priced_calls",
            "unpriced_calls",
            "unpriced_input_tokens",
            "unpriced_output_tokens",
            "usage_unavailable_calls",
            "error_calls",
        ]
        lines = {x["model"]: x for x in result.as_dicts()}
        assert {
            k: (x["calls"], x["unpriced_calls"], x["cost_usd"], x["billed_usd"]) for k, x in lines.items()
        } == {
            # 3 x 0.001 at +20% on Nov 3, 0.002 at +25% on Nov 20, and the failed call
            MINI: (5, 0, D("0.005"), D("0.0061")),
            FULL: (1, 0, D("0.01"), D("0.012")),
            "acme-llm-1": (1, 1, None, None),  # unknown, not billed at $0
        }
        assert lines[MINI]["error_calls"] == 1 and lines["acme-llm-1"]["unpriced_input_tokens"] == 100
    jobs = r.invoice(usage_rw, tenant="acme", month=date(2026, 11, 1), by="attr:job_id", default_margin=D(10))
    assert {x["attr:job_id"]: (x["cost_usd"], x["billed_usd"]) for x in jobs.as_dicts()} == {
        "J-1": (D("0.013"), D("0.0156")),
        "J-2": (D("0.002"), D("0.0025")),
    }
    globex = r.invoice(usage_rw, tenant="globex", month=date(2026, 11, 1), default_margin=D("12.5"))
    assert [(x["cost_usd"], x["billed_usd"]) for x in globex.as_dicts()] == [(D("0.005"), D("0.005625"))]


def test_export_has_one_row_per_call_with_billed_cost(usage_rw: Store) -> None:
    set_margin(usage_rw, "acme", D(20), effective_from=date(2026, 11, 1))
    result = r.export_calls(usage_rw, since=NOV, until=DEC, where={"user": "u-1"})
    rows = result.as_dicts()
    assert len(rows) == 5
    assert [(x["model"], x["cost_usd"], x["margin_percent"], x["billed_usd"]) for x in rows[:1]] == [
        (MINI, D("0.001"), D(20), D("0.0012"))
    ]
    assert [(x["cost_source"], x["client_cost_usd"], x["priced_model"]) for x in rows[:1]] == [
        ("store", D("0.001"), MINI)
    ]
    assert rows[3]["cost_usd"] is None and rows[3]["billed_usd"] is None  # unknown, not 0
    assert rows[0]["attributes"] == {"job_id": "J-1"}
    assert rows[0]["time"].replace(microsecond=0) == at(3, 10, 10)


def test_cache_savings_use_the_prices_the_calls_were_priced_with(store: Store) -> None:
    store.insert_spans(
        [
            llm_record(at(3, 10), model="gpt-4o-mini-2024-07-18", input_tokens=2000, cached=1000, cost=None),
            llm_record(at(3, 11), model="acme-llm-1", input_tokens=1000, cached=500),
        ]
    )
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
        "Date": "2026-11-01",
        "Decimal(9, 4)": "12.5",
        "Float64": 80.0,
        "Array(Nullable(Float64))": [],
        "Identifier": "model",
        "Bool": True,
        "DateTime('UTC')": "2026-11-01 00:00:00",
    }
    for name in query_names():
        query = named_query(name)
        params = {p: samples[t] for p, t in query.params.items()}
        if name == "tenant_margins":
            params = {"tenant": ""}
        if "grain" in params:
            params["grain"] = "day"
        if name == "users_page":
            params["sort"] = "cost_usd"  # a column of its own answer
        if name == "usage_pairs":
            params["column2"] = "endpoint"
        columns = usage.run(name, params).columns
        assert columns, name
    with pytest.raises(ValueError, match="missing parameters"):
        usage.run("top_users", {"since": "2026-11-01 00:00:00"})


# --- pure builders ------------------------------------------------------------------------------------
def test_the_grain_and_query_follow_the_question() -> None:
    window = {"since": "2026-11-01 00:00:00.000000", "until": "2026-12-01 00:00:00.000000"}
    assert r.usage_query("model", NOV, DEC, {"tenant": "acme"}).params == {
        "grain": "day",
        "column": "model",
        **window,
        "where_keys": ["tenant"],
        "where_values": ["acme"],
    }
    # per day and user when users are involved: the other rollups have none
    assert r.usage_query("model", at(3, 10), at(4, 10)).params["grain"] == "day"
    assert r.usage_query("user", at(3, 10), at(4, 10)).params["grain"] == "user_day"
    assert r.usage_query("model", at(3, 10), at(4, 10), {"user": "u-1"}).params["grain"] == "user_day"
    assert r.usage_query("operation", NOV, DEC).name == "usage_by"
    assert r.usage_query("attr:job_id", NOV, DEC).name == "usage_by_raw"
    assert r.usage_query("user", NOV, DEC, {"attr:job_id": "J-1"}).name == "usage_by_raw"
    assert r.usage_query("status", NOV, DEC).name == "usage_by_raw"
    assert r.usage_query("user", NOV, DEC, raw=True).params == {
        "by": "user",
        **window,
        "where_keys": [],
        "where_values": [],
    }
    assert r.usage_query("user", NOV, DEC).params["column"] == "user_id"
    assert r.top_users_query(NOV, DEC, where={"user": "u-1"}).name == "top_users"
    assert r.series_query("day", NOV, DEC, by="model").params == {
        "grain": "day",
        "period": "day",
        "by": "model",
        "column": "model",
        **window,
        "where_keys": [],
        "where_values": [],
    }
    assert r.user_month_query("u-1", date(2026, 11, 17)).params == {
        "user": "u-1",
        "month": "2026-11-01",
        "where_keys": [],
        "where_values": [],
    }
    # per job: from the rollups per day and job, unless the user is asked for (they have none)
    from spendscope.store import breakdowns as b

    jobs = b.billing_query("attr:job_id", NOV, DEC, by2="endpoint", where={"tenant": "acme"})
    assert (jobs.name, jobs.params["column2"]) == ("billing_jobs", "endpoint")
    assert b.billing_query("attr:job_id", NOV, DEC).params["by2"] == ""
    assert b.billing_query("attr:job_id", NOV, DEC, by2="user").name == "billing_pairs"
    assert b.billing_query("attr:job_id", NOV, DEC, where={"user": "u-1"}).name == "billing_pairs"
    assert b.billing_query("attr:other", NOV, DEC, by2="endpoint").name == "billing_pairs"
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
            "a cost series filters on user, endpoint, tenant, model, service, operation only",
        ),
        (lambda: r.invoice_query("acme", date(2026, 11, 1), by="tenant"), "unknown --by 'tenant'"),
        (lambda: parse_time("yesterday-ish", now=NOV), "bad time 'yesterday-ish': use 30d"),
        (lambda: parse_month("2026-13"), "bad month '2026-13'"),
        (lambda: parse_margin("lots"), "bad margin 'lots'"),
    ],
)
def test_bad_inputs_are_clear_errors(call: Any, message: str) -> None:
    with pytest.raises(ReportError) as info:
        call()
    assert message in str(info.value)


def test_the_default_margin_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert default_margin() == 0
    monkeypatch.setenv("SPENDSCOPE_MARGIN_PERCENT", "12.5")
    assert default_margin() == D("12.5")
    monkeypatch.setenv("SPENDSCOPE_MARGIN_PERCENT", "x")
    with pytest.raises(ConfigurationError, match=r"margin_percent \(environment variable SPENDSCOPE_MARGIN"):
        default_margin()


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


def test_report_json_is_exact_and_round_trips() -> None:
    result = Report(["user", "calls", "cost_usd"], [["u-1", 3, D("0.001500000000000000")], ["u-2", 1, D(0)]])
    assert result.to_json() == {
        "columns": ["user", "calls", "cost_usd"],
        "rows": [["u-1", 3, "0.0015"], ["u-2", 1, "0"]],
    }
    assert Report.from_json(json.loads(json.dumps(result.to_json()))) == Report(
        ["user", "calls", "cost_usd"], [["u-1", 3, D("0.0015")], ["u-2", 1, D(0)]]
    )
