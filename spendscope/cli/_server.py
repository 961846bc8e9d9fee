"""`spendscope store start|stop|status`: the local store's server (spendscope/store/server.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from spendscope.cli._app import StoreOption, app, domain_errors, fail, started_note, store_dsn

store_app = typer.Typer(
    help="The local store's server: ClickHouse on 127.0.0.1 for a data directory, used by every command.",
    no_args_is_help=True,
)
app.add_typer(store_app, name="store")


def _directory(store: str | None) -> Path:
    from spendscope.store.dsn import parse_dsn

    target = parse_dsn(store_dsn(store))
    if target.directory is None:
        fail(
            f"{target.describe()} is a ClickHouse server: a store server runs for a local store (a directory)"
        )
    return target.directory


@store_app.command("start")
def start(
    store: StoreOption = None,
    port: Annotated[
        int | None,
        typer.Option(min=1, max=65535, help="HTTP port on 127.0.0.1 [default: a free one]"),
    ] = None,
) -> None:
    """Start the server for a local store (creating the directory if need be); it keeps running until
    `spendscope store stop`. Every command and the collector start it themselves when it is not running."""
    from spendscope.store import server

    with domain_errors():
        directory = _directory(store)
        running = server.running(directory)
        if running is not None:
            typer.echo(f"the store server for {directory} already runs (pid {running.pid}, {running.url})")
            return
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            fail(f"cannot create the store directory {directory}: {exc.strerror}")
        started = server.start(directory, port=port)
    typer.echo(started_note(directory, started.state))


@store_app.command("stop")
def stop(store: StoreOption = None) -> None:
    """Stop the server for a local store (SIGTERM, then SIGKILL after 30 s). A collector running on the
    store spools until the server runs again."""
    from spendscope.store import server

    with domain_errors():
        directory = _directory(store)
        stopped = server.stop(directory)
    if stopped is None:
        typer.echo(f"no store server runs for {directory}")
    else:
        typer.echo(f"stopped the store server for {directory} (pid {stopped.pid}, {stopped.url})")


@store_app.command("status")
def status(store: StoreOption = None) -> None:
    """Whether the server for a local store runs, and where (exit 3 when it does not)."""
    from spendscope.store import server

    with domain_errors():
        directory = _directory(store)
        state = server.running(directory)
    if state is None:
        typer.echo(f"no store server runs for {directory}")
        raise typer.Exit(3)
    typer.echo(
        f"the store server for {directory} runs: pid {state.pid}, {state.url}, ClickHouse {state.engine}, "
        f"since {state.started_at}"
    )
