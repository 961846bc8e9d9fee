"""From accepted spans to the store: the bounded queue, batching, the spool.

    HTTP handlers --write-ahead log, offer()--> queue --writer threads--> store (batch)
                                                 \\--> spool (store down) --replayer thread--> store

- `reserve` makes room in the queue for a request's spans if they fit (spans, and the memory their
  rows take as estimated when they were decoded: `DecodedSpans.nbytes`); otherwise nothing is taken and
  the caller answers 503. The room is held from then on, while the request is written to the
  write-ahead log (`_wal.py`), so the rows of every request past `reserve` are within `queue_bytes`;
  `offer` then puts them in it (or `unreserve` gives the room back). Once a batch of them is in the
  store or the spool, the log lets go of them (`Wal.settle`), and the process gives its free memory
  back to the system (`_memory.release_free_memory`).
  A span sent again (a retried export, a replay) is simply written again: the store counts each span
  once however often it arrives (see clickhouse/migrations/0001_baseline.sql), so the collector keeps
  no memory of the spans it has seen.
- Writers (`writers` threads, each with its own store connection) cut batches of `batch_spans` (or
  what is there after `flush_interval`, or once a share of `queue_bytes` waits) and insert them. A
  failure is the store's (down, disk full, out of memory, too many parts, read-only:
  `_handle.RESOURCE_ERRORS`) or the batch's (a value the store refuses). The store's: the batch goes
  to the spool and the store is marked down until a replay succeeds; while it is down, batches go
  straight to the spool. The batch's: it is split in halves until the spans the store refuses are
  alone (`_sift`); the others are written, the refused ones set aside in the spool's `refused/` with
  the store's reason, counted by reason.
- The replayer opens the store, or retries the spool's oldest batch, with backoff; once that
  succeeds the store is up again and it drains the spool, oldest first, while the writers insert
  new batches. `stop()` drains the queue (into the store, or the spool).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from spendscope.collector._handle import Store, StoreHandle, StoreUnavailable
from spendscope.collector._memory import release_free_memory
from spendscope.collector._spool import Spool, SpoolError
from spendscope.collector._telemetry import Health
from spendscope.collector._wal import Wal
from spendscope.store.records import SpanRecord

__all__ = ["Offer", "Pipeline", "Store", "StoreHandle", "StoreUnavailable"]

_log = logging.getLogger("spendscope.collector")

RETRY_MIN_S = 0.25
RETRY_MAX_S = 5.0


@dataclass
class _Chunk:
    """Spans in the queue (`keys` parallel to `records`), and the log segments they are in
    (segment, spans)."""

    records: list[SpanRecord]
    keys: list[bytes]
    nbytes: int
    enqueued: float
    logged: list[tuple[int, int]]


@dataclass(frozen=True)
class Offer:
    accepted: int
    full: bool = False
    unlogged: bool = False  # full because the write-ahead log could not be written


class Pipeline:
    def __init__(
        self,
        store: StoreHandle,
        spool: Spool,
        wal: Wal,
        health: Health,
        *,
        queue_spans: int,
        queue_bytes: int,
        batch_spans: int,
        flush_interval: float,
        spool_max_bytes: int,
        writer_stores: Sequence[StoreHandle] = (),
    ) -> None:
        """`store` serves the replayer (and the first writer); each of `writer_stores` one more
        writer."""
        self.store = store
        self.spool = spool
        self.wal = wal
        self.health = health
        self.queue_spans = queue_spans
        self.queue_bytes = queue_bytes
        self.batch_spans = batch_spans
        self.flush_interval = flush_interval
        self.spool_max_bytes = spool_max_bytes
        self._queue: deque[_Chunk] = deque()
        self._queued_spans = 0  # reserved, in the queue, or in a batch being written
        self._queued_bytes = 0  # the memory of their rows, as estimated when decoded
        self._waiting_spans = 0  # in the queue only
        self._waiting_bytes = 0
        # a batch is cut once this much waits: the queue then holds a batch for each writer and room
        # for requests to arrive meanwhile, however few spans `queue_bytes` allows
        self._batch_bytes = queue_bytes // (len(writer_stores) + 2)
        self._cond = threading.Condition()
        self._stopping = False
        self._writers_done = 0
        self._store_up = False  # set by the first successful insert or replay
        self._wake_replayer = threading.Event()
        self._writers = [
            threading.Thread(
                target=self._write_loop, args=(handle,), name=f"spendscope-writer-{n}", daemon=True
            )
            for n, handle in enumerate([store, *writer_stores])
        ]
        self._replayer = threading.Thread(target=self._replay_loop, name="spendscope-replayer", daemon=True)
        self._update_gauges()

    # --- intake -------------------------------------------------------------------------------------

    @property
    def full(self) -> bool:
        """Whether the queue is full (a request arriving now would not fit, whatever it holds)."""
        with self._cond:
            over = self._queued_spans >= self.queue_spans or self._queued_bytes >= self.queue_bytes
            return self._stopping or over or self._spool_full()

    def reserve(self, spans: int, nbytes: int) -> bool:
        """Hold room in the queue for `spans` whose rows take `nbytes`, if they fit: then `offer` or
        `unreserve` them."""
        with self._cond:
            if self._stopping or not self._room(spans, nbytes):
                return False
            self._queued_spans += spans
            self._queued_bytes += nbytes
        return True

    def unreserve(self, spans: int, nbytes: int) -> None:
        with self._cond:
            self._queued_spans -= spans
            self._queued_bytes -= nbytes
            drained = self._queued_spans == 0
        if drained:
            release_free_memory()

    def offer(self, records: list[SpanRecord], keys: list[bytes], nbytes: int, segment: int) -> Offer:
        """Put spans, reserved and logged in `segment` of the write-ahead log, into the queue: all, or
        none when the pipeline is stopping (then the log lets go of them at once)."""
        with self._cond:
            taken = not self._stopping
            if taken and records:
                chunk = _Chunk(list(records), list(keys), nbytes, time.monotonic(), [(segment, len(keys))])
                self._enqueue(chunk)
        if not taken:
            self.unreserve(len(keys), nbytes)
            self.wal.settle(segment, len(keys))
            return Offer(0, full=True)
        self._update_gauges()
        return Offer(len(records))

    def _room(self, spans: int, nbytes: int) -> bool:
        over_spans = self._queued_spans + spans > self.queue_spans
        over_bytes = self._queued_bytes + nbytes > self.queue_bytes
        # An empty queue takes any one request, so a request larger than the queue still gets in.
        if (over_spans or over_bytes) and self._queued_spans > 0:
            return False
        return not self._spool_full()

    def _enqueue(self, chunk: _Chunk) -> None:
        """Queue a chunk whose room is reserved (counted in `_queued_spans` and `_queued_bytes`)."""
        was_empty = not self._queue
        self._queue.append(chunk)
        self._waiting_spans += len(chunk.keys)
        self._waiting_bytes += chunk.nbytes
        if was_empty or self._full_batch():
            self._cond.notify_all()  # a writer starts its flush timer, or cuts a full batch

    def _spool_full(self) -> bool:
        return bool(self.spool_max_bytes) and not self._store_up and self.spool.bytes >= self.spool_max_bytes

    def retry_after(self) -> int:
        """Seconds a refused exporter should wait: about the time to write what is queued."""
        return 1 if self._store_up else 5

    # --- lifecycle ----------------------------------------------------------------------------------

    def start(self) -> bool:
        """Open the store (applying migrations), start the threads. False if the store is down."""
        up = self._probe()
        for writer in self._writers:
            writer.start()
        self._replayer.start()
        self._wake_replayer.set()
        return up

    def stop(self, timeout: float = 60.0) -> None:
        """Write (or spool) everything queued, then stop the threads."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._wake_replayer.set()
        for thread in (*self._writers, self._replayer):
            if thread.ident is not None:  # started (a failed start may leave some unstarted)
                thread.join(timeout)

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

    def _next_batch(self) -> _Chunk | None:
        """Wait for a full batch, the flush interval, or stop. None when stopped and drained."""
        with self._cond:
            while True:
                if self._queue:
                    age = time.monotonic() - self._queue[0].enqueued
                    if self._full_batch() or age >= self.flush_interval or self._stopping:
                        break
                    self._cond.wait(self.flush_interval - age)
                elif self._stopping:
                    return None
                else:
                    self._cond.wait()
            batch = self._cut()
            self._waiting_spans -= len(batch.keys)
            self._waiting_bytes -= batch.nbytes
            return batch

    def _full_batch(self) -> bool:
        return self._waiting_spans >= self.batch_spans or self._waiting_bytes >= self._batch_bytes

    def _cut(self) -> _Chunk:
        """The next batch off the queue (a chunk split to fit)."""
        batch = _Chunk([], [], 0, self._queue[0].enqueued, [])
        while self._queue and len(batch.keys) < self.batch_spans:
            chunk = self._queue[0]
            room = self.batch_spans - len(batch.keys)
            if len(chunk.records) <= room:
                self._queue.popleft()
                batch.records += chunk.records
                batch.keys += chunk.keys
                batch.nbytes += chunk.nbytes
                batch.logged += chunk.logged
            else:  # split the chunk
                share = chunk.nbytes * room // len(chunk.records)
                batch.records += chunk.records[:room]
                batch.keys += chunk.keys[:room]
                batch.nbytes += share
                batch.logged += _take(chunk.logged, room)
                records, keys = chunk.records[room:], chunk.keys[room:]
                left = chunk.logged  # what `_take` left
                self._queue[0] = _Chunk(records, keys, chunk.nbytes - share, chunk.enqueued, left)
        return batch

    def _write_loop(self, handle: StoreHandle) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                with self._cond:
                    self._writers_done += 1
                self._wake_replayer.set()  # let it finish the spool and see that the writers are done
                return
            try:
                self._write(handle, batch)
            except Exception:  # never die: the spans are still counted as queued until written
                _log.exception("spendscope collector: writing a batch failed unexpectedly")
                time.sleep(RETRY_MIN_S)
                with self._cond:
                    batch.enqueued = time.monotonic()
                    self._queue.appendleft(batch)
                    self._waiting_spans += len(batch.keys)
                    self._waiting_bytes += batch.nbytes
                continue
            for segment, spans in batch.logged:
                self.wal.settle(segment, spans)
            with self._cond:
                self._queued_spans -= len(batch.keys)
                self._queued_bytes -= batch.nbytes
                self._cond.notify_all()
            del batch  # not kept while waiting for the next one
            self._update_gauges()
            # The batch's rows are garbage now, some of it in a reference cycle of clickhouse-connect's
            # insert context that only a full collection frees: collect after every batch, not only once
            # the queue drains, or under a steady load RSS creeps up (bench/README.md#ingest).
            release_free_memory()

    def _write(self, handle: StoreHandle, batch: _Chunk) -> None:
        if self._store_up:
            started = time.perf_counter()
            try:
                self._insert(handle, batch.records)
                self.health.insert_seconds.observe(time.perf_counter() - started)
                return
            except StoreUnavailable as exc:
                try:
                    if not exc.content:
                        raise
                    self._sift(handle, batch.records, exc)
                    return
                except StoreUnavailable as down:
                    self._store_down(down)
        self.spool.write(batch.records)  # OSError: stays queued, retried
        self.health.spooled.inc(len(batch.keys))
        self._wake_replayer.set()

    def _insert(self, handle: StoreHandle, records: list[SpanRecord]) -> None:
        """Insert spans (counted as written); raises StoreUnavailable."""
        handle.insert(records)
        self.health.written.inc(len(records))

    def _sift(self, handle: StoreHandle, records: list[SpanRecord], refusal: StoreUnavailable) -> int:
        """The store refused `records` for their content: write the spans it takes, set aside those it
        refuses alone (in refused/, by reason); how many it refused. Raises StoreUnavailable if the
        store itself fails meanwhile (the batch is then kept whole: what was written is counted once
        when written again)."""
        self.health.store_errors.inc()
        refused: dict[str, list[SpanRecord]] = {}
        pending = [(records, refusal)]
        while pending:
            part, error = pending.pop()
            if len(part) == 1:
                refused.setdefault(error.reason, []).append(part[0])
                continue
            middle = len(part) // 2
            for half in (part[:middle], part[middle:]):
                try:
                    self._insert(handle, half)
                except StoreUnavailable as exc:
                    if not exc.content:
                        raise
                    pending.append((half, exc))
        for reason, spans in refused.items():
            target = self.spool.write_refused(spans, reason)  # OSError: the batch stays where it is
            self.health.refused.labels(reason).inc(len(spans))
            _log.error(
                "spendscope collector: the store refused %d span(s) of a batch of %d (%s: %s); set aside "
                "in %s, the rest written",
                len(spans),
                len(records),
                reason,
                refusal,
                target,
            )
        return sum(len(spans) for spans in refused.values())

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
            if stopping and self._writers_done == len(self._writers):
                if self._store_up:
                    self._replay_all()  # what the writers spooled while stopping
                return

    def _replay_all(self) -> bool:
        """Insert spooled batches oldest first. True if the store is up and the spool empty. The store
        is up again once a batch is written (a store that answers queries may still refuse writes: a
        full disk), or once it answers with nothing left to write."""
        if not self._store_up and not self.store.answers():
            return False  # no need to read a batch back before the store opens
        for path in self.spool.paths():
            try:
                batch = self.spool.read(path)
            except SpoolError:
                self.health.spool_corrupt.inc()
                continue
            except FileNotFoundError:
                continue
            started, refused = time.perf_counter(), 0
            try:
                try:
                    self._insert(self.store, batch.records)
                    self.health.insert_seconds.observe(time.perf_counter() - started)
                except StoreUnavailable as exc:
                    if not exc.content:
                        raise
                    refused = self._sift(self.store, batch.records, exc)
            except StoreUnavailable as down:
                self._store_down(down)
                return False
            self.health.replayed.inc(len(batch.records) - refused)
            self.spool.remove(path)
            self._mark_up()
        self._mark_up()
        return True

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


def _take(logged: list[tuple[int, int]], spans: int) -> list[tuple[int, int]]:
    """Split `spans` off the front of `logged` (in place): the segments of the spans taken."""
    taken: list[tuple[int, int]] = []
    while spans:
        segment, count = logged[0]
        share = min(count, spans)
        taken.append((segment, share))
        spans -= share
        if share == count:
            logged.pop(0)
        else:
            logged[0] = (segment, count - share)
    return taken
