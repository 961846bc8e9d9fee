"""The `spendscope` command."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated

try:
    import typer
    from rich.console import Console
    from rich.table import Table
except ImportError as exc:  # the app-side install has no CLI dependencies
    raise SystemExit("the spendscope command needs the CLI extras: pip install 'spendscope[demo]'") from exc

from spendscope import names as n

app = typer.Typer(help="SpendScope: LLM cost observability for OpenAI.", no_args_is_help=True)


@app.callback()
def main() -> None:
    """SpendScope: what every OpenAI call costs, per user, feature and tenant."""


class Format(StrEnum):
    table = "table"
    json = "json"


_GROUPS = (
    ("tenant", n.TENANT),
    ("endpoint", n.ENDPOINT),
    ("user", n.USER_ID),
    ("model", n.RESPONSE_MODEL),
)


@app.command()
def demo(
    output: Annotated[
        Format, typer.Option("--format", help="table for people, json for scripts")
    ] = Format.table,
    seed: Annotated[int, typer.Option(help="seed of the simulated workload")] = 7,
) -> None:
    """Run a realistic workload through the real openai client against a local fake OpenAI server,
    with SpendScope instrumenting it, and show what every user, feature and tenant cost."""
    from spendscope.demo.report import cost_text, money, summarize
    from spendscope.demo.runner import run_demo

    result = run_demo(seed=seed)
    spans = result.spans
    total = summarize(spans, None)[0]
    if output is Format.json:
        payload = {
            "calls": result.outcome.calls,
            "spans": len(spans),
            "metric_cost_usd": result.metric_cost_usd,
            "total": total.as_dict(),
            **{name: [row.as_dict() for row in summarize(spans, attr)] for name, attr in _GROUPS},
        }
        typer.echo(json.dumps(payload, indent=2))
        return

    console = Console()
    if not console.is_terminal:  # piped: do not squeeze the tables into 80 columns
        console = Console(width=160)
    console.print(
        f"[bold]SpendScope demo[/]: {result.outcome.calls} OpenAI calls through the real openai client"
    )
    for title, attribute in _GROUPS:
        table = Table(title=f"Cost by {title}", title_justify="left")
        for column in (
            title,
            "calls",
            "input tok",
            "output tok",
            "cost (USD)",
            "unpriced",
            "no usage",
            "errors",
        ):
            table.add_column(column, justify="left" if column == title else "right")
        for row in summarize(spans, attribute):
            numbers = (row.calls, row.input_tokens, row.output_tokens)
            counts = (row.unpriced_calls, row.usage_unavailable, row.errors)
            table.add_row(row.key, *(f"{x:,}" for x in numbers), cost_text(row), *(str(x) for x in counts))
        console.print(table)
    console.print(
        f"Total {money(total.cost_usd)} over {total.calls} calls; spans and the "
        f"{n.PROM_COST} metric agree: {money(result.span_cost_usd)} vs ${result.metric_cost_usd:,.6f}.\n"
        f"{total.unpriced_calls} call(s) on a model with no known price are [bold]unknown[/], not $0 "
        f"({n.PROM_UNPRICED_TOKENS}); {total.usage_unavailable} stream(s) ended before usage arrived "
        f"({n.PROM_USAGE_UNAVAILABLE}); {total.errors} call(s) failed ({', '.join(result.outcome.errors)}).\n"
        "Next: instrument your app with two lines (README, 'Instrument your app'), "
        "and run the tests with the README's second command."
    )
