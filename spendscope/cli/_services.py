"""The long-running services: `spendscope collector` and `spendscope budgets`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from spendscope.cli._app import StoreOption, app, domain_errors, fail, open_store_for
from spendscope.cli._options import setting_option
from spendscope.settings.budgets import BudgetSettings
from spendscope.settings.collector import CollectorConfig
from spendscope.settings.reconcile import ReconcileSettings

_BUDGETS_LISTEN = BudgetSettings.default_text("listen")
_BUDGETS_INTERVAL = BudgetSettings.default_text("interval")
_RECONCILE_LISTEN = ReconcileSettings.default_text("metrics_listen")


@app.command()
def collector(
    listen: Annotated[str | None, setting_option(CollectorConfig, "listen")] = None,
    store: Annotated[str | None, setting_option(CollectorConfig, "store")] = None,
    spool: Annotated[Path | None, setting_option(CollectorConfig, "spool")] = None,
    price_file: Annotated[Path | None, setting_option(CollectorConfig, "price_file")] = None,
    max_body_bytes: Annotated[str | None, setting_option(CollectorConfig, "max_body_bytes")] = None,
    queue_spans: Annotated[str | None, setting_option(CollectorConfig, "queue_spans")] = None,
    batch_spans: Annotated[str | None, setting_option(CollectorConfig, "batch_spans")] = None,
    flush_interval: Annotated[str | None, setting_option(CollectorConfig, "flush_interval")] = None,
    token: Annotated[
        str | None, setting_option(CollectorConfig, "token", help="prefer the environment variable")
    ] = None,
    budgets: Annotated[
        str | None,
        typer.Option(
            help="also evaluate this budgets file, as `spendscope budgets` does, on the collector's store; "
            f"/metrics on {BudgetSettings.env('listen')} ({_BUDGETS_LISTEN}) every "
            f"{BudgetSettings.env('interval')} ({_BUDGETS_INTERVAL}s)"
        ),
    ] = None,
    reconcile: Annotated[
        bool,
        typer.Option(
            "--reconcile",
            help="also run `spendscope reconcile --watch` (settings from SPENDSCOPE_RECONCILE_*, the admin "
            f"key from OPENAI_ADMIN_KEY) on the collector's store; /metrics on {_RECONCILE_LISTEN}",
        ),
    ] = False,
) -> None:
    """Receive OTLP/HTTP from your apps (POST /v1/traces, /v1/metrics), write spans to ClickHouse, serve
    their metrics and the collector's own on /metrics, and reports on /api/usage/. Stops cleanly on
    SIGTERM or Ctrl-C."""
    import logging
    from contextlib import AbstractContextManager

    from spendscope.budgets import BudgetConfigError, load_budgets
    from spendscope.collector import Collector, CollectorError
    from spendscope.collector._budgets import serving_budgets
    from spendscope.collector._memory import use_allocator
    from spendscope.collector._reconcile import reconciling, watch_command
    from spendscope.reconciler import ReconcileError
    from spendscope.reconciler._fetch import resolve_admin_key
    from spendscope.settings import ConfigurationError

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    services: list[Callable[[Collector], AbstractContextManager[Any]]] = []
    budgets_file: Path | None = None  # the portal's overview lists its budgets at or over their warning
    try:
        if budgets is not None:
            settings = BudgetSettings.resolve(given="option", config=budgets)
            budget_config = load_budgets(settings.config)
            services.append(lambda c: serving_budgets(c.handle(), budget_config, settings))
            budgets_file = settings.config
        if reconcile:
            resolve_admin_key()  # a missing key stops the start, not every run an hour later
            command = watch_command()
            services.append(lambda c: reconciling(c.config.store, command))
        config = CollectorConfig.resolve(
            given="option",
            listen=listen,
            store=store,
            spool=spool,
            price_file=price_file,
            max_body_bytes=max_body_bytes,
            queue_spans=queue_spans,
            batch_spans=batch_spans,
            flush_interval=flush_interval,
            token=token,
        )
        try:
            use_allocator(config.allocator)
        except ValueError as exc:
            raise ConfigurationError(
                f"collector setting allocator ({CollectorConfig.env('allocator')}): {exc}"
            ) from None
        Collector(config, budgets=budgets_file).serve_forever(*services)
    except (ConfigurationError, CollectorError, BudgetConfigError, ReconcileError) as exc:
        fail(str(exc))


# --- spool ---------------------------------------------------------------------------------------------
spool_app = typer.Typer(
    help="The collector's spool: batches waiting for the store, and spans the store refused.",
    no_args_is_help=True,
)
app.add_typer(spool_app, name="spool")
SpoolStoreOption = Annotated[
    str | None, setting_option(CollectorConfig, "store", help="the collector's, whose spool is next to it")
]
SpoolOption = Annotated[Path | None, setting_option(CollectorConfig, "spool")]


def _spool(store: str | None, spool: Path | None) -> Any:
    from spendscope.collector._spool import Spool
    from spendscope.settings import ConfigurationError

    try:
        directory = CollectorConfig.resolve(given="option", store=store, spool=spool).spool_dir
    except ConfigurationError as exc:
        fail(str(exc))
    if not directory.is_dir():
        fail(f"no spool at {directory}")
    return Spool(directory)


@spool_app.command("status")
def spool_status(store: SpoolStoreOption = None, spool: SpoolOption = None) -> None:
    """Batches waiting for the store, and spans set aside because the store refused them (by reason)."""
    opened = _spool(store, spool)
    typer.echo(f"{opened.directory}: {opened.files} batch(es) waiting, {opened.bytes} bytes")
    for reason, spans in sorted(opened.refused().items()):
        typer.echo(f"refused: {spans} span(s), {reason}")


@spool_app.command("requeue")
def spool_requeue(store: SpoolStoreOption = None, spool: SpoolOption = None) -> None:
    """Put the spans the store refused back in the spool, once the cause is fixed: the collector writes
    them (those it still refuses come back to refused/)."""
    opened = _spool(store, spool)
    moved = opened.requeue()
    typer.echo(f"{opened.directory}: {len(moved)} refused file(s) put back in the spool")


# --- budgets -------------------------------------------------------------------------------------------
@app.command()
def budgets(
    config: Annotated[Path | None, setting_option(BudgetSettings, "config")] = None,
    listen: Annotated[str | None, setting_option(BudgetSettings, "listen")] = None,
    interval: Annotated[str | None, setting_option(BudgetSettings, "interval")] = None,
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

    from spendscope.budgets import BudgetConfigError, BudgetEvaluator, load_budgets

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    with domain_errors():
        try:
            settings = BudgetSettings.resolve(given="option", config=config, listen=listen, interval=interval)
            budget_config = load_budgets(settings.config)
        except BudgetConfigError as exc:
            fail(str(exc))
        with open_store_for(store, "budgets") as opened:
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
