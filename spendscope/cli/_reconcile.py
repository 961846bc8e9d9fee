"""`spendscope reconcile`: SpendScope's numbers against OpenAI's Usage and Costs APIs."""

from __future__ import annotations

from pathlib import Path
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
)
from spendscope.cli._options import setting_option
from spendscope.settings.reconcile import ReconcileSettings


# --- reconciliation against OpenAI's Usage and Costs APIs --------------------------------------------
@app.command()
def reconcile(
    since: Annotated[
        str, typer.Option(help="start (UTC): 3d, 12h, today, 2026-11-01 or 2026-11-01T10:00Z")
    ] = "3d",
    until: UntilOption = None,
    output: FormatOption = None,
    min_coverage: Annotated[
        str | None, setting_option(ReconcileSettings, "min_coverage", metavar="RATIO")
    ] = None,
    usage_settle: Annotated[str | None, setting_option(ReconcileSettings, "usage_settle")] = None,
    costs_settle: Annotated[str | None, setting_option(ReconcileSettings, "costs_settle")] = None,
    bucket_width: Annotated[str | None, setting_option(ReconcileSettings, "bucket_width")] = None,
    costs: Annotated[
        bool, typer.Option("--costs/--no-costs", help="compare dollars with the Costs API")
    ] = True,
    watch: Annotated[bool, typer.Option("--watch", help="run again every --interval until stopped")] = False,
    interval: Annotated[str | None, setting_option(ReconcileSettings, "interval")] = None,
    metrics_file: Annotated[Path | None, setting_option(ReconcileSettings, "metrics_file")] = None,
    metrics_listen: Annotated[str | None, setting_option(ReconcileSettings, "metrics_listen")] = None,
    max_retries: Annotated[str | None, setting_option(ReconcileSettings, "max_retries")] = None,
    max_retry_wait: Annotated[str | None, setting_option(ReconcileSettings, "max_retry_wait")] = None,
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
                given="option",
                min_coverage=min_coverage,
                usage_settle=usage_settle,
                costs_settle=costs_settle,
                bucket_width=bucket_width,
                interval=interval,
                max_retries=max_retries,
                max_retry_wait=max_retry_wait,
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
