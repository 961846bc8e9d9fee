"""`Collector`: the receiver, the pipeline to the store and the HTTP server, started and stopped as one.

    with Collector(CollectorConfig.resolve(listen="127.0.0.1:0", store="/tmp/x")) as c:
        ...  # send OTLP to c.url

`start()` claims the spool, starts the local store's server if the store is a directory and none runs
(`LocalServer`), opens the store, applies its migrations and loads model_prices from genai-prices and
the price file (if it cannot, it keeps serving and spools), and replays a spool left by an earlier run.
`stop()` stops taking requests and writes what is queued (or spools it); a store server it started
keeps running.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import tempfile
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager, ExitStack
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from prometheus_client import CollectorRegistry

from spendscope.collector import _otlp
from spendscope.collector._app import make_app
from spendscope.collector._handle import Store, StoreHandle
from spendscope.collector._memory import allocator_in_use, tune_allocator
from spendscope.collector._metrics import MetricsState
from spendscope.collector._otlp import BadRequest
from spendscope.collector._pipeline import Pipeline
from spendscope.collector._rollups import RollupRunner
from spendscope.collector._server import HttpServer
from spendscope.collector._spans import request_spans
from spendscope.collector._spool import Spool, SpoolInUse
from spendscope.collector._telemetry import Health
from spendscope.collector._wal import Wal, frames
from spendscope.pricing import PriceFile, Pricer
from spendscope.settings.collector import CollectorConfig
from spendscope.settings.reports import ReportSettings
from spendscope.settings.store import StoreSettings
from spendscope.store.errors import StoreError
from spendscope.store.records import SpanRecord

_log = logging.getLogger("spendscope.collector")
WAL_DIR = "wal"  # in the spool directory
GC_THRESHOLD = (10_000, 10, 10)


class CollectorError(Exception):
    """The collector cannot start: the message says why, in one line."""


class LocalServer:
    """The local store server a collector depends on (spendscope/store/server.py). `prepare` starts it
    with the collector when none runs; `revive`, called before each connection is opened, starts it
    again when it died without stopping (SIGKILL, a crash: its state file is left behind), but not after
    `spendscope store stop` (the collector spools until the server runs again)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lock = threading.Lock()

    def prepare(self) -> None:
        from spendscope.store import server

        with self._lock:
            started = server.prepare(self.directory, create=True)
        state = started.state
        if started.started:
            _log.info(
                "spendscope collector: started the store server for %s (pid %d, %s); it keeps running "
                "after the collector stops (`spendscope store stop` stops it)",
                self.directory,
                state.pid,
                state.url,
            )
        else:
            _log.info(
                "spendscope collector: store server for %s: pid %d, %s", self.directory, state.pid, state.url
            )

    def revive(self) -> None:
        from spendscope.store import server

        with self._lock:
            if server.running(self.directory) is not None:
                return
            dead = server.stale(self.directory)
            if dead is None:
                return  # stopped on purpose: the connection fails, the batches are spooled
            started = server.start(self.directory)
            _log.warning(
                "spendscope collector: the store server for %s (pid %d) had died; started it again "
                "(pid %d, %s)",
                self.directory,
                dead.pid,
                started.state.pid,
                started.state.url,
            )


class _MetricsCollector:
    """prometheus-client's custom-collector interface over the re-exposed metrics."""

    def __init__(self, state: MetricsState) -> None:
        self._state = state

    def collect(self) -> Any:
        return self._state.collect()


