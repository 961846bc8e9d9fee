"""From accepted spans to the store: the dedup window, the bounded queue, batching, the spool.

    HTTP threads --offer()--> queue --writer thread--> store.insert_spans(batch, dedup_token)
                                                   \\--> spool (store unavailable) --replayer thread--> store

- `offer` drops spans whose (trace_id, span_id) was accepted recently (a retried export), then takes
  the rest only if they fit the queue (spans and bytes); otherwise nothing is taken and the caller
  answers 503. Taken spans are in the queue or, later, in the spool: never only in flight.
- The writer cuts batches of `batch_spans` (or what is there after `flush_interval`), names each by
  a dedup token (sha256 of its sorted span keys) and inserts it; if the store fails, the batch goes
  to the spool with its token and the store is marked down; while it is down, batches go straight
  to the spool.
- The replayer opens the store, or retries the spool's oldest batch, with backoff; once that
  succeeds the store is up again and it drains the spool, oldest first, while the writer inserts
  new batches. `stop()` drains the queue (into the store, or the spool).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from spendscope.collector._spool import Spool, SpoolError
from spendscope.collector._telemetry import Health
from spendscope.store.records import SpanRecord

_log = logging.getLogger("spendscope.collector")

RETRY_MIN_S = 0.25
RETRY_MAX_S = 5.0
REFUSED_ATTEMPTS = 3  # a batch the store refuses this often while answering queries is set aside


class Store(Protocol):
    """What the collector uses of `spendscope.store.Store`."""

    def insert_spans(self, records: Sequence[SpanRecord], *, dedup_token: str) -> None: ...

    def run(self, name: str, params: Mapping[str, Any]) -> Any: ...

    def query(self, sql: str, params: Mapping[str, Any] | None = None) -> Any: ...

    def close(self) -> None: ...


class StoreUnavailable(Exception):
    """The store could not be opened or used; details in the message."""


class StoreHandle:
    """Opens the store lazily (and again after failures) and serializes access to it."""

    def __init__(self, opener: Callable[[], Store], *, owned: bool = True) -> None:
        self._opener = opener
        self._owned = owned
        self._store: Store | None = None
        self.lock = threading.RLock()
        self.last_error = ""

    def get(self) -> Store:
        """The open store; opens it if needed. Call with `lock` held."""
        if self._store is None:
            try:
                self._store = self._opener()
            except Exception as exc:
                self.last_error = _one_line(exc)
                raise StoreUnavailable(self.last_error) from exc
        return self._store

    def insert(self, records: Sequence[SpanRecord], dedup_token: str) -> None:
        with self.lock:
            store = self.get()
            try:
                store.insert_spans(records, dedup_token=dedup_token)
            except Exception as exc:
                self.last_error = _one_line(exc)
                raise StoreUnavailable(self.last_error) from exc

    def answers(self) -> bool:
        """Whether the store opens and answers a trivial query (this tells a down store from a
        refused batch)."""
        with self.lock:
            try:
                self.get().query("SELECT 1")
            except Exception as exc:
                if not isinstance(exc, StoreUnavailable):
                    self.last_error = _one_line(exc)
                return False
        return True

    def close(self) -> None:
        with self.lock:
            if self._store is not None and self._owned:
                self._store.close()
            self._store = None


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


class DedupWindow:
    """Recently accepted span keys in two generations (no per-key bookkeeping): remembers the last
    size/2 to size keys."""

    def __init__(self, size: int) -> None:
        self._half = max(size // 2, 1)
        self._enabled = size > 0
        self._new: set[bytes] = set()
        self._old: set[bytes] = set()

    def __contains__(self, key: bytes) -> bool:
        return key in self._new or key in self._old

    def add_all(self, keys: Sequence[bytes]) -> None:
        if not self._enabled:
            return
        self._new.update(keys)
        if len(self._new) >= self._half:
            self._old = self._new
            self._new = set()


def dedup_token(keys: Sequence[bytes]) -> str:
    """The batch's name for ClickHouse insert deduplication: the same spans give the same token."""
    digest = hashlib.sha256()
    for key in sorted(keys):
        digest.update(key)
    return digest.hexdigest()


@dataclass
class _Chunk:
    records: list[SpanRecord]
    keys: list[bytes]
    nbytes: int
    enqueued: float


@dataclass(frozen=True)
class Offer:
    accepted: int
    duplicates: int
    full: bool = False


