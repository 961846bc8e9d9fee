"""`Collector`: the receiver, the pipeline to the store and the HTTP server, started and stopped as one.

    with Collector(CollectorConfig.resolve(listen="127.0.0.1:0", store="chdb:///tmp/x")) as c:
        ...  # send OTLP to c.url

`start()` opens the store, applies its migrations and loads model_prices from genai-prices and the price
file (if it cannot, it keeps serving and spools), replays a spool left by an earlier run, and writes
`<chdb dir>/collector.json` so the CLI can find it. `stop()` stops taking requests, writes what is
queued (or spools it), and removes the file.
"""

from __future__ import annotations

import gc
import json
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

from spendscope.collector._app import make_app
from spendscope.collector._config import CollectorConfig
from spendscope.collector._handle import Store, StoreHandle
from spendscope.collector._metrics import MetricsState
from spendscope.collector._pipeline import Pipeline
from spendscope.collector._rollups import RollupRunner
from spendscope.collector._server import HttpServer
from spendscope.collector._spool import Spool
from spendscope.collector._telemetry import Health
from spendscope.pricing import PriceFile, Pricer

_log = logging.getLogger("spendscope.collector")
DISCOVERY_FILE = "collector.json"
GC_THRESHOLD = (10_000, 10, 10)


class CollectorError(Exception):
    """The collector cannot start: the message says why, in one line."""


class _MetricsCollector:
    """prometheus-client's custom-collector interface over the re-exposed metrics."""

    def __init__(self, state: MetricsState) -> None:
        self._state = state

    def collect(self) -> Any:
        return self._state.collect()


class Collector:
    """An OTLP/HTTP collector writing spans to the store and serving metrics and reports."""

    def __init__(self, config: CollectorConfig | None = None, *, store: Store | None = None) -> None:
        """`store`: an already open store to use (and not close), for tests; by default the collector
        opens `config.store` itself."""
        self.config = config or CollectorConfig.resolve()
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
        if store is None:
            self.store = StoreHandle(self._open_store)
            extra = range(self.config.writers - 1)
            self._writer_stores = [StoreHandle(self._open_writer_store) for _ in extra]
        else:  # one connection: the writers take turns on it
            given = store
            self.store = StoreHandle(lambda: self._prepared(given), owned=False)
            self._writer_stores = [self.store] * (self.config.writers - 1)
        self.pipeline = Pipeline(
            self.store,
            self.spool,
            self.health,
            queue_spans=self.config.queue_spans,
            queue_bytes=self.config.queue_bytes,
            batch_spans=self.config.batch_spans,
            flush_interval=self.config.flush_interval,
            spool_max_bytes=self.config.spool_max_bytes,
            writer_stores=self._writer_stores,
        )
        # the rollup builder on a connection of its own (the store it was given, for tests)
        rollup_store = self.store if store is not None else StoreHandle(self._open_writer_store)
        self.rollups = RollupRunner(rollup_store, self.health, self.config.rollup_interval, self.pricer)
        self._server: HttpServer | None = None
        self._discovery: Path | None = None

    def _open_store(self) -> Store:
        from spendscope.store.store import open_store

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
        """Another connection for another writer (used once the first has migrated the store)."""
        from spendscope.store.store import open_store

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
        self._check_discovery()
        host, port = self.config.listen
        try:
            self._server = HttpServer(make_app(self, self.registry), host, port)
        except OSError as exc:
            raise CollectorError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        try:
            self._check_data_dir()
            if not self.pipeline.start():
                _log.warning(
                    "spendscope collector: store unavailable (%s); accepting spans into the spool %s until "
                    "it is",
                    self.store.last_error,
                    self.spool.directory,
                )
            self._server.start()
            self.rollups.start()
            self._write_discovery()
        except BaseException:
            self.stop()
            raise
        _log.info(
            "spendscope collector on %s: OTLP/HTTP at %s/v1/traces and /v1/metrics, Prometheus at %s/metrics",
            self.url,
            self.url,
            self.url,
        )
        return self

    def stop(self) -> None:
        """Stop serving (the requests in flight are answered first), write or spool everything
        accepted, close the store. Stops only what started (safe after a failed start, and twice)."""
        if self._server is not None:
            self._server.stop()
        self.rollups.stop()
        if self.rollups.store is not self.store:
            self.rollups.store.close()
        self.pipeline.stop()
        self.store.close()
        for handle in self._writer_stores:
            handle.close()
        self._remove_discovery()
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

    # --- discovery file -----------------------------------------------------------------------------

    def _discovery_path(self) -> Path | None:
        directory = self.config.chdb_dir
        return None if directory is None else directory / DISCOVERY_FILE

    def _check_discovery(self) -> None:
        path = self._discovery_path()
        if path is None:
            return
        other = read_discovery(path)
        if other is not None and other.get("pid") != os.getpid():
            raise CollectorError(
                f"another spendscope collector (pid {other.get('pid')}, {other.get('url')}) serves the "
                f"store {path.parent}: stop it, or give this one another store"
            )

    def _check_data_dir(self) -> None:
        """The chdb directory exists (created if need be) and this process can write to it."""
        directory = self.config.chdb_dir
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

    def _write_discovery(self) -> None:
        path = self._discovery_path()
        if path is None:
            return
        info = {"url": self.url, "pid": os.getpid(), "token_required": self.config.token is not None}
        tmp = path.with_name(f".{DISCOVERY_FILE}.{os.getpid()}")
        try:
            tmp.write_text(json.dumps(info) + "\n")
            os.replace(tmp, path)
        except OSError as exc:
            raise CollectorError(f"cannot write {path}: {exc.strerror}") from None
        self._discovery = path

    def _remove_discovery(self) -> None:
        if self._discovery is None:
            return
        current = read_discovery(self._discovery)
        if current is not None and current.get("pid") == os.getpid():
            self._discovery.unlink(missing_ok=True)
        self._discovery = None


def _tune_garbage_collection() -> None:
    """For the collector's own process, where the cyclic collector's defaults cost a third of the CPU per
    span (bench/README.md, Ingest): spans wait in the queue long enough to reach the oldest
    generation, so collections keep walking the queue, and the import-time objects besides, while
    decoding makes and drops many objects. Objects from start-up are moved out of its way
    (`gc.freeze`) and the young generation holds 10,000 objects, not 700. The older generations keep
    their ratios: the rows clickhouse-connect's InsertContext keeps in a reference cycle after an
    insert are freed within seconds (at 50,000 and rarer full collections, RSS grew by 0.25 GiB a
    minute)."""
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)


def read_discovery(path: Path) -> dict[str, Any] | None:
    """A running collector's collector.json, or None (missing, unreadable, or its process is gone)."""
    try:
        info = json.loads(path.read_text())
        pid = int(info["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(info, dict) or not _alive(pid):
        return None
    return info


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