class Collector:
    """An OTLP/HTTP collector writing spans to the store and serving metrics and reports."""

    def __init__(
        self,
        config: CollectorConfig | None = None,
        *,
        store: Store | None = None,
        budgets: Path | None = None,
    ) -> None:
        """`store`: an already open store to use (and not close), for tests; by default the collector
        opens `config.store` itself. `budgets`: the budgets file whose budgets at or over their warning
        the portal's overview lists (`spendscope collector --budgets`)."""
        self.config = config or CollectorConfig.resolve()
        self.budgets = budgets
        # Settings read later (on migrating, on each report): a bad one stops the start instead.
        StoreSettings.resolve()
        ReportSettings.resolve()
        price_file = self.config.price_file
        self.pricer = Pricer(PriceFile.load(price_file) if price_file is not None else None)
        self.registry = CollectorRegistry()
        self.health = Health(self.registry)
        self.metrics = MetricsState(limits=self.config.limits)
        self.registry.register(_MetricsCollector(self.metrics))
        try:
            self.spool = Spool(self.config.spool_dir)
        except OSError as exc:
            raise CollectorError(
                f"cannot use the spool directory {self.config.spool_dir}: {exc.strerror}"
            ) from None
        directory = self.config.store_dir
        self.local = LocalServer(directory) if directory is not None and store is None else None
        self._given = store
        if store is None:
            self.store = StoreHandle(self._open_store)
            extra = range(self.config.writers - 1)
            self._writer_stores = [StoreHandle(self._open_writer_store) for _ in extra]
        else:  # one connection: the writers take turns on it
            given = store
            self.store = StoreHandle(lambda: self._prepared(given), owned=False)
            self._writer_stores = [self.store] * (self.config.writers - 1)
        self.wal = Wal(self.config.spool_dir / WAL_DIR)
        self.pipeline = Pipeline(
            self.store,
            self.spool,
            self.wal,
            self.health,
            queue_spans=self.config.queue_spans,
            queue_bytes=self.config.queue_bytes,
            batch_spans=self.config.batch_spans,
            flush_interval=self.config.flush_interval,
            spool_max_bytes=self.config.spool_max_bytes,
            writer_stores=self._writer_stores,
        )
        # the rollup builder and the reports on connections of their own (the store given, for tests)
        self.rollups = RollupRunner(self.handle(), self.health, self.config.rollup_interval, self.pricer)
        self.reports = self.handle()
        self._server: HttpServer | None = None
        self._claimed = False

    def handle(self) -> StoreHandle:
        """A handle on a connection of its own (on the store given, for tests), opened when first
        used; close it after use."""
        return StoreHandle(self._open_writer_store) if self._given is None else self.store

    def _open_store(self) -> Store:
        from spendscope.store.store import open_store

        if self.local is not None:
            self.local.revive()
        store = open_store(self.config.store)
        try:
            return self._prepared(store)
        except BaseException:
            store.close()
            raise

    def _prepared(self, store: Any) -> Store:
        """`store` migrated, with a new generation of model_prices from the collector's pricer
        (genai-prices and the price file), as `spendscope migrate` leaves it."""
        from spendscope.store.prices import load_prices

        store.migrate(prices=False)
        load_prices(store, self.pricer)
        result: Store = store
        return result

    def _open_writer_store(self) -> Store:
        """Another connection (used once the first has migrated the store)."""
        from spendscope.store.store import open_store

        if self.local is not None:
            self.local.revive()
        store: Store = open_store(self.config.store)
        return store

    # --- lifecycle ----------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the collector is not started")
        host, port = self._server.address
        if host in ("0.0.0.0", ""):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def start(self) -> Collector:
        """Start serving; on failure, stop what was started and raise `CollectorError`."""
        if self._server is not None:
            return self
        try:
            self.spool.claim()
        except SpoolInUse as exc:
            raise CollectorError(str(exc)) from None
        self._claimed = True
        host, port = self.config.listen
        try:
            self._server = HttpServer(make_app(self, self.registry), host, port)
        except OSError as exc:
            self.stop()
            raise CollectorError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        try:
            self._check_data_dir()
            self._recover_log()
            if self.local is not None:
                try:
                    self.local.prepare()
                except StoreError as exc:
                    raise CollectorError(str(exc)) from None
            if not self.pipeline.start():
                _log.warning(
                    "spendscope collector: store unavailable (%s); accepting spans into the spool %s until "
                    "it is",
                    self.store.last_error,
                    self.spool.directory,
                )
            self._server.start()
            self.rollups.start()
        except BaseException:
            self.stop()
            raise
        _log.info(
            "spendscope collector on %s: OTLP/HTTP at %s/v1/traces and /v1/metrics, Prometheus at %s/metrics"
            " (memory allocator: %s)",
            self.url,
            self.url,
            self.url,
            allocator_in_use(),
        )
        return self

    def stop(self) -> None:
        """Stop serving (the requests in flight are answered first), write or spool everything
        accepted, close the store. Stops only what started (safe after a failed start, and twice)."""
        if self._server is not None:
            self._server.stop()
        self.rollups.stop()
        self.pipeline.stop()
        self.wal.close()
        for handle in (self.rollups.store, self.reports, self.store, *self._writer_stores):
            handle.close()
        if self._claimed:
            self.spool.release()
            self._claimed = False
        self._server = None

    def __enter__(self) -> Collector:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def serve_forever(self, *alongside: Callable[[Collector], AbstractContextManager[Any]]) -> None:
        """Run until SIGTERM or SIGINT, then stop cleanly (for the command line). `alongside`: services
        entered once the collector has started and left before it stops (the budget evaluator)."""
        done = threading.Event()

        def on_signal(signum: int, frame: FrameType | None) -> None:
            _log.info("spendscope collector: %s, flushing and stopping", signal.Signals(signum).name)
            done.set()

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            tune_allocator()
            self.start()
            _tune_garbage_collection()
            with ExitStack() as services:
                for service in alongside:
                    services.enter_context(service(self))
                done.wait()
        finally:
            self.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _recover_log(self) -> None:
        """Open the write-ahead log; spool the requests a previous process logged (acknowledged) and
        may not have written. A segment with a request that no longer decodes is moved to the spool's
        corrupt/ (kept for a person to look at), never dropped."""
        try:
            self.wal.open()
        except OSError as exc:
            raise CollectorError(
                f"cannot use the write-ahead log {self.wal.directory}: {exc.strerror}"
            ) from None
        for path in self.wal.leftover():
            records: list[SpanRecord] = []
            try:
                for body, kind in frames(path):
                    records += request_spans(_otlp.traces_request(body, kind)).records
            except BadRequest as exc:
                target = self.spool.directory / "corrupt" / path.name
                target.parent.mkdir(exist_ok=True)
                os.replace(path, target)
                self.health.spool_corrupt.inc()
                _log.error(
                    "spendscope collector: %s no longer decodes (%s); moved to %s", path.name, exc, target
                )
                self.wal.discard(path)
                continue
            try:
                for start in range(0, len(records), self.config.batch_spans):
                    self.spool.write(records[start : start + self.config.batch_spans])
            except OSError as exc:
                raise CollectorError(
                    f"cannot spool what the write-ahead log {path} holds: {exc.strerror or exc}"
                ) from None
            self.wal.discard(path)
            if records:
                _log.warning(
                    "spendscope collector: spooled %d spans a previous run acknowledged (from %s)",
                    len(records),
                    path.name,
                )

    def _check_data_dir(self) -> None:
        """A local store's directory exists (created if need be) and this process can write to it."""
        directory = self.config.store_dir
        if directory is None:
            return
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CollectorError(f"cannot create the store directory {directory}: {exc.strerror}") from None
        try:
            with tempfile.TemporaryFile(dir=directory):
                pass
        except OSError as exc:
            raise CollectorError(f"cannot write to the store directory {directory}: {exc.strerror}") from None


def _tune_garbage_collection() -> None:
    """For the collector's own process (`serve_forever`, which the command runs; never a process that
    imports SpendScope), where the cyclic collector's defaults cost 13-26% more CPU per span (19-34 µs
    on the embedded store: bench/README.md, Garbage collection): spans wait in the queue long enough
    to reach the oldest generation, so collections keep walking the queue, and the import-time objects
    besides, while decoding makes and drops many objects. Objects from start-up are moved out of its
    way (`gc.freeze`) and the young generation holds 10,000 objects, not 700. The older generations
    keep their ratios: the rows clickhouse-connect's InsertContext keeps in a reference cycle after an
    insert are freed within seconds (at 50,000 and rarer full collections, RSS grew by 0.25 GiB a
    minute)."""
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)
