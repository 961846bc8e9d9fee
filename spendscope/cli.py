"""The `spendscope` command."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

try:
    import typer
    from rich.console import Console
    from rich.table import Table
except ImportError as exc:  # the app-side install has no CLI dependencies
    raise SystemExit("the spendscope command needs the CLI extras: pip install 'spendscope[demo]'") from exc


if TYPE_CHECKING:
    from spendscope.store import Report, Store

app = typer.Typer(help="SpendScope: LLM cost observability for OpenAI.", no_args_is_help=True)


@app.callback()
def main() -> None:
    """SpendScope: what every OpenAI call costs, per user, feature and tenant."""


class Format(StrEnum):
    table = "table"
    json = "json"


@app.command()
def demo(
    output: Annotated[
        Format, typer.Option("--format", help="table for people, json for scripts")
    ] = Format.table,
    seed: Annotated[int, typer.Option(help="seed of the simulated workload")] = 7,
    collector: Annotated[
        str | None,
        typer.Option(
            help="send the workload to this running collector (http://host:4318) instead of starting one "
            "on an embedded store; OTEL_EXPORTER_OTLP_HEADERS carries its token"
        ),
    ] = None,
    every: Annotated[
        str | None,
        typer.Option(help="with --collector: run the workload again every interval (30s, 5m) until stopped"),
    ] = None,
) -> None:
    """Run the whole pipeline on embedded defaults: a collector on an embedded ClickHouse store, a
    local fake OpenAI server, and a realistic workload through the real openai client with SpendScope
    instrumenting it; then show what every tenant, feature, user and model cost."""
    if collector is not None:
        _demo_to_collector(collector.rstrip("/"), seed, every)
        return
    if every is not None:
        _fail("--every needs --collector")
    from spendscope.demo.report import render, to_json
    from spendscope.demo.runner import run_demo

    result = run_demo(seed=seed)
    if output is Format.json:
        typer.echo(json.dumps(to_json(result), indent=2))
        return
    console = Console()
    if not console.is_terminal:  # piped: do not squeeze the tables into 80 columns
        console = Console(width=160)
    render(result, console)


def _demo_to_collector(url: str, seed: int, every: str | None) -> None:
    """`demo --collector`: the workload only, exported to a running collector (docker compose's demo)."""
    import signal
    import threading

    from spendscope.demo.external import CollectorUnreachable, check_collector, parse_every, send_rounds

    try:
        interval = parse_every(every) if every is not None else None
        check_collector(url)
    except (ValueError, CollectorUnreachable) as exc:
        _fail(str(exc))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())  # docker stop: finish the round, flush, exit 0
    try:
        calls = send_rounds(url, seed=seed, every=interval, stop=stop, echo=typer.echo)
    except KeyboardInterrupt:
        return
    typer.echo(f"{calls} calls sent to {url}: see them in its store and on its /metrics")


# --- the store: migrate, report, export, reprice, invoice, margin -------------------------------------
class OutputFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


