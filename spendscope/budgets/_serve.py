"""The `spendscope budgets` process: evaluate every interval, serve /metrics for Prometheus.

Settings (explicit argument > environment > default; a bad value raises ConfigurationError naming it):

| setting  | environment                   | default          |
|----------|-------------------------------|------------------|
| config   | SPENDSCOPE_BUDGETS_CONFIG     | ./budgets.yaml   |
| listen   | SPENDSCOPE_BUDGETS_LISTEN     | 127.0.0.1:9465   |
| interval | SPENDSCOPE_BUDGETS_INTERVAL   | 60s              |
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest, start_http_server

from spendscope.budgets._config import BudgetConfig
from spendscope.budgets._evaluate import Evaluation, Source, evaluate
from spendscope.budgets._metrics import BudgetMetrics
from spendscope.settings import ConfigurationError
from spendscope.store.errors import StoreError

log = logging.getLogger("spendscope.budgets")

DEFAULT_CONFIG = "budgets.yaml"
DEFAULT_LISTEN = "127.0.0.1:9465"
DEFAULT_INTERVAL = "60s"
_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_listen(raw: str) -> tuple[str, int]:
    host, sep, port = raw.strip().rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError("must be HOST:PORT, such as 127.0.0.1:9465")
    return host.strip("[]") or "127.0.0.1", int(port)


def parse_interval(raw: str) -> float:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*", raw)
    if not match:
        raise ValueError("must be a duration such as 60s, 5m or 1h")
    seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if not 1 <= seconds <= 3600:
        raise ValueError("must be between 1s and 1h")
    return seconds


def _setting(name: str, env: str, explicit: str | None, default: str) -> tuple[str, str]:
    if explicit is not None:
        return explicit, f"--{name}"
    if env in os.environ:
        return os.environ[env], env
    return default, "the default"


@dataclass(frozen=True, slots=True)
class BudgetSettings:
    config: Path
    listen: tuple[str, int]
    interval: float

    @classmethod
    def resolve(
        cls, *, config: str | None = None, listen: str | None = None, interval: str | None = None
    ) -> BudgetSettings:
        config_raw, _ = _setting("config", "SPENDSCOPE_BUDGETS_CONFIG", config, DEFAULT_CONFIG)
        listen_raw, listen_from = _setting("listen", "SPENDSCOPE_BUDGETS_LISTEN", listen, DEFAULT_LISTEN)
        interval_raw, interval_from = _setting(
            "interval", "SPENDSCOPE_BUDGETS_INTERVAL", interval, DEFAULT_INTERVAL
        )
        try:
            parsed_listen = parse_listen(listen_raw)
        except ValueError as exc:
            raise ConfigurationError(f"listen ({listen_from}) {listen_raw!r}: {exc}") from None
        try:
            parsed_interval = parse_interval(interval_raw)
        except ValueError as exc:
            raise ConfigurationError(f"interval ({interval_from}) {interval_raw!r}: {exc}") from None
        return cls(Path(config_raw).expanduser(), parsed_listen, parsed_interval)


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
