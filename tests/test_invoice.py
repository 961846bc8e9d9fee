"""`spendscope invoice`: a document with its total, window, margin, price data and the usage of unknown
cost on a line of its own, in CSV, JSON and a table alike; a month without usage says so, a tenant never
seen is an error, and a margin the billing cannot mean is refused."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from typer.testing import CliRunner, Result

from spendscope.cli import app
from spendscope.store import ReportError, Store
from spendscope.store.billing import parse_margin, set_margin
from spendscope.store.invoice import Margin, invoice, margins_in_force
from spendscope.store.money import Cost
from spendscope.store.rollups import build_rollups
from tests.helpers import PRICE_VERSION
from tests.store_fixtures import llm_record

D = Decimal
MINI = "gpt-4.1-mini-2025-04-14"  # $0.40 per million input tokens
FULL = "gpt-4.1-2025-04-14"  # $2 per million input tokens


def at(day: int, hour: int = 10) -> datetime:
    return datetime(2026, 11, day, hour, tzinfo=UTC)


@pytest.fixture
def acme(store: Store, monkeypatch: pytest.MonkeyPatch) -> Store:
    """acme's November: priced calls, an unpriced one, one answered without usage and a failed one;
    a margin of 20% from Nov 1, 25% from Nov 10."""
    monkeypatch.delenv("SPENDSCOPE_STORE", raising=False)
    monkeypatch.delenv("SPENDSCOPE_MARGIN_PERCENT", raising=False)
    store.insert_spans(
        [
            llm_record(at(3), user="u-1", model=MINI, input_tokens=2500, output_tokens=0, cost="0.001"),
            llm_record(at(20), user="u-1", model=MINI, input_tokens=5000, output_tokens=0, cost="0.002"),
            llm_record(at(4), user="u-2", model=FULL, input_tokens=5000, output_tokens=0, cost="0.01"),
            llm_record(
                at(5), user="u-2", model="acme-llm-1", input_tokens=1000, output_tokens=500, cost=None
            ),
            llm_record(at(6), user="u-3", model=MINI, cost=None, state="unavailable"),
            llm_record(
                at(7), user="u-3", model=MINI, cost=None, state="unavailable", error="APITimeoutError"
            ),
            llm_record(at(8), user="u-9", tenant="globex", model=MINI, cost="0.001", input_tokens=2500),
        ]
    )
    set_margin(store, "acme", D(20), effective_from=date(2026, 11, 1))
    set_margin(store, "acme", D(25), effective_from=date(2026, 11, 10))
    return store


def cli(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def sections(text: str) -> tuple[dict[str, str], list[dict[str, str]]]:
    """An invoice CSV: its facts (name, value) and its lines."""
    facts, _, lines = text.partition("\n\n")
    return dict(csv.reader(io.StringIO(facts))), list(csv.DictReader(io.StringIO(lines)))


# mini: 0.001 at +20% and 0.002 at +25%; gpt-4.1: 0.01 at +20%
BILLED = D("0.0012") + D("0.0025") + D("0.012")


def test_an_invoice_states_its_total_window_margin_price_data_and_unknown_usage(
    acme: Store, store_dsn: str
) -> None:
    done = cli("invoice", "--tenant", "acme", "--month", "2026-11", "--store", store_dsn)  # piped: csv
    assert done.exit_code == 0, done.output
    facts, lines = sections(done.stdout)
    assert facts == {
        "invoice": "acme",
        "month": "2026-11",
        "since": "2026-11-01T00:00:00+00:00",
        "until": "2026-12-01T00:00:00+00:00",
        "by": "model",
        "margin": "20% from 2026-11-01; 25% from 2026-11-10",
        "price_data": PRICE_VERSION,
        "client_cost_calls": "0",
        "complete": "false",
        "unknown_cost_calls": "2",
    }
    shown = [(x["line"], x["model"], x["calls"], x["cost_usd"], x["billed_usd"]) for x in lines]
    assert shown == [
        ("item", FULL, "1", "0.01", "0.012"),
        ("item", MINI, "4", "0.003", "0.0037"),  # and a call without usage, and a failed one
        ("item", "acme-llm-1", "1", "", ""),  # unknown: not billed at $0
        ("unpriced", "", "2", "", ""),  # the usage of unknown cost, on its own line
        ("total", "", "6", "0.013", str(BILLED)),
    ]
    unpriced = lines[3]
    assert (unpriced["unpriced_calls"], unpriced["usage_unavailable_calls"]) == ("1", "1")
    assert (unpriced["input_tokens"], unpriced["output_tokens"]) == ("1000", "500")
    assert (lines[4]["priced_calls"], lines[4]["error_calls"]) == ("3", "1")

    as_json = json.loads(
        cli(
            "invoice", "--tenant", "acme", "--month", "2026-11", "--format", "json", "--store", store_dsn
        ).stdout
    )
    assert {k: as_json[k] for k in ("tenant", "month", "since", "until", "complete", "price_versions")} == {
        "tenant": "acme",
        "month": "2026-11",
        "since": "2026-11-01T00:00:00+00:00",
        "until": "2026-12-01T00:00:00+00:00",
        "complete": False,
        "price_versions": [PRICE_VERSION],
    }
    assert as_json["margins"] == [
        {"from": "2026-11-01", "percent": "20", "default": False},
        {"from": "2026-11-10", "percent": "25", "default": False},
    ]
    total = as_json["total"]
    assert (total["cost_usd"], total["billed_usd"], total["calls"]) == ("0.013", str(BILLED), 6)
    assert {
        k: as_json["unpriced"][k] for k in ("calls", "cost_usd", "billed_usd", "unpriced_input_tokens")
    } == {
        "calls": 2,
        "cost_usd": None,
        "billed_usd": None,
        "unpriced_input_tokens": 1000,
    }
    lines_json = [dict(zip(as_json["columns"], row, strict=True)) for row in as_json["rows"]]
    assert [(x["model"], x["cost_usd"]) for x in lines_json] == [
        (FULL, "0.01"),
        (MINI, "0.003"),
        ("acme-llm-1", None),
    ]
    assert as_json["notes"][0].startswith("INCOMPLETE: 2 call(s) have an unknown cost and are not billed")

    table = cli(
        "invoice", "--tenant", "acme", "--month", "2026-11", "--format", "table", "--store", store_dsn
    )
    text = table.stdout
    assert "Invoice acme, 2026-11: 2026-11-01 00:00 to 2026-12-01 00:00 UTC" in text
    assert (
        "Margin: 20% from 2026-11-01; 25% from 2026-11-10" in text and f"Price data: {PRICE_VERSION}" in text
    )
    rows = {line.split("│")[1].strip(): line for line in text.splitlines() if line.startswith("│")}
    assert rows["acme-llm-1"].count("unknown") == 2 and "$" not in rows["acme-llm-1"]
    assert (
        rows["unknown cost, not billed"].count("unknown") == 3 and "$" not in rows["unknown cost, not billed"]
    )
    assert "$0.01300000 + 2 unknown" in rows["total"] and f"${BILLED:.8f} + 2 unknown" in rows["total"]
    assert (
        "INCOMPLETE: 2 call(s) have an unknown cost and are not billed (1 without a price: 1,000 input"
        in text
    )


def test_the_lines_from_the_rollups_and_from_llm_usage_agree(acme: Store) -> None:
    by_model = invoice(acme, tenant="acme", month=date(2026, 11, 1))
    by_operation = invoice(acme, tenant="acme", month=date(2026, 11, 1), by="operation")  # llm_usage
    build_rollups(acme, lag=timedelta(0))
    built = invoice(acme, tenant="acme", month=date(2026, 11, 1))
    assert by_model.total() == built.total() == by_operation.total()
    assert by_model.cost == Cost(D("0.013"), 3, 1, 1000, 500, 1)
    assert by_model.billed == Cost(BILLED, 3, 1, 1000, 500, 1)
    by_user = {
        x["user"]: x
        for x in invoice(acme, tenant="acme", month=date(2026, 11, 1), by="user").lines.as_dicts()
    }
    assert Cost.of(by_user["u-2"]) == Cost(D("0.01"), 1, 1, 1000, 500)  # partial: the priced part
    assert Cost.of(by_user["u-3"]) == Cost(None, 0, 0, 0, 0, 1)  # answered without usage: unknown
    assert Cost.of(by_user["u-3"], "billed_usd").usd is None


def test_a_month_without_usage_says_so_and_a_tenant_never_seen_is_an_error(
    acme: Store, store_dsn: str
) -> None:
    empty = cli(
        "invoice", "--tenant", "acme", "--month", "2026-10", "--format", "table", "--store", store_dsn
    )
    assert empty.exit_code == 0, empty.output
    assert "No usage for acme in 2026-10: nothing to bill." in empty.stdout
    assert "Margin: 0% from 2026-10-01 (default)" in empty.stdout
    facts, lines = sections(
        cli("invoice", "--tenant", "acme", "--month", "2026-10", "--store", store_dsn).stdout
    )
    assert (facts["complete"], facts["price_data"]) == ("true", "")
    assert [(x["line"], x["calls"], x["cost_usd"], x["billed_usd"]) for x in lines] == [
        ("total", "0", "0", "0")
    ]
    never = cli("invoice", "--tenant", "acmee", "--month", "2026-11", "--store", store_dsn)
    assert (never.exit_code, never.stderr) == (
        1,
        "error: no tenant 'acmee' in the store: no call at any time, no margin (a typo?)\n",
    )
    with pytest.raises(ReportError, match="no tenant 'nobody'"):
        invoice(acme, tenant="nobody", month=date(2026, 11, 1))
    # a tenant known by its margin alone is a tenant without usage
    set_margin(acme, "newco", D(5), effective_from=date(2026, 12, 1))
    assert invoice(acme, tenant="newco", month=date(2026, 11, 1)).notes() == [
        "No usage for newco in 2026-11: nothing to bill."
    ]


def test_margins_in_force_over_a_month() -> None:
    nov, dec = date(2026, 11, 1), date(2026, 12, 1)
    rows = [(date(2026, 10, 1), D(10)), (date(2026, 11, 15), D(12)), (date(2026, 12, 1), D(15))]
    assert margins_in_force(rows, nov, dec, D(5)) == (
        Margin(nov, D(10), False),
        Margin(date(2026, 11, 15), D(12), False),
    )
    assert margins_in_force([], nov, dec, D(5)) == (Margin(nov, D(5), True),)
    assert (
        margins_in_force([(date(2026, 11, 3), D(7))], nov, dec, D(0))[0].text()
        == "0% from 2026-11-01 (default)"
    )


@pytest.mark.parametrize("percent", ["-50", "-0.0001", "NaN", "Infinity", "100000", "12.34567", "twenty", ""])
def test_a_margin_the_billing_cannot_mean_is_refused(percent: str, store_dsn: str, store: Store) -> None:
    with pytest.raises(ReportError, match=r"bad margin"):
        parse_margin(percent)
    done = cli("margin", "--tenant", "acme", "--percent", percent, "--store", store_dsn)
    assert done.exit_code == 1 and done.stderr.startswith("error: bad --percent"), done.output
    assert store.query("SELECT count() FROM tenant_margins").rows == [[0]]


def test_the_default_margin_is_checked_alike(
    acme: Store, store_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPENDSCOPE_MARGIN_PERCENT", "-10")
    done = cli("invoice", "--tenant", "globex", "--month", "2026-11", "--store", store_dsn)
    assert done.exit_code == 1
    assert done.stderr.startswith(
        "error: reports setting margin_percent (environment variable SPENDSCOPE_MARGIN_PERCENT='-10'): "
        "must be a margin over provider cost"
    )
    assert (
        parse_margin("0") == 0 and parse_margin("-0") == 0 and parse_margin("99999.9999") == D("99999.9999")
    )
