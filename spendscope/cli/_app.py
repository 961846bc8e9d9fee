"""The `spendscope` Typer app and what its commands share: store and format options, one-line
errors, opening the store."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, NoReturn

try:
    import typer
    from rich.console import Console
except ImportError as exc:  # the app-side install has no CLI dependencies
    raise SystemExit("the spendscope command needs the CLI extras: pip install 'spendscope[demo]'") from exc


from spendscope._version import __version__
from spendscope.settings.collector import CollectorConfig

if TYPE_CHECKING:
    from pathlib import Path

    from spendscope.store import Report, Store
    from spendscope.store.server import ServerState

app = typer.Typer(help="SpendScope: LLM cost observability for OpenAI.", no_args_is_help=True)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"spendscope {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    """SpendScope: what every OpenAI call costs, per user, feature and tenant."""


# --- the store: migrate, report, export, reprice, invoice, margin -------------------------------------
class OutputFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


StoreOption = Annotated[
    str | None,
    typer.Option(
        "--store",
        envvar=CollectorConfig.env("store"),
        help=f"{CollectorConfig.model_fields['store'].description} "
        f"(default {CollectorConfig.default_text('store')})",
    ),
]
FormatOption = Annotated[
    OutputFormat | None,
    typer.Option("--format", help="table on a terminal, csv when piped, unless given"),
]
SinceOption = Annotated[
    str, typer.Option(help="start: 30d, 12h, today, 2026-11-01 or 2026-11-01T10:00Z (UTC)")
]
UntilOption = Annotated[
    str | None, typer.Option(help="end (exclusive), same forms as --since [default: now]")
]
WhereOption = Annotated[
    list[str] | None,
    typer.Option("--where", help="KEY=VALUE filter, repeatable: tenant=acme, user=u-42, attr:job_id=J-42"),
]


def fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


@contextmanager
def domain_errors() -> Iterator[None]:
    """Store, report and setting errors (a bad price file among them) become one line and exit status 1."""
    from spendscope.settings import ConfigurationError
    from spendscope.store.errors import ReportError, StoreError

    try:
        yield
    except (StoreError, ReportError, ConfigurationError) as exc:
        fail(str(exc))


def open_store_for(store: str | None, command: str, *, create: bool = False) -> Store:
    """The store `command` uses: a ClickHouse server, or a local store, whose server is started if none
    runs (it keeps running; `spendscope store stop` stops it). Only a command that writes (`create`)
    makes a store that does not exist; the others say where they looked."""
    from spendscope.store import open_store
    from spendscope.store.dsn import parse_dsn

    target = parse_dsn(store)
    if target.directory is not None:
        from spendscope.store import server

        started = server.prepare(target.directory, create=create)
        if started.started:
            typer.echo(f"{started_note(target.directory, started.state)}", err=True)
    opened = open_store(store, create=create)
    if command != "migrate" and (missing := opened.pending_migrations()):
        opened.close()
        fail(
            f"{target.describe()} lacks SpendScope's schema ({', '.join(missing)}): run `spendscope migrate`"
        )
    return opened


def started_note(directory: Path, state: ServerState) -> str:
    """What a command says when it has started the local store server."""
    return (
        f"started the store server for {directory} (pid {state.pid}, {state.url}); it keeps running: "
        "`spendscope store stop` stops it"
    )


# A terminal table shows this many rows at most, as ClickHouse's Pretty formats cap theirs: Rich
# takes about 1.3 s per 1,000 rows of a report, and nobody reads 20,000 of them on a screen.
TABLE_ROWS = 1_000


def chosen_format(output: OutputFormat | None) -> OutputFormat:
    """The format asked for, else table on a terminal and csv when piped."""
    return output or (OutputFormat.table if Console().is_terminal else OutputFormat.csv)


def emit_report(report: Report, output: OutputFormat | None, title: str, *, complete: bool = True) -> None:
    """`report` as csv, json or a table of its first TABLE_ROWS rows (`complete`: the report holds
    every row, so the note can say how many there are)."""
    from spendscope.store import formatting, money, table_layout

    chosen = chosen_format(output)
    if chosen is OutputFormat.csv:
        typer.echo(formatting.to_csv(report), nl=False)
        return
    if chosen is OutputFormat.json:
        typer.echo(formatting.to_json(report))
        return
    console = Console()
    if not console.is_terminal:  # a table asked for while piped: do not squeeze it into 80 columns
        console = Console(width=200)
    columns = report.columns
    cells = [formatting.table_cells(columns, row) for row in report.rows[:TABLE_ROWS]]
    table_layout.print_table(console, title, columns, cells)  # numbers whole; text and headers fold
    if money.any_partial(columns, report.rows[:TABLE_ROWS]):
        console.print(money.PARTIAL_NOTE, highlight=False)
    if len(report.rows) > TABLE_ROWS:
        of = f" of {len(report.rows):,}" if complete else ""
        console.print(f"Showed the first {TABLE_ROWS:,} rows{of}: --format csv or json has them all.")
