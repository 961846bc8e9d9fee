"""`spendscope reconcile`: one run (for cron or a Kubernetes CronJob) or `--watch` on a schedule.

Exit status: 0 when coverage is at or above the threshold, 3 when it is below, 1 on an error (a
missing or refused admin key, an API that could not be read to the end, a store error). A failed run
is recorded as failed and never as a result.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from spendscope.reconciler._errors import ReconcileError
from spendscope.reconciler._fetch import AdminAPI, RetryPolicy
from spendscope.reconciler._metrics import ReconcileMetrics
from spendscope.reconciler._model import ReconciliationResult
from spendscope.reconciler._render import print_summary, to_csv, to_json
from spendscope.reconciler._run import ReconcileOptions, Reconciler
from spendscope.settings._base import Given
from spendscope.settings.reconcile import ReconcileSettings

EXIT_OK: Final = 0
EXIT_ERROR: Final = 1
EXIT_BELOW_THRESHOLD: Final = 3
_log = logging.getLogger("spendscope.reconciler")


@dataclass(frozen=True)
class Command:
    """The resolved options of one `spendscope reconcile` invocation."""

    since: str
    until: str | None
    output: str  # table | csv | json
    min_coverage: float
    usage_settle: timedelta
    costs_settle: timedelta
    bucket_width: str
    interval: timedelta
    retry: RetryPolicy
    page_bytes: int
    metrics_file: Path | None
    metrics_listen: tuple[str, int] | None
    base_url: str | None
    costs: bool

    @classmethod
    def resolve(
        cls,
        *,
        since: str,
        until: str | None,
        output: str,
        base_url: str | None,
        costs: bool,
        given: Given = "argument",
        **explicit: Any,
    ) -> Command:
        """The command of these arguments; the settings in `explicit` (ReconcileSettings; None: not
        given) fall back to the environment, then to their defaults."""
        settings = ReconcileSettings.resolve(given=given, **explicit)
        return cls(
            since=since,
            until=until,
            output=output,
            min_coverage=settings.min_coverage,
            usage_settle=settings.usage_settle,
            costs_settle=settings.costs_settle,
            bucket_width=settings.bucket_width,
            interval=settings.interval,
            retry=RetryPolicy(retries=settings.max_retries, max_wait=settings.max_retry_wait),
            page_bytes=settings.page_bytes,
            metrics_file=settings.metrics_file,
            metrics_listen=settings.metrics_listen,
            base_url=base_url,
            costs=costs,
        )

    def options(self, now: datetime) -> ReconcileOptions:
        from spendscope.store.times import parse_range

        start, end = parse_range(self.since, self.until, now=now)
        if self.bucket_width == "1h":  # relative starts (`3d`) land on a bucket boundary
            start = start.replace(minute=0, second=0, microsecond=0)
        return ReconcileOptions(
            since=start,
            until=end,
            bucket_width=self.bucket_width,
            usage_settle=self.usage_settle,
            costs_settle=self.costs_settle,
            min_coverage=self.min_coverage,
            page_bytes=self.page_bytes,
            costs=self.costs,
        )


def emit(result: ReconciliationResult, output: str, echo: Callable[[str], None], console: Any) -> None:
    import json

    if output == "json":
        echo(json.dumps(to_json(result), indent=2))
    elif output == "csv":
        echo(to_csv(result).rstrip("\n"))
    else:
        print_summary(result, console)


def run_once(
    command: Command,
    store: Any,
    *,
    echo: Callable[[str], None],
    console: Any,
    metrics: ReconcileMetrics | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> int:
    metrics = metrics or ReconcileMetrics()
    now = clock()
    try:
        with AdminAPI(base_url=command.base_url, retry=command.retry) as api:
            result = Reconciler(store, api, clock=clock).run(command.options(now))
    except ReconcileError:
        metrics.failed(clock())
        _write_metrics(command, metrics)
        raise
    metrics.observe(result)
    _write_metrics(command, metrics)
    emit(result, command.output, echo, console)
    return EXIT_OK if result.passed else EXIT_BELOW_THRESHOLD


def watch(
    command: Command,
    store: Any,
    *,
    echo: Callable[[str], None],
    console: Any,
    stop: threading.Event | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    on_listen: Callable[[int], None] | None = None,
) -> int:
    """Run every `interval` until SIGTERM/SIGINT (or `stop`); a failed run is logged and the next one
    tried. Serves /metrics on `metrics_listen`."""
    from spendscope.settings import ConfigurationError
    from spendscope.store.errors import ReportError, StoreError

    stop = stop or threading.Event()
    metrics = ReconcileMetrics()
    server = None
    if command.metrics_listen is not None:
        from prometheus_client import start_http_server

        host, port = command.metrics_listen
        server, _ = start_http_server(port, addr=host, registry=metrics.registry)
        _log.info("serving reconciliation metrics on http://%s:%d/metrics", host, server.server_port)
        if on_listen is not None:
            on_listen(server.server_port)
    previous = _handle_signals(stop)
    try:
        while not stop.is_set():
            try:
                run_once(command, store, echo=echo, console=console, metrics=metrics, clock=clock)
            except (ReconcileError, StoreError, ReportError, ConfigurationError) as exc:
                _log.error("reconciliation failed: %s", exc)
            stop.wait(command.interval.total_seconds())
    finally:
        _restore_signals(previous)
        if server is not None:
            server.shutdown()
            server.server_close()
    return EXIT_OK


def _write_metrics(command: Command, metrics: ReconcileMetrics) -> None:
    if command.metrics_file is not None:
        from prometheus_client import write_to_textfile

        command.metrics_file.parent.mkdir(parents=True, exist_ok=True)
        write_to_textfile(str(command.metrics_file), metrics.registry)


def _handle_signals(stop: threading.Event) -> dict[int, Any]:
    previous: dict[int, Any] = {}
    if threading.current_thread() is not threading.main_thread():
        return previous
    for signum in (signal.SIGTERM, signal.SIGINT):
        previous[signum] = signal.signal(signum, lambda *_: stop.set())
    return previous


def _restore_signals(previous: dict[int, Any]) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler)
