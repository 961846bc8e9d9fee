"""Unknown is never $0: a group whose calls all have an unknown cost has no dollar figure, and a group
that mixes them shows its priced part with the count and tokens of the others, through every surface
a reader uses: the reports (from the rollups and from llm_usage), the CLI's table, CSV and JSON, and the
collector's reports API (see spendscope/store/money.py)."""

from __future__ import annotations

import csv
import http.client
import io
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from spendscope.cli import app
from spendscope.collector import Collector, CollectorConfig
from spendscope.store import Store, reports
from spendscope.store.money import Cost
from spendscope.store.rollups import build_rollups
from tests.store_fixtures import fresh_store, llm_record

D = Decimal
NOV, DEC = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)
WINDOW = ["--since", "2026-11-01", "--until", "2026-12-01"]
MINI = "gpt-4.1-mini-2025-04-14"  # $0.40 per million input tokens
UNPRICED = "acme-llm-1"  # no price anywhere


def at(day: int, hour: int = 10) -> datetime:
    return datetime(2026, 11, day, hour, tzinfo=UTC)


def add_calls(store: Store) -> Store:
    """u-1 mixes a priced and an unpriced call; u-2 has only an unpriced one; u-3 only a call answered
    without usage; u-4 only a failed call (it costs nothing: known, $0)."""
    store.insert_spans(
        [
            llm_record(at(3), user="u-1", model=MINI, input_tokens=2500, output_tokens=0, cost="0.001"),
            llm_record(
                at(3, 11), user="u-1", model=UNPRICED, input_tokens=1000, output_tokens=500, cost=None
            ),
            llm_record(at(4), user="u-2", model=UNPRICED, input_tokens=200, output_tokens=100, cost=None),
            llm_record(at(5), user="u-3", model=MINI, cost=None, state="unavailable"),
            llm_record(
                at(6), user="u-4", model=MINI, cost=None, state="unavailable", error="APITimeoutError"
            ),
        ]
    )
    return store


@pytest.fixture(scope="module")
def calls(server_dsn: str, _store_admin: Store) -> Iterator[Store]:
    with fresh_store(server_dsn, _store_admin) as store:
        yield add_calls(store)


@pytest.fixture(scope="module")
def built(server_dsn: str, _store_admin: Store) -> Iterator[Store]:
    with fresh_store(server_dsn, _store_admin) as store:
        add_calls(store)
        build_rollups(store, lag=timedelta(0))
        yield store


COSTS = ["cost_usd", "priced_calls", "unpriced_calls", "unpriced_input_tokens", "unpriced_output_tokens"]
BY_USER = {  # user -> cost_usd, priced, unpriced calls, unpriced input and output tokens, no-usage calls
    "u-1": (D("0.001"), 1, 1, 1000, 500, 0),  # partial: the priced part, with the unpriced call beside
    "u-2": (None, 0, 1, 200, 100, 0),  # wholly unknown
    "u-3": (None, 0, 0, 0, 0, 1),  # wholly unknown: answered without usage
    "u-4": (D(0), 0, 0, 0, 0, 0),  # a failed call costs nothing
}


def costs(result: reports.Report) -> dict[str, tuple[Any, ...]]:
    return {
        row["user" if "user" in row else result.columns[0]]: (
            *(row[c] for c in COSTS),
            row["usage_unavailable_calls"],
        )
        for row in result.as_dicts()
    }


