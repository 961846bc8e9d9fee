"""`spendscope reconcile`: SpendScope's numbers against OpenAI's Usage and Costs APIs."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from spendscope.cli._app import (
    FormatOption,
    OutputFormat,
    StoreOption,
    UntilOption,
    app,
    domain_errors,
    fail,
    open_store_for,
    setting,
)


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
        setting(
            "exit 3 when tracked/reported spend is below this (0.95 or 95%)",
            "SPENDSCOPE_RECONCILE_MIN_COVERAGE",
            "0.95",
        ),
    ] = None,
    usage_settle: Annotated[
        str | None,
        setting("compare usage buckets closed this long", "SPENDSCOPE_RECONCILE_USAGE_SETTLE", "1h"),
    ] = None,
    costs_settle: Annotated[
        str | None,
        setting("compare cost days closed this long", "SPENDSCOPE_RECONCILE_COSTS_SETTLE", "1d"),
    ] = None,
    bucket_width: Annotated[
        str | None,
        setting("usage buckets, 1h or 1d", "SPENDSCOPE_RECONCILE_BUCKET_WIDTH", "1h"),
    ] = None,
    costs: Annotated[
        bool, typer.Option("--costs/--no-costs", help="compare dollars with the Costs API")
    ] = True,
    watch: Annotated[bool, typer.Option("--watch", help="run again every --interval until stopped")] = False,
    interval: Annotated[
        str | None,
        setting("--watch: time between runs", "SPENDSCOPE_RECONCILE_INTERVAL", "1h"),
    ] = None,
    metrics_file: Annotated[
        str | None,
        setting(
            "write Prometheus metrics here (textfile collector)", "SPENDSCOPE_RECONCILE_METRICS_FILE", "none"
        ),
    ] = None,
    metrics_listen: Annotated[
        str | None,
        setting(
            "--watch: serve /metrics on HOST:PORT", "SPENDSCOPE_RECONCILE_METRICS_LISTEN", "127.0.0.1:9466"
        ),
    ] = None,
    max_retries: Annotated[
        str | None,
        setting("retries per API call on 429/5xx", "SPENDSCOPE_RECONCILE_MAX_RETRIES", "5"),
    ] = None,
    max_retry_wait: Annotated[
        str | None,
        setting("longest Retry-After honoured", "SPENDSCOPE_RECONCILE_MAX_RETRY_WAIT", "120s"),
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
    with domain_errors():
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
            with open_store_for(store, "reconcile") as opened:
                opened.migrate()
                if watch:
                    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
                    code = watch_loop(command, opened, echo=typer.echo, console=console)
                else:
                    code = run_once(command, opened, echo=typer.echo, console=console)
        except ReconcileError as exc:
            fail(str(exc))
    raise typer.Exit(code)
