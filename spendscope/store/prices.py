"""Prices as data (the model_prices table) and re-costing history (`spendscope reprice`).

Both use the same `Pricer` that prices spans, so the store and the instrumentation never disagree
about a price: genai-prices' catalogue, the user price file first.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from genai_prices import data_snapshot
from genai_prices.types import StartDateConstraint, TieredPrices

from spendscope.pricing import Pricer
from spendscope.pricing.rates import Rate
from spendscope.store.store import DEDUP_SETTINGS, Store
from spendscope.store.times import ch_time
from spendscope.usage import TokenUsage

# Priced into model_prices even before any call used them.
COMMON_MODELS = (
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-4.1",
    "gpt-4.1-mini",
    "gpt-4.1-nano",
    "o3",
    "o4-mini",
    "gpt-5",
    "gpt-5-mini",
    "gpt-5-nano",
    "text-embedding-3-small",
    "text-embedding-3-large",
)
_FIRST_DAY = date(2023, 1, 1)
_SCALE = Decimal("1e-18")  # llm_usage.cost_usd is Decimal(38, 18)
_PRICE_FIELDS = (  # model_prices column, genai-prices ModelPrice field
    ("input_mtok", "input_mtok"),
    ("cached_input_mtok", "cache_read_mtok"),
    ("cache_write_mtok", "cache_write_mtok"),
    ("output_mtok", "output_mtok"),
    ("input_audio_mtok", "input_audio_mtok"),
    ("output_audio_mtok", "output_audio_mtok"),
)
PRICE_COLUMNS = (
    "model",
    "service_tier",
    "effective_from",
    *(column for column, _ in _PRICE_FIELDS),
    "source",
    "loaded_at",
)


@dataclass(frozen=True, slots=True)
class PriceRow:
    model: str
    service_tier: str
    effective_from: date
    prices: tuple[Decimal | None, ...]  # in the order of _PRICE_FIELDS, USD per million tokens
    source: str


def _per_mtok(rate: Rate) -> tuple[Decimal | None, ...]:
    values: list[Decimal | None] = []
    for _, field in _PRICE_FIELDS:
        value = getattr(rate.model_price, field, None)
        if isinstance(value, TieredPrices):
            value = value.base  # the price below the first long-context tier
        values.append(None if value is None else Decimal(value) * rate.multiplier)
    return tuple(values)


def _start_days(pricer: Pricer, model: str) -> list[date]:
    """Every UTC day on which `model`'s price may change: genai-prices' and the price file's dates."""
    days = {_FIRST_DAY}
    try:
        _, info = data_snapshot.get_snapshot().find_provider_model(model, None, "openai", None)
    except LookupError:
        info = None
    if info is not None:
        constraints = [c.constraint for c in info.prices] if isinstance(info.prices, list) else []
        constraints += [v.constraint for v in info.price_variants or ()]
        days |= {c.start_date for c in constraints if isinstance(c, StartDateConstraint)}
    if pricer.price_file is not None:
        for rule in (*pricer.price_file.models, *pricer.price_file.discounts):
            if rule.effective_from is not None and rule.matches(model, rule.effective_from):
                days.add(rule.effective_from)
    return sorted(d for d in days if d >= _FIRST_DAY)


def price_rows(pricer: Pricer, model: str, service_tier: str = "") -> list[PriceRow]:
    """The price history of (model, tier) as rows: one per day its price changes. A model without a
    price gets one row of NULL prices (its cost is unknown, not 0)."""
    rows: list[PriceRow] = []
    for day in _start_days(pricer, model.lower()):
        at = datetime.combine(day, datetime.min.time(), UTC)
        rate = pricer.rate(model, at=at, service_tier=service_tier or None)
        prices = _per_mtok(rate) if rate is not None else (None,) * len(_PRICE_FIELDS)
        if rows and rows[-1].prices == prices:
            continue
        rows.append(PriceRow(model, service_tier, day, prices, rate.version if rate else "unknown"))
    return rows


