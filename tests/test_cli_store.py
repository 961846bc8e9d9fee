"""The store's CLI commands: formats, clear errors."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from spendscope.cli import app
from spendscope.store import Report, Store
from spendscope.store.formatting import table_cells
from tests.store_fixtures import llm_record

ROOT = Path(__file__).resolve().parents[1]
NOV = ["--since", "2026-11-01", "--until", "2026-12-01"]


def at(day: int, hour: int) -> datetime:
    return datetime(2026, 11, day, hour, tzinfo=UTC)


@pytest.fixture
def month(store: Store, monkeypatch: pytest.MonkeyPatch) -> Store:
    monkeypatch.delenv("SPENDSCOPE_STORE", raising=False)
    monkeypatch.delenv("SPENDSCOPE_MARGIN_PERCENT", raising=False)
    monkeypatch.delenv("SPENDSCOPE_PRICE_FILE", raising=False)
    store.insert_spans(
        [
            # gpt-4.1-mini: $0.40 per million input tokens; gpt-4.1: $2
            llm_record(at(3, 10), user="u-1", **mini(2500), cost="0.001", extra={"job_id": "J-1"}),
            llm_record(at(3, 11), user="u-1", **mini(5000), cost="0.002", extra={"job_id": "J-2"}),
            llm_record(
                at(4, 9),
                user="u-2",
                model="gpt-4.1-2025-04-14",
                input_tokens=5000,
                output_tokens=0,
                cost="0.01",
                extra={"job_id": "J-1"},
            ),
            llm_record(
                at(5, 9), user="u-2", model="acme-llm-1", input_tokens=1000, output_tokens=500, cost=None
            ),
        ],
    )
    return store


def mini(input_tokens: int) -> dict[str, object]:
    return {"model": "gpt-4.1-mini-2025-04-14", "input_tokens": input_tokens, "output_tokens": 0}


def cli(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def test_report_as_csv_json_and_table(month: Store, store_dsn: str) -> None:
    done = cli("report", "--by", "user", *NOV, "--store", store_dsn)  # not a terminal: csv
    assert done.exit_code == 0, done.output
    assert done.stdout == (
        "user,calls,input_tokens,output_tokens,cached_input_tokens,reasoning_tokens,cost_usd,priced_calls,"
        "unpriced_calls,unpriced_input_tokens,unpriced_output_tokens,usage_unavailable_calls,error_calls,"
        "cost_mismatch_calls\n"
        "u-2,2,6000,500,0,0,0.01,1,1,1000,500,0,0,0\n"  # the priced part, the unpriced call beside
        "u-1,2,7500,0,0,0,0.003,2,0,0,0,0,0,0\n"
    )
    as_json = json.loads(
        cli("report", "--by", "attr:job_id", *NOV, "--format", "json", "--store", store_dsn).stdout
    )
    assert as_json["columns"][:2] == ["attr:job_id", "calls"]
    assert [(row[0], row[1], row[6]) for row in as_json["rows"]] == [
        ("J-1", 2, "0.011"),
        ("J-2", 1, "0.002"),
        ("", 1, None),  # unknown, not $0
    ]
    table = cli(
        "report", "--by", "model", *NOV, "--where", "user=u-2", "--format", "table", "--store", store_dsn
    )
    assert table.exit_code == 0
    assert "Cost by model, 2026-11-01 00:00 to 2026-12-01 00:00 UTC" in table.stdout
    assert "$0.01000000" in table.stdout and "acme-llm-1" in table.stdout


def test_export_one_row_per_call_and_invoice_with_margin(month: Store, store_dsn: str) -> None:
    assert (
        cli(
            "margin", "--tenant", "acme", "--percent", "20", "--from", "2026-11-01", "--store", store_dsn
        ).exit_code
        == 0
    )
    exported = cli("export", *NOV, "--store", store_dsn)
    assert exported.exit_code == 0, exported.output
    rows = list(csv.DictReader(io.StringIO(exported.stdout)))
    assert [(r["user"], r["model"], r["cost_usd"], r["billed_usd"], r["attributes"]) for r in rows] == [
        ("u-1", "gpt-4.1-mini-2025-04-14", "0.001", "0.0012", '{"job_id":"J-1"}'),
        ("u-1", "gpt-4.1-mini-2025-04-14", "0.002", "0.0024", '{"job_id":"J-2"}'),
        ("u-2", "gpt-4.1-2025-04-14", "0.01", "0.012", '{"job_id":"J-1"}'),
        ("u-2", "acme-llm-1", "", "", "{}"),  # unknown, not 0
    ]
    invoice = cli(
        "invoice", "--tenant", "acme", "--month", "2026-11", "--by", "attr:job_id", "--store", store_dsn
    )
    assert invoice.exit_code == 0, invoice.output
    lines = invoice.stdout.splitlines()
    assert lines[lines.index("") + 1 :] == [
        "line,attr:job_id,calls,input_tokens,output_tokens,cost_usd,billed_usd,priced_calls,unpriced_calls,"
        "unpriced_input_tokens,unpriced_output_tokens,usage_unavailable_calls,error_calls",
        "item,J-1,2,7500,0,0.011,0.0132,2,0,0,0,0,0",
        "item,J-2,1,5000,0,0.002,0.0024,1,0,0,0,0,0",
        "item,,1,1000,500,,,0,1,1000,500,0,0",  # unknown: not billed at $0
        "unpriced,,1,1000,500,,,0,1,1000,500,0,0",
        "total,,4,13500,500,0.013,0.0156,3,1,1000,500,0,0",
    ]


def test_reprice_after_adding_a_missing_price(month: Store, store_dsn: str, tmp_path: Path) -> None:
    prices = tmp_path / "prices.toml"
    prices.write_text('[[models]]\nmatch = "acme-llm-1"\ninput_mtok = 2\noutput_mtok = 8\n')
    nov_5 = ["--since", "2026-11-05", "--until", "2026-11-06"]
    done = cli("reprice", *nov_5, "--price-file", str(prices), "--store", store_dsn)
    assert done.exit_code == 0, done.output
    assert (
        done.stdout
        == "1 calls examined: 1 re-costed (1 newly priced, 0 without a price now), 0 still without a price\n"
    )
    report = cli("report", "--by", "model", *NOV, "--where", "model=acme-llm-1", "--store", store_dsn)
    assert report.stdout.splitlines()[1] == "acme-llm-1,1,1000,500,0,0,0.006,1,0,0,0,0,0,0"


ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.mark.parametrize(
    "args",
    [
        ["report", "--by", "user", *NOV],
        ["report", "--by", "attr:job_id", *NOV],
        ["export", *NOV],
        ["invoice", "--tenant", "acme", "--month", "2026-11", "--by", "user"],
    ],
    ids=["report", "report-attr", "export", "invoice"],
)
def test_tables_fit_a_narrow_terminal_with_every_amount_whole(
    args: list[str], month: Store, store_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    as_json = json.loads(cli(*args, "--format", "json", "--store", store_dsn).stdout)
    result = Report.from_json(as_json)
    amounts = {  # each cost as a table shows it: with its unknown calls beside it
        cell
        for row in result.rows
        for column, cell in zip(result.columns, table_cells(result.columns, row), strict=True)
        if column.endswith("_usd")
    }
    assert len(amounts) >= 2, as_json
    monkeypatch.setenv("FORCE_COLOR", "1")  # a terminal, to rich
    monkeypatch.setenv("COLUMNS", "80")
    table = cli(*args, "--store", store_dsn)
    assert table.exit_code == 0, table.output
    text = ANSI.sub("", table.stdout)
    assert "┏" in text and "…" not in text
    assert max(len(line) for line in text.splitlines()) <= 80
    cells = {cell.strip() for line in text.splitlines() for cell in line.split("│")}
    assert amounts <= cells, amounts - cells


def test_migrate_is_idempotent(store_dsn: str) -> None:
    done = cli("migrate", "--store", store_dsn)
    assert done.exit_code == 0, done.output
    assert "schema already up to date" in done.stdout and "price data up to date" in done.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["report", "--since", "3x"], "error: bad --since '3x': use 30d, 12h, 90m, 2w, today, now"),
        (["report", "--by", "colour"], "error: unknown --by 'colour': choose user, endpoint, tenant"),
        (["report", "--where", "tenant"], "error: bad --where 'tenant': use KEY=VALUE"),
        (["report", "--since", "1d", "--until", "2d"], "error: empty time range"),
        (
            ["report", "--store", "ftp://x/y"],
            "error: SpendScope setting store (option --store='ftp://x/y'): bad store DSN 'ftp://x/y': use a "
            "directory, chdb:///path/to/dir, or http(s)://",
        ),
        (
            ["export", "--store", "chdb://memory"],
            "error: SpendScope setting store (option --store='chdb://memory'): bad store DSN 'chdb://memory': "
            "give the data directory",
        ),
        (["invoice", "--tenant", "acme", "--month", "2026-13"], "error: bad month '2026-13': use YYYY-MM"),
        (["margin", "--tenant", "acme", "--percent", "lots"], "error: bad --percent 'lots'"),
        (["reprice", "--price-file", "/nonexistent.toml"], "error: SpendScope setting price_file"),
    ],
)
def test_bad_inputs_are_one_line_and_exit_1(args: list[str], message: str, server_dsn: str) -> None:
    done = cli(*args)
    assert done.exit_code == 1
    assert done.stderr.startswith(message) and done.stderr.count("\n") == 1, done.stderr


def test_bad_margin_setting_is_one_line(
    month: Store, store_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPENDSCOPE_MARGIN_PERCENT", "ten")
    done = cli("export", *NOV, "--store", store_dsn)
    assert (done.exit_code, done.stderr) == (
        1,
        "error: reports setting margin_percent (environment variable SPENDSCOPE_MARGIN_PERCENT='ten'): "
        "must be a percentage such as 20 or 12.5\n",
    )


# --- commands that read a store never create one --------------------------------------------------------
READERS = [
    ["report"],
    ["export"],
    ["invoice", "--tenant", "acme", "--month", "2026-11"],
    ["reprice"],
    ["budgets", "--once", "--config", "budgets.yaml"],
    ["reconcile"],
]


@pytest.fixture
def empty_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SPENDSCOPE_STORE", raising=False)
    monkeypatch.setenv("OPENAI_ADMIN_KEY", "sk-admin-unused")
    (tmp_path / "budgets.yaml").write_text("")
    return tmp_path


@pytest.mark.parametrize("args", READERS, ids=lambda args: args[0])
def test_a_missing_store_is_named_and_not_created(args: list[str], empty_cwd: Path) -> None:
    default = cli(*args)
    assert (default.exit_code, default.stderr) == (
        1,
        f"error: no store at {empty_cwd / 'spendscope-data'}: the directory does not exist\n",
    )
    typo = cli(*args, "--store", "garbage!!")
    assert (typo.exit_code, typo.stderr) == (
        1,
        f"error: no store at {empty_cwd / 'garbage!!'}: the directory does not exist\n",
    )
    assert sorted(p.name for p in empty_cwd.iterdir()) == ["budgets.yaml"]


def test_a_missing_database_is_named_and_not_created(server_dsn: str, store: Store) -> None:
    name = f"absent_{store.database}"
    done = cli("report", "--store", f"{server_dsn}/{name}")
    assert (done.exit_code, done.stderr) == (
        1,
        f"error: no store at {server_dsn}/{name}: the database does not exist\n",
    )
    assert store.query("SELECT count() FROM system.databases WHERE name = {n:String}", {"n": name}).rows == [
        [0]
    ]


def test_a_store_without_the_schema_says_to_migrate(server_dsn: str, store: Store) -> None:
    bare = f"{server_dsn}/bare_{store.database}"
    store.command(f"CREATE DATABASE `bare_{store.database}`")
    done = cli("export", "--store", bare)
    assert done.exit_code == 1
    assert done.stderr.startswith(f"error: {bare} lacks SpendScope's schema")
    assert (
        "lacks SpendScope's schema (0001_baseline, 0002_reconciliation, 0003_access_tokens, 0004_job_rollup)"
        in done.stderr
        and "run `spendscope migrate`" in done.stderr
    )
    store.command(f"DROP DATABASE `bare_{store.database}` SYNC")
