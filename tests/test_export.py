"""Exports of any size: ClickHouse renders the CSV (spendscope/store/csv_render.py) exactly as the
Python formatting renders a report, and streams it; JSON goes block by block; terminal tables show
their first rows."""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from typer.testing import CliRunner, Result

from spendscope.cli import app
from spendscope.cli._app import TABLE_ROWS
from spendscope.store import Store, formatting
from spendscope.store import reports as r
from tests.store_fixtures import llm_record

NOV, DEC = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)
WINDOW = ["--since", "2026-11-01", "--until", "2026-12-01"]
FLOATS = {"audio_seconds"}  # ClickHouse writes 0 where Python writes 0.0: the same number


def at(day: int, hour: int) -> datetime:
    return datetime(2026, 11, day, hour, tzinfo=UTC)


def nanos(when: datetime, ns: int) -> int:
    return int(when.timestamp()) * 1_000_000_000 + ns


@pytest.fixture
def awkward(store: Store, monkeypatch: pytest.MonkeyPatch) -> Store:
    """Calls whose values are hard to render: quotes, commas, newlines and non-ASCII text in strings
    and attributes, unknown and zero costs, 18 decimal places (the costs the clients sent), times with
    and without microseconds."""
    monkeypatch.delenv("SPENDSCOPE_STORE", raising=False)
    monkeypatch.delenv("SPENDSCOPE_MARGIN_PERCENT", raising=False)
    text = 'say "hi", then\nleave; é ü 中 / \\ \t'
    records = [
        replace(llm_record(at(3, 10), cost="0.123456789012345678"), timestamp_ns=nanos(at(3, 10), 999)),
        replace(llm_record(at(3, 11), cost="12.5"), timestamp_ns=nanos(at(3, 11), 1_000)),
        replace(llm_record(at(3, 12), cost="0"), timestamp_ns=nanos(at(3, 12), 123_456_789)),
        llm_record(
            at(4, 9),
            user=text,
            endpoint="a,b",
            model="acme-llm-1",
            cost=None,
            extra={"note": text, "job": "J-1", "e": ""},
        ),
        llm_record(at(4, 10), state="unavailable", extra={"z/y": "1", "a": "2"}),
        llm_record(at(5, 9), error="APITimeoutError", tenant='t "1"'),
    ]
    store.insert_spans(records)
    return store


def clickhouse_csv(store: Store, **window: datetime) -> list[list[str]]:
    out = io.BytesIO()
    r.write_calls_csv(store, out, **window)
    return list(csv.reader(io.StringIO(out.getvalue().decode())))


def python_csv(report: r.Report) -> list[list[str]]:
    return list(csv.reader(io.StringIO(formatting.to_csv(report))))


def assert_same_cells(mine: list[list[str]], theirs: list[list[str]]) -> None:
    assert mine[0] == theirs[0] and len(mine) == len(theirs)
    for row, expected in zip(mine[1:], theirs[1:], strict=True):
        for column, cell, wanted in zip(mine[0], row, expected, strict=True):
            if column in FLOATS:
                assert float(cell) == float(wanted), column
            else:
                assert cell == wanted, (column, cell, wanted)


def test_clickhouse_renders_every_value_as_the_python_report_does(awkward: Store) -> None:
    mine = clickhouse_csv(awkward, since=NOV, until=DEC)
    report = r.export_calls(awkward, since=NOV, until=DEC)
    assert len(mine) == 7  # the header and six calls, in time order
    assert_same_cells(mine, python_csv(report))
    rows = [dict(zip(mine[0], row, strict=True)) for row in mine[1:]]
    assert [row["time"] for row in rows[:3]] == [
        "2026-11-03T10:00:00+00:00",  # 999 ns: no microsecond
        "2026-11-03T11:00:00.000001+00:00",
        "2026-11-03T12:00:00.123456+00:00",  # nanoseconds cut, as the Python client cuts them
    ]
    assert [row["cost_usd"] for row in rows] == ["0.000027"] * 3 + ["", "", ""]  # the store's price
    assert [row["client_cost_usd"] for row in rows] == [
        "0.123456789012345678",
        "12.5",
        "0",
        "",
        "",
        "0.000027",
    ]
    assert [row["cost_source"] for row in rows] == ["store"] * 3 + ["", "", ""]
    text = 'say "hi", then\nleave; é ü 中 / \\ \t'
    assert json.loads(rows[3]["attributes"]) == {"note": text, "job": "J-1", "e": ""}
    assert rows[4]["attributes"] == '{"a":"2","z/y":"1"}'


def test_an_empty_window_is_the_header_alone(awkward: Store) -> None:
    empty = clickhouse_csv(awkward, since=DEC, until=datetime(2027, 1, 1, tzinfo=UTC))
    assert empty == [r.export_calls(awkward, since=NOV, until=DEC).columns]


def cli(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def test_cli_export_csv_and_json_are_the_report_in_full(awkward: Store, store_dsn: str) -> None:
    report = r.export_calls(awkward, since=NOV, until=DEC)
    piped = cli("export", *WINDOW, "--store", store_dsn)  # not a terminal: csv
    assert piped.exit_code == 0, piped.output
    assert_same_cells(list(csv.reader(io.StringIO(piped.stdout))), python_csv(report))
    as_json = cli("export", *WINDOW, "--format", "json", "--store", store_dsn)
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.stdout) == report.to_json()
    december = ["--since", "2026-12-01", "--until", "2026-12-02"]
    nothing = cli("export", *december, "--format", "json", "--store", store_dsn)
    assert json.loads(nothing.stdout) == {"columns": report.columns, "rows": []}


def test_terminal_tables_show_their_first_rows(store: Store, store_dsn: str) -> None:
    calls = TABLE_ROWS + 1
    store.insert_spans([llm_record(at(3, 10), user=f"u-{i:04}") for i in range(calls)])
    report = cli("report", "--by", "user", *WINDOW, "--format", "table", "--store", store_dsn)
    assert report.exit_code == 0, report.output
    assert "u-0000" in report.stdout and "u-0999" in report.stdout and "u-1000" not in report.stdout
    note = f"Showed the first {TABLE_ROWS:,} rows of {calls:,}: --format csv or json has them all."
    assert note in report.stdout
    export = cli("export", *WINDOW, "--format", "table", "--store", store_dsn)
    assert export.exit_code == 0, export.output
    assert "UTC (27 more columns in csv and json)" in export.stdout and "billed_usd" in export.stdout
    assert len(re.findall(r"u-\d{4}", export.stdout)) == TABLE_ROWS and "trace_id" not in export.stdout
    assert f"Showed the first {TABLE_ROWS:,} rows: --format csv or json has them all." in export.stdout
    few = cli("export", *WINDOW, "--where", "user=u-0001", "--format", "table", "--store", store_dsn)
    assert few.exit_code == 0 and few.stdout.startswith("Calls, 2026-11-01") and "Showed" not in few.stdout