def load_model_prices(store: Store, pricer: Pricer, *, models: Iterable[str] = COMMON_MODELS) -> int:
    """Write a new, complete generation of model_prices: the (model, tier) pairs seen in llm_usage,
    `models` and the exact model names of the price file; returns the number of rows written."""
    pairs = {(str(m), str(t)) for m, t in store.run("seen_models", {}).rows}
    pairs |= {(m, "") for m in models}
    if pricer.price_file is not None:
        pairs |= {(r.match, "") for r in pricer.price_file.models if not any(c in r.match for c in "*?[")}
    loaded_at = datetime.now(UTC)
    rows = [
        [r.model, r.service_tier, r.effective_from, *r.prices, r.source, loaded_at]
        for model, tier in sorted(pairs)
        for r in price_rows(pricer, model, tier)
    ]
    store.insert("model_prices", rows, PRICE_COLUMNS)
    return len(rows)


@dataclass(frozen=True, slots=True)
class RepriceResult:
    examined: int  # calls with usage in the range
    changed: int  # calls whose cost changed (newly_priced included)
    newly_priced: int  # calls that had no price and have one now
    still_unpriced: int  # calls that have no price, before and now
    kept: int  # priced calls the current prices cannot price (their cost is kept)


def _usage(row: dict[str, Any]) -> TokenUsage:
    seconds = float(row["audio_seconds"])
    return TokenUsage(
        input=int(row["input_tokens"]),
        output=int(row["output_tokens"]),
        cached_input=int(row["cached_input_tokens"]),
        cache_write_input=int(row["cache_write_input_tokens"]),
        reasoning=int(row["reasoning_tokens"]),
        input_audio=int(row["input_audio_tokens"]),
        output_audio=int(row["output_audio_tokens"]),
        audio_seconds=seconds if seconds > 0 else None,
    )


def repriced_rows(
    pricer: Pricer, columns: Sequence[str], rows: Iterable[Sequence[Any]], *, version: int
) -> tuple[list[list[Any]], RepriceResult]:
    """For each call whose cost changes: a cancelling row (sign -1, its old values and version) and its
    new row (sign 1, `version`). Pure, given the pricer."""
    out: list[list[Any]] = []
    examined = changed = newly = still = kept = 0
    index = {c: i for i, c in enumerate(columns)}
    for values in rows:
        examined += 1
        row = dict(zip(columns, values, strict=True))
        at = datetime.fromtimestamp(int(row["time_ns"]) / 1e9, UTC)
        price = pricer.price(
            str(row["model"]),
            _usage(row),
            at=at,
            service_tier=str(row["service_tier"]) or None,
            batch=bool(row["batch"]),
        )
        old = row["cost_usd"]
        if price is None:
            still += old is None
            kept += old is not None
            continue
        cost = price.cost_usd.quantize(_SCALE, rounding=ROUND_HALF_EVEN)
        if old is not None and Decimal(old) == cost:
            continue
        changed += 1
        newly += old is None
        cancel = list(values)
        cancel[index["sign"]] = -1
        new = list(values)
        new[index["cost_usd"]] = cost
        new[index["price_version"]] = price.version
        new[index["version"]] = max(version, int(row["version"]) + 1)
        out += [cancel, new]
    return out, RepriceResult(examined, changed, newly, still, kept)


def reprice(
    store: Store, pricer: Pricer, *, since: datetime, until: datetime, block_rows: int = 10_000
) -> RepriceResult:
    """Re-cost the calls of [since, until) with `pricer`; llm_usage and its rollups follow."""
    found = store.run("reprice_calls", {"since": ch_time(since), "until": ch_time(until)})
    rows, result = repriced_rows(pricer, found.columns, found.rows, version=time.time_ns())
    columns = ["time" if c == "time_ns" else c for c in found.columns]
    step = max(2, block_rows - block_rows % 2)  # a cancelling row and its new row go in the same block
    for start in range(0, len(rows), step):
        store.insert("llm_usage", rows[start : start + step], columns, settings=DEDUP_SETTINGS)
    load_model_prices(store, pricer)
    return result
