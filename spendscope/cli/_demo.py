"""`spendscope demo`: the main job on a store of its own, or the workload against a running collector."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated

import typer
from rich.console import Console

from spendscope.cli._app import (
    app,
    domain_errors,
    fail,
)
from spendscope.settings.collector import CollectorConfig


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
            "on a store of its own; OTEL_EXPORTER_OTLP_HEADERS carries its token"
        ),
    ] = None,
    every: Annotated[
        str | None,
        typer.Option(help="with --collector: run the workload again every interval (30s, 5m) until stopped"),
    ] = None,
    store: Annotated[
        str | None,
        typer.Option(
            help="keep the demo's store here, to query it afterwards: a directory (a local store), or "
            "http(s)://user:pass@host:8123/db [default: a temporary directory, removed at the end]"
        ),
    ] = None,
    serve: Annotated[
        bool,
        typer.Option(
            "--serve",
            help="after the report, keep the collector and its portal serving the demo's data until Ctrl-C",
        ),
    ] = False,
    listen: Annotated[
        str, typer.Option(help="with --serve: where the collector and the portal listen")
    ] = CollectorConfig.default_text("listen") or "",
) -> None:
    """Run the whole pipeline on local defaults: a collector on a local ClickHouse store (its server
    started for the demo and stopped after it), a local fake OpenAI server, and a realistic workload
    through the real openai client with SpendScope instrumenting it; then show what every tenant,
    feature, user and model cost."""
    if collector is not None:
        if store is not None:
            fail("--store and --collector do not go together: the collector has its own store")
        _demo_to_collector(collector.rstrip("/"), seed, every)
        return
    if every is not None:
        fail("--every needs --collector")
    from spendscope.collector import CollectorError
    from spendscope.demo.runner import DemoResult, run_demo

    def show_and_serve(result: DemoResult) -> None:
        _show(result, output)
        _wait_for_stop()

    with domain_errors():
        try:
            if serve:
                run_demo(seed=seed, store=store, listen=listen, serve=show_and_serve)
                return
            result = run_demo(seed=seed, store=store)
        except CollectorError as exc:
            fail(str(exc))
    _show(result, output)


def _show(result: object, output: Format) -> None:
    from spendscope.demo.report import render, to_json
    from spendscope.demo.runner import DemoResult

    assert isinstance(result, DemoResult)
    if output is Format.json:
        typer.echo(json.dumps(to_json(result), indent=2))
        return
    console = Console()
    if not console.is_terminal:  # piped: do not squeeze the tables into 80 columns
        console = Console(width=160)
    render(result, console)


def _wait_for_stop() -> None:
    """Until Ctrl-C or SIGTERM."""
    import signal
    import sys
    import threading

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    sys.stdout.flush()
    try:
        while not stop.wait(1.0):
            pass
    except KeyboardInterrupt:
        return


def _demo_to_collector(url: str, seed: int, every: str | None) -> None:
    """`demo --collector`: the workload only, exported to a running collector (docker compose's demo)."""
    import signal
    import threading

    from spendscope.demo.external import CollectorUnreachable, check_collector, parse_every, send_rounds
    from spendscope.pricing import PriceFile
    from spendscope.settings.app import PriceSettings

    try:
        interval = parse_every(every) if every is not None else None
        if (prices := PriceSettings.resolve().price_file) is not None:
            PriceFile.load(prices)  # the services price their calls with it: a bad one stops the demo here
        check_collector(url)
    except (ValueError, CollectorUnreachable) as exc:  # ValueError: ConfigurationError and PriceFileError too
        fail(str(exc))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())  # docker stop: finish the round, flush, exit 0
    try:
        calls = send_rounds(url, seed=seed, every=interval, stop=stop, echo=typer.echo)
    except KeyboardInterrupt:
        return
    typer.echo(f"{calls} calls sent to {url}: see them in its store and on its /metrics")
