"""The store's commands: migrate, rollups build, report, export, reprice, invoice, margin."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from spendscope.cli._app import (
    TABLE_ROWS,
    FormatOption,
    OutputFormat,
    SinceOption,
    StoreOption,
    UntilOption,
    WhereOption,
    app,
    chosen_format,
    domain_errors,
    emit_report,
    open_store_for,
)
from spendscope.cli._options import setting_option
from spendscope.settings.app import PriceSettings

if TYPE_CHECKING:
    from spendscope.store import Report
    from spendscope.store.invoice import Invoice


@app.command()
def migrate(
    store: StoreOption = None,
    upgrade: Annotated[
        bool,
        typer.Option(
            "--upgrade",
            help="move a store made by the pre-release migrations onto the baseline schema (the old "
            "tables are kept in <database>_pre_baseline)",
        ),
    ] = False,
) -> None:
    """Create or update the ClickHouse schema, the store settings and the price data (idempotent; the
    collector also does it on start)."""
    with domain_errors():
        opened = open_store_for(store, "migrate", create=True)
        with opened:
            if upgrade:
                from spendscope.store.upgrade import upgrade as run_upgrade

                moved = run_upgrade(opened)
                typer.echo(
                    f"{opened.target.describe()}: upgraded to the baseline schema; {moved.spans} spans "
                    f"copied, {moved.calls} calls (the old store held {moved.old_calls}); the old tables "
                    f"are in database {moved.old_database}"
                )
                return
            applied = opened.migrate(prices=False)
            from spendscope.store.setup import load_prices

            prices = load_prices(opened)
        where = opened.target.describe()
    done = f"applied {', '.join(applied)}" if applied else "schema already up to date"
    loaded = f"{prices} model price rows loaded" if prices else "price data up to date"
    typer.echo(f"{where}: {done}; {loaded}")


rollups_app = typer.Typer(help="The rollups the reports read (built from llm_usage).", no_args_is_help=True)
app.add_typer(rollups_app, name="rollups")


@rollups_app.command("build")
def rollups_build(store: StoreOption = None) -> None:
    """Run the rollup builder once (the collector runs it every SPENDSCOPE_COLLECTOR_ROLLUP_INTERVAL
    seconds): price the model names seen for the first time, build the stale hourly and daily buckets."""
    from spendscope.store.rollups import build_rollups

    with domain_errors(), open_store_for(store, "rollups build") as opened:
        result = build_rollups(opened)
    built = ", ".join(f"{count} {grain} buckets" for grain, count in result.buckets.items())
    typer.echo(f"built {built} ({result.rows} rows)")


def _price_file(path: Path | None) -> Any:
    from spendscope.pricing import PriceFile

    chosen = PriceSettings.resolve(given="option", price_file=path).price_file
    return PriceFile.load(chosen) if chosen is not None else None


@app.command()
def report(
    by: Annotated[
        str, typer.Option(help="user, endpoint, model, tenant, service, operation, ... or attr:KEY")
    ] = "user",
    since: SinceOption = "30d",
    until: UntilOption = None,
    where: WhereOption = None,
    output: FormatOption = None,
    store: StoreOption = None,
) -> None:
    """Calls, tokens and cost by one dimension."""
    from spendscope.store.reports import check_dimension, parse_where
    from spendscope.store.reports import report as run_report
    from spendscope.store.times import parse_range

    with domain_errors():
        start, end = parse_range(since, until)
        dimension, filters = check_dimension(by), parse_where(where or [])
        with open_store_for(store, "report") as opened:
            result = run_report(opened, by=dimension, since=start, until=end, where=filters)
    emit_report(result, output, f"Cost by {dimension}, {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC")


PREVIEW_COLUMNS = (
    "time",
    "tenant",
    "user",
    "endpoint",
    "model",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "billed_usd",
    "status",
)


@app.command()
def export(
    since: SinceOption = "30d",
    until: UntilOption = None,
    where: WhereOption = None,
    output: FormatOption = None,
    store: StoreOption = None,
) -> None:
    """One row per call: tokens, provider cost and billed cost (csv when piped). Any number of calls:
    csv and json are written as ClickHouse sends them; a table shows the first ones."""
    from spendscope.store import reports as r
    from spendscope.store.billing import default_margin
    from spendscope.store.formatting import write_json
    from spendscope.store.times import parse_range

    chosen = chosen_format(output)
    with domain_errors():
        start, end = parse_range(since, until)
        filters = r.parse_where(where or [])
        margin = default_margin()
        with open_store_for(store, "export") as opened:
            if chosen is OutputFormat.csv:
                sys.stdout.flush()
                out = sys.stdout.buffer
                r.write_calls_csv(opened, out, since=start, until=end, where=filters, default_margin=margin)
                out.flush()
                return
            if chosen is OutputFormat.json:
                query = r.calls_query(start, end, where=filters, default_margin=margin)
                columns, blocks = opened.run_blocks(query.name, query.params)
                write_json(columns, blocks, sys.stdout)
                return
            head = r.export_calls(
                opened, since=start, until=end, where=filters, default_margin=margin, limit=TABLE_ROWS + 1
            )
    hidden = f"{len(head.columns) - len(PREVIEW_COLUMNS)} more columns in csv and json"
    title = f"Calls, {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC ({hidden})"
    emit_report(_preview(head), chosen, title, complete=False)


def _preview(calls: Report) -> Report:
    """On a screen, the columns people look for first; csv and json have all of them."""
    from spendscope.store import Report

    shown = [calls.columns.index(c) for c in PREVIEW_COLUMNS]
    return Report([calls.columns[i] for i in shown], [[row[i] for i in shown] for row in calls.rows])


@app.command()
def reprice(
    since: SinceOption = "30d",
    until: UntilOption = None,
    price_file: Annotated[Path | None, setting_option(PriceSettings, "price_file")] = None,
    store: StoreOption = None,
) -> None:
    """Re-cost the calls of a time range with today's prices (genai-prices and the price file), for
    example after adding a missing price; the rollups follow."""
    from spendscope.pricing import Pricer
    from spendscope.store.prices import reprice as run_reprice
    from spendscope.store.times import parse_range

    with domain_errors():
        start, end = parse_range(since, until)
        pricer = Pricer(_price_file(price_file))
        with open_store_for(store, "reprice") as opened:
            result = run_reprice(opened, pricer, since=start, until=end)
    typer.echo(
        f"{result.examined} calls examined: {result.changed} re-costed ({result.newly_priced} newly priced, "
        f"{result.unpriced_now} without a price now), {result.still_unpriced} still without a price"
    )


@app.command()
def invoice(
    tenant: Annotated[str, typer.Option(help="the tenant to bill")],
    month: Annotated[str, typer.Option(help="YYYY-MM (UTC)")],
    by: Annotated[str, typer.Option(help="model, user, endpoint, service, operation or attr:KEY")] = "model",
    output: FormatOption = None,
    store: StoreOption = None,
) -> None:
    """A tenant's month: its lines (provider and billed cost), the usage of unknown cost on a line of
    its own, the total, its window, margin and price data (margin: the tenant's, else
    SPENDSCOPE_MARGIN_PERCENT). Exit 1 for a tenant the store has never seen."""
    from spendscope.store.billing import default_margin
    from spendscope.store.invoice import invoice as make_invoice
    from spendscope.store.times import parse_month

    with domain_errors():
        first, _ = parse_month(month)
        with open_store_for(store, "invoice") as opened:
            doc = make_invoice(opened, tenant=tenant, month=first, by=by, default_margin=default_margin())
    _emit_invoice(doc, output)


def _emit_invoice(doc: Invoice, output: OutputFormat | None) -> None:
    import json

    from rich.console import Console

    from spendscope.store import table_layout

    chosen = chosen_format(output)
    if chosen is OutputFormat.csv:
        typer.echo(doc.to_csv(), nl=False)
        return
    if chosen is OutputFormat.json:
        typer.echo(json.dumps(doc.to_json(), indent=2))
        return
    console = Console()
    if not console.is_terminal:  # a table asked for while piped: do not squeeze it into 80 columns
        console = Console(width=200)
    facts = dict(doc.facts())
    console.print(
        f"Invoice {doc.tenant}, {facts['month']}: {doc.since:%Y-%m-%d %H:%M} to "
        f"{doc.until:%Y-%m-%d %H:%M} UTC\nMargin: {facts['margin']}\n"
        f"Price data: {facts['price_data'] or 'none (no priced call)'}",
        highlight=False,
    )
    headers, cells = doc.table()
    table_layout.print_table(console, f"By {doc.by}", headers, cells)
    for note in doc.notes():
        console.print(note, highlight=False)


@app.command()
def margin(
    tenant: Annotated[str, typer.Option(help="the tenant")],
    percent: Annotated[str, typer.Option(help="margin over provider cost, e.g. 20 or 12.5")],
    effective_from: Annotated[
        str | None, typer.Option("--from", help="YYYY-MM-DD (UTC) [default: today]")
    ] = None,
    store: StoreOption = None,
) -> None:
    """Bill a tenant at a margin over provider cost from a date on."""
    from datetime import date

    from spendscope.store.billing import parse_margin, set_margin
    from spendscope.store.errors import ReportError

    with domain_errors():
        try:
            day = date.fromisoformat(effective_from) if effective_from else None
        except ValueError:
            raise ReportError(f"bad --from {effective_from!r}: use YYYY-MM-DD") from None
        value = parse_margin(percent, source="--percent")
        with open_store_for(store, "margin", create=True) as opened:
            set_margin(opened, tenant, value, effective_from=day)
    typer.echo(f"{tenant}: {value}% from {day or 'today'}")
