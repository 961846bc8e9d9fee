"""The reconciler inside the collector (`spendscope collector --reconcile`): a convenience, one process
fewer to run. The collector runs `spendscope reconcile --watch` itself, on its own connection to the
store, with the same settings (SPENDSCOPE_RECONCILE_*, OPENAI_ADMIN_KEY, OPENAI_BASE_URL) and the same
/metrics address.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from spendscope.reconciler._command import Command, watch
from spendscope.store.errors import StoreError

_log = logging.getLogger("spendscope.reconciler")


def watch_command() -> Command:
    """`spendscope reconcile --watch`'s defaults: the last 3 days, settings from the environment."""
    return Command.resolve(
        since="3d",
        until=None,
        output="json",
        base_url=None,  # the SDK reads OPENAI_BASE_URL
        costs=True,
    )


@contextmanager
def reconciling(dsn: str, command: Command) -> Iterator[None]:
    """Reconcile every `command.interval` in a thread, on a connection of its own to `dsn`, until exit."""
    stop = threading.Event()
    worker = threading.Thread(
        target=_run, args=(dsn, command, stop), name="spendscope-reconciler", daemon=True
    )
    worker.start()
    try:
        yield
    finally:
        stop.set()
        worker.join(60)


def _run(dsn: str, command: Command, stop: threading.Event) -> None:
    from spendscope.store.store import open_store

    while not stop.is_set():
        try:
            store = open_store(dsn)
        except StoreError as exc:  # the collector spools meanwhile; try again next interval
            _log.error("reconciler: cannot open the store (%s); next try in %s", exc, command.interval)
            stop.wait(command.interval.total_seconds())
            continue
        try:
            # Each run's failures are logged by `watch`, which runs until `stop`; results go to /metrics.
            watch(command, store, echo=lambda text: _log.debug("%s", text), console=None, stop=stop)
        except Exception:  # e.g. the metrics address is taken: say so, the collector keeps collecting
            _log.exception("reconciler stopped")
            return
        finally:
            store.close()