# --- the store layer: one figure, from the rollups or from llm_usage --------------------------------------
@pytest.mark.parametrize("from_rollups", [False, True])
def test_every_report_query_says_unknown_and_partial(calls: Store, built: Store, from_rollups: bool) -> None:
    store = built if from_rollups else calls
    assert costs(reports.report(store, by="user", since=NOV, until=DEC)) == BY_USER
    raw = reports.run(store, reports.usage_query("user", NOV, DEC, raw=True))
    assert costs(raw) == BY_USER
    assert costs(reports.top_users(store, since=NOV, until=DEC, limit=10)) == BY_USER
    by_model = {
        row["model"]: Cost.of(row)
        for row in reports.report(store, by="model", since=NOV, until=DEC).as_dicts()
    }
    assert by_model == {
        MINI: Cost(D("0.001"), priced_calls=1, usage_unavailable_calls=1),
        UNPRICED: Cost(None, unpriced_calls=2, unpriced_input_tokens=1200, unpriced_output_tokens=600),
    }
    month = reports.user_month(store, user="u-2", month=date(2026, 11, 1)).as_dicts()
    assert [(r["model"], Cost.of(r)) for r in month] == [(UNPRICED, Cost(None, 0, 1, 200, 100))]
    daily = {r["day"]: Cost.of(r) for r in reports.daily_series(store, since=NOV, until=DEC).as_dicts()}
    assert daily == {
        date(2026, 11, 3): Cost(D("0.001"), 1, 1, 1000, 500),
        date(2026, 11, 4): Cost(None, 0, 1, 200, 100),
        date(2026, 11, 5): Cost(None, 0, 0, 0, 0, 1),
        date(2026, 11, 6): Cost(D(0)),
    }
    (month_row,) = reports.monthly_series(store, since=NOV, until=DEC).as_dicts()
    assert Cost.of(month_row) == Cost(D("0.001"), 1, 2, 1200, 600, 1)


def test_a_total_is_unknown_only_when_every_part_is() -> None:
    partial, unknown = Cost(D("0.5"), 2, 1, 10, 5), Cost(None, 0, 1, 7, 3)
    assert partial + unknown == Cost(D("0.5"), 2, 2, 17, 8)
    assert unknown + unknown == Cost(None, 0, 2, 14, 6)
    assert Cost(D(0)) + unknown == unknown  # errors only ($0) and an unknown: unknown, as in SQL
    assert Cost.zero() + Cost(D("0.25"), 1) == Cost(D("0.25"), 1)
    assert [c.text() for c in (Cost(D("1.5"), 3), partial, partial + unknown, unknown)] == [
        "$1.50000000",
        "$0.50000000 + 1 unknown",
        "$0.50000000 + 2 unknown",
        "unknown",
    ]
    assert not partial.complete and Cost(D(0)).complete
    with pytest.raises(ValueError, match="unknown exactly when"):
        Cost(D(0), 0, 1)  # $0 for a group whose calls are all unpriced: the bug this type forbids
    with pytest.raises(ValueError, match="unknown exactly when"):
        Cost(None, 1, 1)


def test_a_reports_total_adds_costs_as_costs(calls: Store) -> None:
    result = reports.report(calls, by="user", since=NOV, until=DEC)
    total = result.total()
    assert (total["cost_usd"], total["calls"], total["unpriced_calls"], total["usage_unavailable_calls"]) == (
        D("0.001"),
        5,
        2,
        1,
    )
    only_unknown = reports.report(calls, by="user", since=NOV, until=DEC, where={"model": UNPRICED})
    assert only_unknown.total()["cost_usd"] is None and only_unknown.total()["unpriced_input_tokens"] == 1200


