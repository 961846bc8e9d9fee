"""The `spendscope budgets` process: evaluate every interval, serve /metrics for Prometheus. Its
settings (the budgets file, where to serve, how often) are `spendscope.settings.budgets.BudgetSettings`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, generate_latest, start_http_server

from spendscope.budgets._config import BudgetConfig
from spendscope.budgets._evaluate import Evaluation, Source, evaluate
from spendscope.budgets._metrics import BudgetMetrics
from spendscope.settings import ConfigurationError
from spendscope.store.errors import StoreError

log = logging.getLogger("spendscope.budgets")


class BudgetEvaluator:
    """Evaluates `config` against `source` and publishes the result on `registry`'s metrics."""

    def __init__(
        self,
        source: Source,
        config: BudgetConfig,
        *,
        registry: CollectorRegistry | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.source = source
        self.config = config
        self.registry = registry or CollectorRegistry()
        self.metrics = BudgetMetrics(self.registry)
        self._now = now

    def evaluate(self) -> Evaluation:
        """One evaluation, published; a store error is counted and re-raised (the last one stays)."""
        try:
            evaluation = evaluate(self.source, self.config, now=self._now)
        except StoreError:
            self.metrics.failed()
            raise
        self.metrics.publish(evaluation)
        return evaluation

    def exposition(self) -> str:
        """The metrics as Prometheus scrapes them (text format)."""
        return generate_latest(self.registry).decode()

    def run(self, stop: threading.Event, interval: float) -> None:
        """Evaluate now and then every `interval` seconds until `stop` is set; store errors are logged."""
        while not stop.is_set():
            try:
                evaluation = self.evaluate()
            except StoreError as exc:
                log.error("budget evaluation failed (the last result stays served): %s", exc)
            else:
                log.info(
                    "%d users evaluated in %.2fs: %d at or above the warning percentage, %d exported",
                    evaluation.users_evaluated,
                    evaluation.seconds,
                    evaluation.users_over_warning,
                    evaluation.users_exported,
                )
            stop.wait(interval)

    @contextmanager
    def serving(self, listen: tuple[str, int], interval: float) -> Iterator[str]:
        """Serve /metrics on `listen` (port 0: any free port) and evaluate in a thread; yields the
        metrics URL; stops both on exit."""
        host, port = listen
        try:
            server, server_thread = start_http_server(port, host, registry=self.registry)
        except OSError as exc:
            raise ConfigurationError(f"listen {host}:{port}: cannot serve there: {exc.strerror}") from None
        stop = threading.Event()
        worker = threading.Thread(
            target=self.run, args=(stop, interval), name="spendscope-budgets", daemon=True
        )
        worker.start()
        try:
            yield f"http://{host}:{server.server_port}/metrics"
        finally:
            stop.set()
            server.shutdown()
            server.server_close()
            server_thread.join(5)
            worker.join(60)