class Pipeline:
    def __init__(
        self,
        store: StoreHandle,
        spool: Spool,
        health: Health,
        *,
        queue_spans: int,
        queue_bytes: int,
        batch_spans: int,
        flush_interval: float,
        spool_max_bytes: int,
        dedup_window: int,
    ) -> None:
        self.store = store
        self.spool = spool
        self.health = health
        self.queue_spans = queue_spans
        self.queue_bytes = queue_bytes
        self.batch_spans = batch_spans
        self.flush_interval = flush_interval
        self.spool_max_bytes = spool_max_bytes
        self._window = DedupWindow(dedup_window)
        self._queue: deque[_Chunk] = deque()
        self._queued_spans = 0  # in the queue plus the batch being written
        self._queued_bytes = 0
        self._cond = threading.Condition()
        self._stopping = False
        self._writer_done = False
        self._store_up = False  # set by the first successful insert or replay
        self._wake_replayer = threading.Event()
        self._refusals: dict[str, int] = {}
        self._writer = threading.Thread(target=self._write_loop, name="spendscope-writer", daemon=True)
        self._replayer = threading.Thread(target=self._replay_loop, name="spendscope-replayer", daemon=True)
        self._update_gauges()

    # --- intake -------------------------------------------------------------------------------------

    def offer(self, records: list[SpanRecord], keys: list[bytes], nbytes: int) -> Offer:
        """Take spans into the queue, all or none (besides duplicates)."""
        with self._cond:
            if self._stopping:
                return Offer(0, 0, full=True)
            fresh_records: list[SpanRecord] = []
            fresh_keys: list[bytes] = []
            seen: set[bytes] = set()
            window = self._window
            for record, key in zip(records, keys, strict=True):
                if key in window or key in seen:
                    continue
                seen.add(key)
                fresh_records.append(record)
                fresh_keys.append(key)
            duplicates = len(records) - len(fresh_records)
            if not fresh_records:
                return Offer(0, duplicates)
            size = nbytes * len(fresh_records) // max(len(records), 1)
            over_spans = self._queued_spans + len(fresh_records) > self.queue_spans
            over_bytes = self._queued_bytes + size > self.queue_bytes
            # An empty queue takes any one request, so a request larger than the queue still gets in.
            if (over_spans or over_bytes) and self._queued_spans > 0:
                return Offer(0, 0, full=True)
            if self._spool_full():
                return Offer(0, 0, full=True)
            window.add_all(fresh_keys)
            was_empty = not self._queue
            self._queue.append(_Chunk(fresh_records, fresh_keys, size, time.monotonic()))
            self._queued_spans += len(fresh_records)
            self._queued_bytes += size
            if was_empty or self._queued_spans >= self.batch_spans:
                self._cond.notify_all()  # the writer starts its flush timer, or cuts a full batch
        self._update_gauges()
        return Offer(len(fresh_records), duplicates)

    def _spool_full(self) -> bool:
        return bool(self.spool_max_bytes) and not self._store_up and self.spool.bytes >= self.spool_max_bytes

    def retry_after(self) -> int:
        """Seconds a refused exporter should wait: about the time to write what is queued."""
        return 1 if self._store_up else 5

    # --- lifecycle ----------------------------------------------------------------------------------

    def start(self) -> bool:
        """Open the store (applying migrations), start the threads. False if the store is down."""
        up = self._probe()
        self._writer.start()
        self._replayer.start()
        self._wake_replayer.set()
        return up

    def stop(self, timeout: float = 60.0) -> None:
        """Write (or spool) everything queued, then stop the threads."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._wake_replayer.set()
        self._writer.join(timeout)
        self._replayer.join(timeout)

    @property
    def store_up(self) -> bool:
        return self._store_up

    @property
    def queued_spans(self) -> int:
        return self._queued_spans

    def _update_gauges(self) -> None:
        self.health.queue_spans.set(self._queued_spans)
        self.health.queue_bytes.set(self._queued_bytes)
        self.health.spool_bytes.set(self.spool.bytes)
        self.health.spool_batches.set(self.spool.files)
        self.health.store_up.set(1 if self._store_up else 0)

    # --- writer -------------------------------------------------------------------------------------

    def _next_batch(self) -> tuple[list[SpanRecord], list[bytes], int] | None:
        """Wait for a full batch, the flush interval, or stop. None when stopped and drained."""
        with self._cond:
            while True:
                if self._queue:
                    age = time.monotonic() - self._queue[0].enqueued
                    if self._queued_spans >= self.batch_spans or age >= self.flush_interval or self._stopping:
                        break
                    self._cond.wait(self.flush_interval - age)
                elif self._stopping:
                    return None
                else:
                    self._cond.wait()
            records: list[SpanRecord] = []
            keys: list[bytes] = []
            nbytes = 0
            while self._queue and len(records) < self.batch_spans:
                chunk = self._queue[0]
                room = self.batch_spans - len(records)
                if len(chunk.records) <= room:
                    self._queue.popleft()
                    records += chunk.records
                    keys += chunk.keys
                    nbytes += chunk.nbytes
                else:  # split the chunk
                    share = chunk.nbytes * room // len(chunk.records)
                    records += chunk.records[:room]
                    keys += chunk.keys[:room]
                    nbytes += share
                    self._queue[0] = _Chunk(
                        chunk.records[room:], chunk.keys[room:], chunk.nbytes - share, chunk.enqueued
                    )
            return records, keys, nbytes

    def _write_loop(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                self._writer_done = True
                self._wake_replayer.set()  # let it finish the spool and see that the writer is done
                return
            records, keys, nbytes = batch
            token = dedup_token(keys)
            try:
                self._write(records, token)
            except Exception:  # never die: the spans are still counted as queued until written
                _log.exception("spendscope collector: writing a batch failed unexpectedly")
                time.sleep(RETRY_MIN_S)
                with self._cond:
                    self._queue.appendleft(_Chunk(records, keys, nbytes, time.monotonic()))
                continue
            with self._cond:
                self._queued_spans -= len(records)
                self._queued_bytes -= nbytes
                self._cond.notify_all()
            self._update_gauges()

    def _write(self, records: list[SpanRecord], token: str) -> None:
        if self._store_up:
            started = time.perf_counter()
            try:
                self.store.insert(records, token)
            except StoreUnavailable as exc:
                if not self.store.answers():
                    self._store_down(exc)
                else:  # the store is up but refused this batch: the replayer retries it, then sets it aside
                    self.health.store_errors.inc()
                    _log.warning("spendscope collector: the store refused a batch, spooling it: %s", exc)
            else:
                self.health.insert_seconds.observe(time.perf_counter() - started)
                self.health.written.inc(len(records))
                return
        self.spool.write(records, token)  # OSError propagates: the batch stays queued, retried
        self.health.spooled.inc(len(records))
        self._wake_replayer.set()

    def _store_down(self, exc: Exception) -> None:
        if self._store_up:
            _log.warning(
                "spendscope collector: store unavailable, spooling to %s: %s", self.spool.directory, exc
            )
        self._store_up = False
        self.health.store_errors.inc()
        self._update_gauges()

    # --- replayer -----------------------------------------------------------------------------------

    def _replay_loop(self) -> None:
        delay = RETRY_MIN_S
        while True:
            self._wake_replayer.wait(delay if not self._store_up or self.spool.files else None)
            self._wake_replayer.clear()
            stopping = self._stopping
            delay = RETRY_MIN_S if self._replay_all() else min(delay * 2, RETRY_MAX_S)
            if stopping and self._writer_done:
                if self._store_up:
                    self._replay_all()  # what the writer spooled while stopping
                return

    def _replay_all(self) -> bool:
        """Insert spooled batches oldest first. True if the store is up and the spool empty."""
        if not self._store_up and not self._probe():
            return False  # no need to read a batch back before the store opens
        for path in self.spool.paths():
            try:
                batch = self.spool.read(path)
            except SpoolError:
                self.health.spool_corrupt.inc()
                continue
            except FileNotFoundError:
                continue
            started = time.perf_counter()
            try:
                self.store.insert(batch.records, batch.dedup_token)
            except StoreUnavailable as exc:
                if not self.store.answers():
                    self._store_down(exc)
                    return False
                self._refused(path, exc)
                continue
            self.health.insert_seconds.observe(time.perf_counter() - started)
            self.health.written.inc(len(batch.records))
            self.health.replayed.inc(len(batch.records))
            self.spool.remove(path)
            self._mark_up()
        return True

    def _refused(self, path: Path, exc: Exception) -> None:
        """The store answers but refuses this batch: after a few tries, move it to refused/ (kept,
        never deleted: an operator can move it back once the cause is fixed)."""
        self.health.store_errors.inc()
        attempts = self._refusals.get(path.name, 0) + 1
        self._refusals[path.name] = attempts
        if attempts < REFUSED_ATTEMPTS:
            return
        self._refusals.pop(path.name, None)
        target = self.spool.set_aside(path, "refused")
        self.health.refused_batches.inc()
        _log.error(
            "spendscope collector: the store refused batch %s %d times (%s); moved to %s",
            path.name,
            attempts,
            exc,
            target,
        )

    def _probe(self) -> bool:
        """Open the store if needed (applying migrations) and ask it a trivial query."""
        if not self.store.answers():
            return False
        self._mark_up()
        return True

    def _mark_up(self) -> None:
        if not self._store_up:
            _log.info("spendscope collector: store available")
        self._store_up = True
        self._update_gauges()