# --- the CLI: CSV, JSON and the table ----------------------------------------------------------------------
def cli(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


@pytest.fixture
def store_with_calls(store: Store, monkeypatch: pytest.MonkeyPatch) -> Store:
    monkeypatch.delenv("SPENDSCOPE_STORE", raising=False)
    return add_calls(store)


HEADER = (
    "user,calls,input_tokens,output_tokens,cached_input_tokens,reasoning_tokens,cost_usd,priced_calls,"
    "unpriced_calls,unpriced_input_tokens,unpriced_output_tokens,usage_unavailable_calls,error_calls,"
    "cost_mismatch_calls"
)
CSV_ROWS = [
    "u-1,2,3500,500,0,0,0.001,1,1,1000,500,0,0,0",  # partial: the priced part and the unpriced beside
    "u-4,1,0,0,0,0,0,0,0,0,0,0,1,0",  # a failed call: $0
    "u-2,1,200,100,0,0,,0,1,200,100,0,0,0",  # unknown: an empty cell, never 0
    "u-3,1,0,0,0,0,,0,0,0,0,1,0,0",
]


def test_cli_report_csv_json_and_table(store_with_calls: Store, store_dsn: str) -> None:
    as_csv = cli("report", "--by", "user", *WINDOW, "--store", store_dsn)
    assert as_csv.exit_code == 0, as_csv.output
    assert as_csv.stdout.splitlines() == [HEADER, *CSV_ROWS]
    as_json = json.loads(
        cli("report", "--by", "user", *WINDOW, "--format", "json", "--store", store_dsn).stdout
    )
    rows = {row[0]: dict(zip(as_json["columns"], row, strict=True)) for row in as_json["rows"]}
    assert {u: [r[c] for c in COSTS] for u, r in rows.items()} == {
        "u-1": ["0.001", 1, 1, 1000, 500],
        "u-4": ["0", 0, 0, 0, 0],
        "u-2": [None, 0, 1, 200, 100],  # null, not "0"
        "u-3": [None, 0, 0, 0, 0],
    }
    table = cli("report", "--by", "user", *WINDOW, "--format", "table", "--store", store_dsn).stdout
    lines = {line.split("│")[1].strip(): line for line in table.splitlines() if line.startswith("│ u-")}
    assert "$0.00100000 + 1 unknown" in lines["u-1"]
    assert "$0.00000000" in lines["u-4"]
    assert "unknown" in lines["u-2"] and "$" not in lines["u-2"]
    assert "unknown" in lines["u-3"] and "$" not in lines["u-3"]


# --- the collector's reports API --------------------------------------------------------------------------
@pytest.fixture
def running(tmp_path: Path, store_dsn: str, store_with_calls: Store) -> Iterator[Collector]:
    config = CollectorConfig(listen=("127.0.0.1", 0), store=store_dsn, spool=tmp_path / "spool")
    with Collector(config, store=store_with_calls) as collector:
        yield collector


def get(collector: Collector, path: str) -> Any:
    host, port = collector.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read().decode()
        assert response.status == 200, body
        return json.loads(body) if response.getheader("content-type") == "application/json" else body
    finally:
        connection.close()


def json_rows(answer: dict[str, Any], key: str) -> dict[str, dict[str, Any]]:
    return {r[key]: r for r in (dict(zip(answer["columns"], row, strict=True)) for row in answer["rows"])}


def test_the_collectors_api_answers_null_and_the_counts(running: Collector) -> None:
    window = "since=2026-11-01T00:00:00Z&until=2026-12-01T00:00:00Z"
    summary = get(running, f"/api/usage/summary?by=user&{window}")
    users = json_rows(summary, "user")
    assert {
        u: (r["cost_usd"], r["unpriced_calls"], r["unpriced_input_tokens"]) for u, r in users.items()
    } == {
        "u-1": ("0.001", 1, 1000),
        "u-4": ("0", 0, 0),
        "u-2": (None, 1, 200),
        "u-3": (None, 0, 0),
    }
    # the total is the priced part with every unknown call beside it, not a complete-looking sum
    assert {k: summary["total"][k] for k in ("cost_usd", *COSTS[1:], "usage_unavailable_calls")} == {
        "cost_usd": "0.001",
        "priced_calls": 1,
        "unpriced_calls": 2,
        "unpriced_input_tokens": 1200,
        "unpriced_output_tokens": 600,
        "usage_unavailable_calls": 1,
    }
    unknown_only = get(running, f"/api/usage/summary?by=model&{window}&where=model={UNPRICED}")
    assert unknown_only["total"]["cost_usd"] is None and unknown_only["total"]["unpriced_calls"] == 2
    by_model = json_rows(get(running, f"/api/usage/report?by=model&{window}&format=json"), "model")
    assert by_model[UNPRICED]["cost_usd"] is None and by_model[MINI]["cost_usd"] == "0.001"
    as_csv = list(csv.DictReader(io.StringIO(get(running, f"/api/usage/report?by=user&{window}&format=csv"))))
    assert [(r["user"], r["cost_usd"], r["unpriced_calls"]) for r in as_csv] == [
        ("u-1", "0.001", "1"),
        ("u-4", "0", "0"),
        ("u-2", "", "1"),
        ("u-3", "", "0"),
    ]
    top = json_rows(get(running, f"/api/usage/users?{window}"), "user")
    assert (top["u-2"]["cost_usd"], top["u-3"]["usage_unavailable_calls"]) == (None, 1)
    endpoints = get(running, f"/api/usage/endpoints?{window}&where=model={UNPRICED}")
    assert [(r[0], r[6]) for r in endpoints["rows"]] == [("chat", None)]
    daily = json_rows(get(running, f"/api/usage/daily?{window}"), "day")
    assert (daily["2026-11-04"]["cost_usd"], daily["2026-11-03"]["cost_usd"]) == (None, "0.001")
    month = json_rows(get(running, "/api/usage/users/u-2?month=2026-11"), "model")
    assert (month[UNPRICED]["cost_usd"], month[UNPRICED]["unpriced_output_tokens"]) == (None, 100)


# --- the demo's tables --------------------------------------------------------------------------------------
def test_the_demos_tables_show_unknown_and_partial_costs_billed_too(store: Store) -> None:
    from rich.console import Console

    from spendscope.demo.report import render, to_json
    from spendscope.demo.runner import DemoResult, _tenants_with_margin
    from spendscope.demo.workload import Outcome
    from spendscope.store.billing import set_margin

    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    store.insert_spans(
        [
            llm_record(now, tenant="acme", model=MINI, input_tokens=2500, output_tokens=0, cost="0.001"),
            llm_record(now, tenant="acme", model=UNPRICED, input_tokens=10, output_tokens=5, cost=None),
            llm_record(now, tenant="school", user="s-1", model=UNPRICED, cost=None),
        ]
    )
    set_margin(store, "acme", D(25), effective_from=now.date().replace(day=1))
    since, until = now - timedelta(days=1), now + timedelta(hours=1)
    by = {
        k: reports.report(store, by=k, since=since, until=until)
        for k in ("tenant", "endpoint", "user", "model")
    }
    by["job"] = reports.report(store, by="attr:job_id", since=since, until=until)
    tenants = _tenants_with_margin(store, by["tenant"], now)
    total = sum((Cost.of(r) for r in by["tenant"].as_dicts()), Cost.zero())
    result = DemoResult(Outcome(calls=3), None, "http://127.0.0.1:4318", by, tenants, total, 0.001, 3)
    console = Console(record=True, width=100)
    render(result, console)
    text = console.export_text()
    rows = {line.split("│")[1].strip(): line for line in text.splitlines() if line.startswith("│")}
    # provider cost, then billed (+25%): the priced part and the unknown call, in both columns
    assert "$0.001000 + 1 unknown" in rows["acme"] and "$0.001250 + 1 unknown" in rows["acme"]
    assert rows["school"].count("unknown") == 2 and "$" not in rows["school"]
    assert "calls costing $0.001000 + 2 unknown" in text and "$X + N unknown" in text
    as_json = {t["tenant"]: t for t in to_json(result)["tenants"]}
    assert (as_json["school"]["cost_usd"], as_json["school"]["billed_usd"]) == (None, None)
    assert (as_json["acme"]["billed_usd"], as_json["acme"]["unpriced_calls"]) == ("0.00125", 1)
