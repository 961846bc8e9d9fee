"""Format the demo's ClickHouse reports for people."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from rich.console import Console

from spendscope.names import PROM_COST
from spendscope.store.money import PARTIAL_NOTE, Cost, any_partial
from spendscope.store.reports import json_value
from spendscope.store.table_layout import print_table

if TYPE_CHECKING:
    from spendscope.demo.runner import DemoResult

KEEP_EXAMPLE = "./spendscope-demo"  # in the hint that says how to keep the demo's store


def cost_text(row: dict[str, Any], column: str = "cost_usd") -> str:
    """A row's cost as every report shows it (spendscope/store/money.py): unknown, never $0."""
    return Cost.of(row, column).text(places=6)


_COLUMNS = (
    ("calls", "calls"),
    ("input_tokens", "input tok"),
    ("output_tokens", "output tok"),
    ("cached_input_tokens", "cached tok"),
)
_COUNTS = (("unpriced_calls", "unpriced"), ("usage_unavailable_calls", "no usage"), ("error_calls", "errors"))


def _print_table(console: Console, title: str, key: str, rows: list[dict[str, Any]]) -> None:
    headers = [key, *(h for _, h in _COLUMNS), "cost (USD)", *(h for _, h in _COUNTS)]
    cells = [
        [
            str(row[key]) or "(none)",
            *(f"{int(row[c]):,}" for c, _ in _COLUMNS),
            cost_text(row),
            *(str(int(row[c])) for c, _ in _COUNTS),
        ]
        for row in rows
    ]
    print_table(console, title, headers, cells, [False] + [True] * (len(headers) - 1))


def render(result: DemoResult, console: Console) -> None:
    outcome = result.outcome
    where = result.store_dsn or "a local store in a temporary directory, removed at the end"
    console.print(
        f"[bold]SpendScope demo[/]: {outcome.calls} OpenAI calls from two instrumented services, "
        f"through the real openai client, sent over OTLP to the collector at {result.collector_url} "
        f"and stored in ClickHouse ({where})."
    )
    print_table(
        console,
        "Cost by tenant, with margin (this month)",
        ["tenant", "calls", "provider cost (USD)", "margin", "billed (USD)"],
        [
            [
                row["tenant"],
                str(row["calls"]),
                cost_text(row),
                f"{row['margin_percent']}%",
                cost_text(row, "billed_usd"),
            ]
            for row in result.tenants
        ],
        [False, True, True, True, True],
    )
    for by in ("endpoint", "user", "model"):
        _print_table(console, f"Cost by {by}", by, result.reports[by].as_dicts())
    _print_table(
        console, "talentco: cost per job (attr:job_id)", "attr:job_id", result.reports["job"].as_dicts()
    )
    total = sum(int(r["calls"]) for r in result.reports["tenant"].as_dicts())
    unpriced = sum(int(r["unpriced_calls"]) for r in result.reports["tenant"].as_dicts())
    unavailable = sum(int(r["usage_unavailable_calls"]) for r in result.reports["tenant"].as_dicts())
    partial = any(any_partial(r.columns, r.rows) for r in result.reports.values())
    note = PARTIAL_NOTE + "\n" if partial else ""
    console.print(
        f"ClickHouse holds {result.llm_calls_stored} calls costing {result.total_cost.text(places=6)}; the "
        f"collector's Prometheus metric {PROM_COST} says ${result.metric_cost_usd:,.6f}.\n"
        f"{unpriced} call(s) on a model with no known price are [bold]unknown[/], not $0; {unavailable} "
        f"stream(s) ended before usage arrived; {len(outcome.errors)} call(s) failed "
        f"({', '.join(outcome.errors)}). {total} calls in all.\n"
        f"{note}"
        f"Where to look next:\n{_portal(result)}{_store_commands(result.store_dsn)}"
        "  spendscope collector   # then point your apps' OTEL_EXPORTER_OTLP_ENDPOINT at http://127.0.0.1:4318\n"
        "  README: 'Instrument your app' (two lines), and the tests (its second command)."
    )


def _portal(result: DemoResult) -> str:
    """Where the portal is: served now (--serve), or how to have it."""
    if result.serving:
        return f"  the portal, on this data: {result.collector_url}/   (Ctrl-C stops it)\n"
    return "  spendscope demo --serve   # the portal on the demo's data: http://127.0.0.1:4318/\n"


def _store_commands(store: str | None) -> str:
    """Commands that read the demo's store; a temporary one is gone, so first how to keep one."""
    keep = "" if store else f"  spendscope demo --store {KEEP_EXAMPLE}   # keeps its store, for:\n"
    store = store or KEEP_EXAMPLE
    return (
        f"{keep}"
        f"  spendscope report --store {store} --by user --since 1d\n"
        f"  spendscope invoice --store {store} --tenant talentco --month {_month()} --by attr:job_id\n"
    )


def _month() -> str:
    return datetime.now(UTC).strftime("%Y-%m")


def to_json(result: DemoResult) -> dict[str, Any]:
    return {
        "calls": result.outcome.calls,
        "stored_calls": result.llm_calls_stored,
        "errors": result.outcome.errors,
        "store": result.store_dsn,
        "portal": f"{result.collector_url}/" if result.serving else None,
        "total_cost_usd": json_value(result.total_cost.usd),
        "total_unknown_cost_calls": result.total_cost.unknown_calls,
        "metric_cost_usd": result.metric_cost_usd,
        "tenants": [{key: json_value(value) for key, value in row.items()} for row in result.tenants],
        "reports": {name: report.to_json() for name, report in result.reports.items()},
    }