StoreOption = Annotated[
    str | None,
    typer.Option(
        "--store",
        envvar="SPENDSCOPE_STORE",
        help="chdb:///dir, a directory, or http(s)://user:pass@host:8123/db [default: ./spendscope-data]",
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


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


@contextmanager
def _domain_errors() -> Iterator[None]:
    """Store, report, price-file and setting errors become one line and exit status 1."""
    from spendscope.pricing import PriceFileError
    from spendscope.settings import ConfigurationError
    from spendscope.store.errors import ReportError, StoreError

    try:
        yield
    except (StoreError, ReportError, PriceFileError, ConfigurationError) as exc:
        _fail(str(exc))


def _open(store: str | None, command: str) -> Store:
    """The store, opened locally; refused while a collector holds the embedded store."""
    from spendscope.store import open_store
    from spendscope.store.dsn import parse_dsn
    from spendscope.store.remote import running_collector

    target = parse_dsn(store)
    if target.chdb_path is not None and (collector := running_collector(target.chdb_path)):
        _fail(
            f"the collector (pid {collector.pid}, {collector.url}) holds {target.chdb_path}: "
            f"`spendscope report` works through it; stop it to run `spendscope {command}`"
        )
    opened = open_store(store)
    if command != "migrate" and (missing := opened.pending_migrations()):
        opened.close()
        _fail(
            f"{target.describe()} lacks SpendScope's schema ({', '.join(missing)}): run `spendscope migrate`"
        )
    return opened


def _emit(report: Report, output: OutputFormat | None, title: str) -> None:
    from spendscope.store import formatting

    console = Console()
    chosen = output or (OutputFormat.table if console.is_terminal else OutputFormat.csv)
    if chosen is OutputFormat.csv:
        typer.echo(formatting.to_csv(report), nl=False)
        return
    if chosen is OutputFormat.json:
        typer.echo(formatting.to_json(report))
        return
    if not console.is_terminal:  # a table asked for while piped: do not squeeze it into 80 columns
        console = Console(width=200)
    table = Table(title=title, title_justify="left")
    for column in report.columns:
        table.add_column(column, justify="right" if formatting.numeric(column) else "left")
    for row in report.rows:
        table.add_row(*(formatting.table_cell(c, v) for c, v in zip(report.columns, row, strict=True)))
    console.print(table)


@app.command()
def migrate(store: StoreOption = None) -> None:
    """Create or update the ClickHouse schema (idempotent; the collector also does it on start)."""
    with _domain_errors():
        opened = _open(store, "migrate")
        with opened:
            applied = opened.migrate()
            from spendscope.pricing import Pricer
            from spendscope.store.prices import load_model_prices

            prices = load_model_prices(opened, Pricer(_price_file(None)))
        where = opened.target.describe()
    done = f"applied {', '.join(applied)}" if applied else "schema already up to date"
    typer.echo(f"{where}: {done}; {prices} model price rows loaded")


def _price_file(path: str | None) -> Any:
    from spendscope.pricing import PriceFile
    from spendscope.settings import resolve

    chosen = resolve("price_file", path)
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
    """Calls, tokens and cost by one dimension (through the collector when it holds the store)."""
    from spendscope.store.dsn import parse_dsn
    from spendscope.store.remote import ReportRequest, remote_report, running_collector
    from spendscope.store.reports import check_dimension, parse_where
    from spendscope.store.times import parse_range

    with _domain_errors():
        start, end = parse_range(since, until)
        request = ReportRequest(check_dimension(by), start, end, parse_where(where or []))
        target = parse_dsn(store)
        collector = running_collector(target.chdb_path) if target.chdb_path is not None else None
        if collector is not None:
            result = remote_report(collector, request)
        else:
            with _open(store, "report") as opened:
                result = request.run(opened)
    _emit(result, output, f"Cost by {request.by}, {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC")


@app.command()
def export(
    since: SinceOption = "30d",
    until: UntilOption = None,
    where: WhereOption = None,
    output: FormatOption = None,
    store: StoreOption = None,
) -> None:
    """One row per call: tokens, provider cost and billed cost (csv when piped)."""
    from spendscope.store.billing import default_margin
    from spendscope.store.reports import export_calls, parse_where
    from spendscope.store.times import parse_range

    with _domain_errors():
        start, end = parse_range(since, until)
        filters = parse_where(where or [])
        with _open(store, "export") as opened:
            result = export_calls(
                opened, since=start, until=end, where=filters, default_margin=default_margin()
            )
    _emit(result, output, f"Calls, {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC")


@app.command()
def reprice(
    since: SinceOption = "30d",
    until: UntilOption = None,
    price_file: Annotated[
        str | None, typer.Option(help="TOML/JSON price overrides [env: SPENDSCOPE_PRICE_FILE]")
    ] = None,
    store: StoreOption = None,
) -> None:
    """Re-cost the calls of a time range with today's prices (genai-prices and the price file), for
    example after adding a missing price; the rollups follow."""
    from spendscope.pricing import Pricer
    from spendscope.store.prices import reprice as run_reprice
    from spendscope.store.times import parse_range

    with _domain_errors():
        start, end = parse_range(since, until)
        pricer = Pricer(_price_file(price_file))
        with _open(store, "reprice") as opened:
            result = run_reprice(opened, pricer, since=start, until=end)
    typer.echo(
        f"{result.examined} calls examined: {result.changed} re-costed ({result.newly_priced} newly priced), "
        f"{result.still_unpriced} still without a price, {result.kept} kept (no current price)"
    )


@app.command()
def invoice(
    tenant: Annotated[str, typer.Option(help="the tenant to bill")],
    month: Annotated[str, typer.Option(help="YYYY-MM (UTC)")],
    by: Annotated[str, typer.Option(help="model, user, endpoint, service, operation or attr:KEY")] = "model",
    output: FormatOption = None,
    store: StoreOption = None,
) -> None:
    """A tenant's month: provider cost and billed cost (its margin, else SPENDSCOPE_MARGIN_PERCENT)."""
    from spendscope.store.billing import default_margin
    from spendscope.store.reports import invoice as run_invoice
    from spendscope.store.times import parse_month

    with _domain_errors():
        first, _ = parse_month(month)
        with _open(store, "invoice") as opened:
            result = run_invoice(opened, tenant=tenant, month=first, by=by, default_margin=default_margin())
    _emit(result, output, f"Invoice {tenant} {month} by {by}")


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

    with _domain_errors():
        try:
            day = date.fromisoformat(effective_from) if effective_from else None
        except ValueError:
            raise ReportError(f"bad --from {effective_from!r}: use YYYY-MM-DD") from None
        value = parse_margin(percent, source="--percent")
        with _open(store, "margin") as opened:
            set_margin(opened, tenant, value, effective_from=day)
    typer.echo(f"{tenant}: {value}% from {day or 'today'}")


# --- the collector ------------------------------------------------------------------------------------
def _setting_help(text: str, env: str, default: str) -> str:
    return f"{text} (env {env}; default {default})"


@app.command()
def collector(
    listen: Annotated[
        str | None,
        typer.Option(
            help=_setting_help("HOST:PORT to serve on", "SPENDSCOPE_COLLECTOR_LISTEN", "127.0.0.1:4318")
        ),
    ] = None,
    store: Annotated[
        str | None,
        typer.Option(
            help=_setting_help(
                "chdb:///dir, a directory, or http(s)://user:pass@host:8123/db",
                "SPENDSCOPE_STORE",
                "./spendscope-data",
            )
        ),
    ] = None,
    spool: Annotated[
        str | None,
        typer.Option(
            help=_setting_help(
                "directory for batches the store cannot take yet",
                "SPENDSCOPE_COLLECTOR_SPOOL",
                "<store dir>-spool",
            )
        ),
    ] = None,
    max_body_bytes: Annotated[
        str | None,
        typer.Option(
            help=_setting_help(
                "largest request body, also once decompressed",
                "SPENDSCOPE_COLLECTOR_MAX_BODY_BYTES",
                "20 MiB",
            )
        ),
    ] = None,
    queue_spans: Annotated[
        str | None,
        typer.Option(
            help=_setting_help("spans held in memory before 503", "SPENDSCOPE_COLLECTOR_QUEUE_SPANS", "60000")
        ),
    ] = None,
    batch_spans: Annotated[
        str | None,
        typer.Option(help=_setting_help("spans per insert", "SPENDSCOPE_COLLECTOR_BATCH_SPANS", "20000")),
    ] = None,
    flush_interval: Annotated[
        str | None,
        typer.Option(
            help=_setting_help(
                "seconds a span may wait for its batch", "SPENDSCOPE_COLLECTOR_FLUSH_INTERVAL", "1"
            )
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            help=_setting_help(
                "bearer token required on every request (prefer the env var)",
                "SPENDSCOPE_COLLECTOR_TOKEN",
                "none",
            )
        ),
    ] = None,
    budgets: Annotated[
        str | None,
        typer.Option(
            help="also evaluate this budgets file, as `spendscope budgets` does, on the collector's store "
            "(the embedded store opens in one process only); /metrics on SPENDSCOPE_BUDGETS_LISTEN "
            "(127.0.0.1:9465) every SPENDSCOPE_BUDGETS_INTERVAL (60s)"
        ),
    ] = None,
    reconcile: Annotated[
        bool,
        typer.Option(
            "--reconcile",
            help="also run `spendscope reconcile --watch` (settings from SPENDSCOPE_RECONCILE_*, the admin "
            "key from OPENAI_ADMIN_KEY) on the collector's store; /metrics on 127.0.0.1:9466",
        ),
    ] = False,
) -> None:
    """Receive OTLP/HTTP from your apps (POST /v1/traces, /v1/metrics), write spans to ClickHouse, serve
    their metrics and the collector's own on /metrics, and reports on /api/usage/. Stops cleanly on
    SIGTERM or Ctrl-C."""
    import logging
    from contextlib import AbstractContextManager

    from spendscope.budgets import BudgetConfigError, BudgetSettings, load_budgets
    from spendscope.collector import Collector, CollectorConfig, CollectorError
    from spendscope.collector._budgets import serving_budgets
    from spendscope.collector._reconcile import reconciling, watch_command
    from spendscope.reconciler import ReconcileError
    from spendscope.reconciler._fetch import resolve_admin_key
    from spendscope.settings import ConfigurationError

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    services: list[Callable[[Collector], AbstractContextManager[Any]]] = []
    try:
        if budgets is not None:
            settings = BudgetSettings.resolve(config=budgets)
            budget_config = load_budgets(settings.config)
            services.append(lambda c: serving_budgets(c.store, budget_config, settings))
        if reconcile:
            resolve_admin_key()  # a missing key stops the start, not every run an hour later
            command = watch_command()
            services.append(lambda c: reconciling(c.config.store, command))
        config = CollectorConfig.resolve(
            listen=listen,
            store=store,
            spool=spool,
            max_body_bytes=max_body_bytes,
            queue_spans=queue_spans,
            batch_spans=batch_spans,
            flush_interval=flush_interval,
            token=token,
        )
        Collector(config).serve_forever(*services)
    except (ConfigurationError, CollectorError, BudgetConfigError, ReconcileError) as exc:
        _fail(str(exc))


# --- budgets -------------------------------------------------------------------------------------------
@app.command()
def budgets(
    config: Annotated[
        str | None,
        typer.Option(help=_setting_help("the budgets file", "SPENDSCOPE_BUDGETS_CONFIG", "./budgets.yaml")),
    ] = None,
    listen: Annotated[
        str | None,
        typer.Option(
            help=_setting_help("HOST:PORT for /metrics", "SPENDSCOPE_BUDGETS_LISTEN", "127.0.0.1:9465")
        ),
    ] = None,
    interval: Annotated[
        str | None,
        typer.Option(
            help=_setting_help("time between evaluations: 60s, 5m", "SPENDSCOPE_BUDGETS_INTERVAL", "60s")
        ),
    ] = None,
    once: Annotated[
        bool, typer.Option("--once", help="evaluate once, print the metrics (Prometheus text) and exit")
    ] = False,
    store: StoreOption = None,
) -> None:
    """Evaluate every user's and tenant's spend today (UTC) and this month against budgets.yaml, from the
    ClickHouse rollups (one query per evaluation), and serve /metrics for Prometheus: series only for
    the users at or above the warning percentage. Stops cleanly on SIGTERM or Ctrl-C."""
    import logging
    import signal
    import threading
    from contextlib import suppress

    from spendscope.budgets import BudgetConfigError, BudgetEvaluator, BudgetSettings, load_budgets

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    with _domain_errors():
        try:
            settings = BudgetSettings.resolve(config=config, listen=listen, interval=interval)
            budget_config = load_budgets(settings.config)
        except BudgetConfigError as exc:
            _fail(str(exc))
        with _open(store, "budgets") as opened:
            evaluator = BudgetEvaluator(opened, budget_config)
            if once:
                evaluator.evaluate()
                typer.echo(evaluator.exposition(), nl=False)
                return
            stop = threading.Event()
            signal.signal(signal.SIGTERM, lambda *_: stop.set())
            with evaluator.serving(settings.listen, settings.interval) as url:
                typer.echo(f"serving {url}, evaluating {settings.config} every {settings.interval:g}s")
                with suppress(KeyboardInterrupt):
                    stop.wait()


# --- reconciliation against OpenAI's Usage and Costs APIs --------------------------------------------
@app.command()
def reconcile(
    since: Annotated[
        str, typer.Option(help="start (UTC): 3d, 12h, today, 2026-11-01 or 2026-11-01T10:00Z")
    ] = "3d",
    until: UntilOption = None,
    output: FormatOption = None,
    min_coverage: Annotated[
        str | None,
        typer.Option(
            help=_setting_help(
                "exit 3 when tracked/reported spend is below this (0.95 or 95%)",
                "SPENDSCOPE_RECONCILE_MIN_COVERAGE",
                "0.95",
            )
        ),
    ] = None,
    usage_settle: Annotated[
        str | None,
        typer.Option(
            help=_setting_help(
                "compare usage buckets closed this long", "SPENDSCOPE_RECONCILE_USAGE_SETTLE", "1h"
            )
        ),
    ] = None,
    costs_settle: Annotated[
        str | None,
        typer.Option(
            help=_setting_help(
                "compare cost days closed this long", "SPENDSCOPE_RECONCILE_COSTS_SETTLE", "1d"
            )
        ),
    ] = None,
    bucket_width: Annotated[
        str | None,
        typer.Option(
            help=_setting_help("usage buckets, 1h or 1d", "SPENDSCOPE_RECONCILE_BUCKET_WIDTH", "1h")
        ),
    ] = None,
    costs: Annotated[
        bool, typer.Option("--costs/--no-costs", help="compare dollars with the Costs API")
    ] = True,
    watch: Annotated[bool, typer.Option("--watch", help="run again every --interval until stopped")] = False,
    interval: Annotated[
        str | None,
        typer.Option(help=_setting_help("--watch: time between runs", "SPENDSCOPE_RECONCILE_INTERVAL", "1h")),
    ] = None,
    metrics_file: Annotated[
        str | None,
        typer.Option(
            help=_setting_help(
                "write Prometheus metrics here (textfile collector)",
                "SPENDSCOPE_RECONCILE_METRICS_FILE",
                "none",
            )
        ),
    ] = None,
    metrics_listen: Annotated[
        str | None,
        typer.Option(
            help=_setting_help(
                "--watch: serve /metrics on HOST:PORT",
                "SPENDSCOPE_RECONCILE_METRICS_LISTEN",
                "127.0.0.1:9466",
            )
        ),
    ] = None,
    max_retries: Annotated[
        str | None,
        typer.Option(
            help=_setting_help("retries per API call on 429/5xx", "SPENDSCOPE_RECONCILE_MAX_RETRIES", "5")
        ),
    ] = None,
    max_retry_wait: Annotated[
        str | None,
        typer.Option(
            help=_setting_help("longest Retry-After honoured", "SPENDSCOPE_RECONCILE_MAX_RETRY_WAIT", "120s")
        ),
    ] = None,
    base_url: Annotated[
        str | None, typer.Option(help="OpenAI API base URL [default: OPENAI_BASE_URL, else api.openai.com]")
    ] = None,
    store: StoreOption = None,
) -> None:
    """Compare what SpendScope tracked with OpenAI's organization Usage API (tokens, per bucket, project,
    key, model, batch and tier) and Costs API (dollars, per day and line item), explain the gap by cause,
    and record the result. Needs an admin key in OPENAI_ADMIN_KEY. Exit 3 below --min-coverage."""
    import logging

    from spendscope.reconciler import ReconcileError
    from spendscope.reconciler._command import Command, run_once
    from spendscope.reconciler._command import watch as watch_loop

    console = Console()
    chosen = output or (OutputFormat.table if console.is_terminal else OutputFormat.csv)
    if not console.is_terminal:
        console = Console(width=200)
    with _domain_errors():
        try:
            command = Command.resolve(
                since=since,
                until=until,
                output=chosen.value,
                base_url=base_url,
                costs=costs,
                min_coverage=min_coverage,
                usage_settle=usage_settle,
                costs_settle=costs_settle,
                bucket_width=bucket_width,
                interval=interval,
                max_retries=max_retries,
                max_retry_wait=max_retry_wait,
                page_bytes=None,
                metrics_file=metrics_file,
                metrics_listen=metrics_listen,
            )
            with _open(store, "reconcile") as opened:
                opened.migrate()
                if watch:
                    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
                    code = watch_loop(command, opened, echo=typer.echo, console=console)
                else:
                    code = run_once(command, opened, echo=typer.echo, console=console)
        except ReconcileError as exc:
            _fail(str(exc))
    raise typer.Exit(code)
