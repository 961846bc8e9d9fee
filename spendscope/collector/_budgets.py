"""The budget evaluator inside the collector (`spendscope collector --budgets FILE`): a convenience, one
process fewer to run. It does what `spendscope budgets` does, on a connection of its own to the
collector's store, and serves the same /metrics (`spendscope_budget_*`) at the same address, so
Prometheus' `spendscope-budgets` job and the budget alerts work unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from spendscope.budgets import BudgetConfig, BudgetEvaluator, BudgetSettings
from spendscope.collector._handle import StoreHandle, StoreUnavailable
from spendscope.store.errors import StoreError


class _HandleSource:
    """A budgets `Source` over a store handle of its own."""

    def __init__(self, handle: StoreHandle) -> None:
        self._handle = handle

    def run(self, name: str, params: Mapping[str, Any]) -> Any:
        with self._handle.lock:
            try:
                return self._handle.get().run(name, params)
            except StoreUnavailable as exc:  # counted and logged by the evaluator; the last result stays
                raise StoreError(f"store unavailable: {exc}") from exc


@contextmanager
def serving_budgets(handle: StoreHandle, config: BudgetConfig, settings: BudgetSettings) -> Iterator[str]:
    """Evaluate `config` every `settings.interval` on `handle` and serve the metrics on
    `settings.listen`; yields the metrics URL. Closes `handle` on exit."""
    evaluator = BudgetEvaluator(_HandleSource(handle), config)
    try:
        with evaluator.serving(settings.listen, settings.interval) as url:
            yield url
    finally:
        handle.close()
