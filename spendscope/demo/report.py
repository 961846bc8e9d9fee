"""Summarise captured LLM spans into the cost tables the demo prints."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from spendscope import names as n


@dataclass
class Row:
    key: str
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    unpriced_calls: int = 0
    usage_unavailable: int = 0
    errors: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "calls": self.calls,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": str(self.cost_usd),
            "cost_complete": self.unpriced_calls == 0,  # False: some calls have no known price
            "unpriced_calls": self.unpriced_calls,
            "usage_unavailable": self.usage_unavailable,
            "errors": self.errors,
        }


def _add(row: Row, attrs: Mapping[str, Any]) -> None:
    row.calls += 1
    if n.ERROR_TYPE in attrs:
        row.errors += 1
        return
    if attrs.get(n.USAGE_STATE) == n.USAGE_STATE_UNAVAILABLE:
        row.usage_unavailable += 1
        return
    row.input_tokens += int(attrs.get(n.USAGE_INPUT_TOKENS, 0))
    row.output_tokens += int(attrs.get(n.USAGE_OUTPUT_TOKENS, 0))
    if n.COST_USD in attrs:
        # repr of the float is the shortest string that round-trips: the Decimal the span was given
        row.cost_usd += Decimal(repr(attrs[n.COST_USD]))
    else:
        row.unpriced_calls += 1


def summarize(spans: Iterable[Mapping[str, Any]], attribute: str | None) -> list[Row]:
    """One row per value of `attribute` (None: one total row), most expensive first."""
    rows: dict[str, Row] = {}
    for attrs in spans:
        if attribute == n.RESPONSE_MODEL:
            key = str(attrs.get(n.RESPONSE_MODEL) or attrs.get(n.REQUEST_MODEL, "?"))
        else:
            key = "total" if attribute is None else str(attrs.get(attribute, "(none)"))
        _add(rows.setdefault(key, Row(key)), attrs)
    return sorted(rows.values(), key=lambda r: (-r.cost_usd, r.key))


def money(value: Decimal) -> str:
    return f"${value:,.6f}"


def cost_text(row: Row) -> str:
    """The row's cost; calls without a known price are shown as unknown, never as $0."""
    priced = row.calls - row.errors - row.usage_unavailable - row.unpriced_calls
    if not row.unpriced_calls:
        return money(row.cost_usd) if priced else "-"  # "-": only failed or usage-less calls
    return f"{money(row.cost_usd)} + unknown" if priced else "unknown"
