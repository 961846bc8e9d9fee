"""The collector's rollup builder: `spendscope.store.rollups.build_rollups` every `interval` seconds,
on a store connection of its own, and what it finds reported as metrics."""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from spendscope.collector._handle import StoreHandle
from spendscope.collector._telemetry import Health

if TYPE_CHECKING:
    from spendscope.pricing import Pricer

_log = logging.getLogger("spendscope.collector")

# What the store took without a value or refused, and calls whose client cost disagrees, over a day.
_REJECTED = (
    "SELECT reason, count() FROM llm_usage_rejected FINAL WHERE time >= now64(9) - toIntervalDay(1) "
    "GROUP BY reason"
)
_MISMATCH = (
    "SELECT sum(cost_mismatch_calls) FROM usage("
    "grain = 'hour', since = now64(9) - toIntervalDay(1), until = now64(9) + toIntervalHour(1))"
)


class RollupRunner:
    def __init__(
        self, store: StoreHandle, health: Health, interval: float, pricer: Pricer | None = None
    ) -> None:
        """`pricer`: the collector's, which names seen for the first time are priced with."""
        self.store = store
        self.health = health
        self.interval = interval
        self.pricer = pricer
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.interval > 0 and self._thread is None:
            self._stop = threading.Event()
            self._thread = threading.Thread(
                target=self._loop, args=(self._stop,), name="spendscope-rollups", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        """Stop the loop and wait for a build under way (safe if never started, and twice)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _loop(self, stop: threading.Event) -> None:
        while not stop.wait(self.interval):
            self.run_once()

    def run_once(self) -> None:
        from spendscope.store.rollups import build_rollups

        try:
            with self.store.lock:
                store = self.store.get()
                result = build_rollups(store, self.pricer)  # type: ignore[arg-type]
                rejected = store.query(_REJECTED).rows
                [[mismatched]] = store.query(_MISMATCH).rows
        except Exception as exc:  # the store may be down: the next run tries again
            self.health.rollup_builds.labels("failed").inc()
            _log.warning("spendscope collector: building rollups failed: %s", str(exc).splitlines()[0][:300])
            return
        self.health.rollup_builds.labels("ok").inc()
        self.health.rollup_last_success.set(time.time())
        for grain, count in result.buckets.items():
            self.health.rollup_buckets.labels(grain).inc(count)
        self.health.store_rejected.clear()
        for reason, count in rejected:
            self.health.store_rejected.labels(str(reason)).set(int(count))
        self.health.store_cost_mismatch.set(int(mismatched or 0))
        if result.resolved is not None and result.resolved.names:
            _log.info(
                "spendscope collector: priced %d new model names (%d with a price), %d calls priced again",
                result.resolved.names,
                result.resolved.priced,
                result.resolved.calls,
            )
