"""Prices as data (the model_prices table), names resolved as calls bring them, and `spendscope reprice`.

The store prices every call itself, in SQL (llm_usage_mv in clickhouse/migrations/0001_baseline.sql),
from rows written here by the same `Pricer` that prices spans in the instrumentation (genai-prices'
catalogue, the user price file first), so the two never disagree:

- `load_prices` writes a generation of rows for every name genai-prices knows for OpenAI, in every
  service tier it prices apart and for the Batch API, plus the names calls have brought since; then
  publishes it. It runs when the store is migrated and the price data (genai-prices, the price file)
  differs from what the store holds.
- `resolve_seen_models` gives the names calls carried that the store has no row for (a dated name,
  a fine-tuned model matched by a price-file glob) their rows, and prices those calls again.
- `reprice` re-costs a time range with the current prices.

A price again is a new row of the call (a higher version) through the same view: no second pricing path.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import genai_prices
from genai_prices import data_snapshot
from genai_prices.types import StartDateConstraint

from spendscope.pricing import Pricer
from spendscope.pricing.rates import USAGE_FIELDS, Segment, segments
from spendscope.store.store import Store
from spendscope.store.times import ch_time

_log = logging.getLogger("spendscope")

_PROVIDER = "openai"
_FIRST_DAY = date(1970, 1, 1)  # the first row of a name applies from here: every call finds one
_SCALE = Decimal("1e-24")  # model_prices' per-unit columns are Decimal(38, 24)
# Prices above this (USD per million tokens, per call or per audio hour) are refused: with at most 10^8
# tokens of each kind per call, no sum of costs can then overflow (see llm_calls_in_mv).
MAX_PRICE = Decimal(10_000)
# model_prices columns holding USD per token of each TokenUsage count, in the order of USAGE_FIELDS
_PER_TOKEN_COLUMNS = (
    "per_input",
    "per_cached_input",
    "per_cache_write_input",
    "per_input_audio",
    "per_cached_input_audio",
    "per_output",
    "per_output_audio",
    "per_reasoning",
)
PRICE_COLUMNS = (
    "generation",
    "model",
    "service_tier",
    "batch",
    "effective_from",
    "priced",
    "tier_above",
    "per_call",
    *_PER_TOKEN_COLUMNS,
    "per_audio_hour",
    "price_version",
)
_PRICE_TYPES = (
    "UInt64",
    "LowCardinality(String)",
    "LowCardinality(String)",
    "Bool",
    "Date",
    "Bool",
    "Array(UInt64)",
    *("Array(Decimal(38, 24))",) * (len(_PER_TOKEN_COLUMNS) + 2),
    "LowCardinality(String)",
)
assert len(USAGE_FIELDS) == len(_PER_TOKEN_COLUMNS)


@dataclass(frozen=True, slots=True)
class PriceRow:
    model: str
    service_tier: str
    batch: bool
    effective_from: date
    segments: tuple[Segment, ...] | None  # None: no price (the call's cost is unknown, not 0)
    version: str

    def values(self, generation: int) -> list[Any]:
        parts = self.segments or ()
        return [
            generation,
            self.model,
            self.service_tier,
            self.batch,
            self.effective_from,
            self.segments is not None,
            [s.above for s in parts[1:]],
            [s.per_call for s in parts],
            *([s.per_token[i] for s in parts] for i in range(len(USAGE_FIELDS))),
            [s.per_audio_hour for s in parts],
            self.version if self.segments is not None else "",
        ]


# --- what genai-prices knows (pure) --------------------------------------------------------------------
def _equal_names(clause: Any) -> Iterable[str]:
    """The exact names a genai-prices match clause accepts (its `equals`, through `or`)."""
    if hasattr(clause, "equals"):
        yield str(clause.equals)
    for part in getattr(clause, "or_", None) or ():
        yield from _equal_names(part)


def catalogue_names(pricer: Pricer) -> set[str]:
    """Every OpenAI model name genai-prices matches exactly, and the price file's exact names."""
    snapshot = data_snapshot.get_snapshot()
    names: set[str] = set()
    for provider in snapshot.providers:
        if provider.id == _PROVIDER:
            for model in provider.models:
                names.add(model.id)
                names.update(_equal_names(model.match))
    if pricer.price_file is not None:
        names |= {r.match for r in pricer.price_file.models if not any(c in r.match for c in "*?[")}
    return {name.lower() for name in names}


def catalogue_tiers(pricer: Pricer) -> set[str]:
    """Service tiers genai-prices (or the price file) prices apart, and '' (none given)."""
    tiers = {"", "default"}
    for provider in data_snapshot.get_snapshot().providers:
        for model in provider.models:
            for variant in model.price_variants or ():
                if "service_tier" in variant.when:
                    tiers.add(variant.when["service_tier"])
    if pricer.price_file is not None:
        tiers |= {r.service_tier for r in pricer.price_file.models if r.service_tier}
    return tiers


def _start_days(pricer: Pricer, model: str) -> list[date]:
    """Every UTC day on which `model`'s price may change: genai-prices' and the price file's dates."""
    days = {_FIRST_DAY}
    try:
        _, info = data_snapshot.get_snapshot().find_provider_model(model, None, _PROVIDER, None)
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
    return sorted(days)


def _storable(parts: tuple[Segment, ...], model: str) -> bool:
    values = [v for s in parts for v in (s.per_call, s.per_audio_hour, *(t * 1_000_000 for t in s.per_token))]
    if any(abs(v) > MAX_PRICE for v in values):
        _log.warning("spendscope: the price of %s is above %s: it is not applied", model, MAX_PRICE)
        return False
    if any(v != v.quantize(_SCALE) for s in parts for v in (s.per_call, s.per_audio_hour, *s.per_token)):
        _log.warning("spendscope: the price of %s has more than 24 decimals per token: not applied", model)
        return False
    return True


def price_rows(pricer: Pricer, model: str, service_tier: str = "", batch: bool = False) -> list[PriceRow]:
    """The price history of (model, tier, batch) as rows: one per UTC day its price changes. A model
    without a price gets one row saying so."""
    name = model.lower()
    tier = "" if batch else service_tier
    rows: list[PriceRow] = []
    for day in _start_days(pricer, name):
        at = datetime(day.year, day.month, day.day, tzinfo=UTC)
        terms = pricer.terms(name, at=at, service_tier=tier or None, batch=batch)
        parts = _segments(terms.model_price, terms.multiplier) if terms is not None else None
        if parts is not None and not _storable(parts, name):
            parts = None
        row = PriceRow(name, tier, batch, day, parts, terms.version if terms is not None else "")
        if rows and (rows[-1].segments, rows[-1].version) == (row.segments, row.version):
            continue
        rows.append(row)
    return rows


_SEGMENTS: dict[tuple[str, Decimal], tuple[Segment, ...] | None] = {}


def _segments(model_price: Any, multiplier: Decimal) -> tuple[Segment, ...] | None:
    """`segments`, computed once per distinct price (many names and tiers share one)."""
    key = (repr(model_price), multiplier)
    if key not in _SEGMENTS:
        if len(_SEGMENTS) > 4096:
            _SEGMENTS.clear()
        _SEGMENTS[key] = segments(model_price, multiplier)
    return _SEGMENTS[key]


def signature(pricer: Pricer) -> str:
    """What the store's price rows were computed from: a different one means they must be loaded again."""
    snapshot = data_snapshot.get_snapshot()
    updated = f" (updated {snapshot.timestamp:%Y-%m-%dT%H:%M:%S})" if snapshot.from_auto_update else ""
    price_file = f"; {pricer.price_file.version}" if pricer.price_file is not None else ""
    return f"genai-prices {genai_prices.__version__}{updated}{price_file}; rows v1"


_CATALOGUES: dict[str, tuple[PriceRow, ...]] = {}


def catalogue_rows(pricer: Pricer) -> tuple[PriceRow, ...]:
    """The rows of every catalogue name in every tier; computed once per process and price data (about
    0.15 s: thousands of names and tiers)."""
    key = signature(pricer)
    if key not in _CATALOGUES:
        tiers = sorted(catalogue_tiers(pricer))
        names = sorted(catalogue_names(pricer))
        keys = [(name, tier, False) for name in names for tier in tiers] + [
            (name, "", True) for name in names
        ]
        _CATALOGUES.clear()
        _CATALOGUES[key] = tuple(row for k in keys for row in price_rows(pricer, *k))
    return _CATALOGUES[key]


# --- I/O ---------------------------------------------------------------------------------------------------
def current_generation(store: Store) -> tuple[int, str]:
    rows = store.query("SELECT generation, signature FROM price_generations ORDER BY generation DESC LIMIT 1")
    return (int(rows.rows[0][0]), str(rows.rows[0][1])) if rows.rows else (0, "")


def _keys(store: Store, generation: int) -> set[tuple[str, str, bool]]:
    rows = store.query(
        "SELECT DISTINCT model, service_tier, batch FROM model_prices WHERE generation = {g:UInt64}",
        {"g": generation},
    )
    return {(str(m), str(t), bool(b)) for m, t, b in rows.rows}


def _seen(store: Store) -> set[tuple[str, str, bool]]:
    rows = store.query(
        "SELECT model, service_tier, batch FROM llm_models_seen FINAL WHERE (model, service_tier, batch) "
        "NOT IN (SELECT model, service_tier, batch FROM model_prices_current)"
    )
    return {(str(m), str(t), bool(b)) for m, t, b in rows.rows}


def _insert_rows(store: Store, rows: Sequence[PriceRow], generation: int) -> None:
    # one block: a reading view sees all of these rows or none
    store.insert(
        "model_prices",
        [row.values(generation) for row in rows],
        PRICE_COLUMNS,
        column_type_names=_PRICE_TYPES,
        settings={"max_insert_block_size": max(len(rows), 1)},
    )


def load_prices(store: Store, pricer: Pricer, *, force: bool = False) -> int:
    """Write and publish a new generation of model_prices when the price data differs from the store's
    (or `force`): the catalogue, and every name the store has priced or seen; returns the rows written
    (0: the store's prices were up to date)."""
    current, stored = current_generation(store)
    sign = signature(pricer)
    if current and stored == sign and not force:
        return 0
    catalogue = catalogue_rows(pricer)
    known = {(r.model, r.service_tier, r.batch) for r in catalogue}
    extra = (_keys(store, current) | _seen(store)) - known
    rows = [*catalogue, *(row for key in sorted(extra) for row in price_rows(pricer, *key))]
    generation = max(time.time_ns(), current + 1)
    _insert_rows(store, rows, generation)
    store.insert(
        "price_generations",
        [[generation, sign, datetime.now(UTC)]],
        ["generation", "signature", "loaded_at"],
        column_type_names=["UInt64", "String", "DateTime64(6, 'UTC')"],
    )
    store.command("DELETE FROM model_prices WHERE generation < {g:UInt64}", {"g": generation})
    return len(rows)


@dataclass(frozen=True, slots=True)
class Resolved:
    names: int  # (name, tier, batch) given rows
    priced: int  # of them with a price
    calls: int  # calls priced again


def resolve_seen_models(store: Store, pricer: Pricer) -> Resolved:
    """Rows for the names calls brought that the store had none for, added to the current generation,
    and those calls priced again."""
    seen = _seen(store)
    if not seen:
        return Resolved(0, 0, 0)
    generation, _ = current_generation(store)
    if not generation:
        load_prices(store, pricer)
        generation, _ = current_generation(store)
        seen = _seen(store)
    rows = [row for key in sorted(seen) for row in price_rows(pricer, *key)]
    if rows:
        _insert_rows(store, rows, generation)
    names = sorted({m for m, _, _ in seen})
    calls = _price_again(
        store,
        "cost_usd IS NULL AND (lower(response_model) IN {names:Array(String)} "
        "OR lower(request_model) IN {names:Array(String)})",
        {"names": names},
    )
    priced = len({(r.model, r.service_tier, r.batch) for r in rows if r.segments is not None})
    return Resolved(len(seen), priced, calls)


# The llm_calls_in columns, read back from llm_usage
_CALL_COLUMNS = (
    "time, service, trace_id, span_id, response_id, operation, provider, api_type, request_model, "
    "response_model, service_tier, request_service_tier, batch, input_tokens, output_tokens, "
    "cached_input_tokens, cache_write_input_tokens, reasoning_tokens, input_audio_tokens, "
    "cached_input_audio_tokens, output_audio_tokens, audio_seconds, client_cost_usd, usage_state, status, "
    "error_type, user_id, endpoint, tenant, attributes, quantities, openai_project, api_key_redacted, "
    "duration_ns"
)


def _price_again(store: Store, where: str, params: dict[str, Any]) -> int:
    """Insert the calls of llm_usage matching `where` (that have usage) into llm_calls_in again, under a
    new version: llm_usage_mv prices them with the current prices; FINAL keeps the new rows. Returns how
    many."""
    version = time.time_ns() // 1000
    condition = f"status = 'ok' AND usage_state != 'unavailable' AND ({where})"
    [[count]] = store.query(f"SELECT count() FROM llm_usage FINAL WHERE {condition}", params).rows
    if count:
        store.command(
            f"INSERT INTO llm_calls_in ({_CALL_COLUMNS}, rejected, dropped, sent, version) "
            f"SELECT {_CALL_COLUMNS}, '', '', map(), {{version:UInt64}} "
            f"FROM llm_usage FINAL WHERE {condition}",
            {**params, "version": version},
        )
    return int(count)


@dataclass(frozen=True, slots=True)
class RepriceResult:
    examined: int  # calls with usage in the range
    changed: int  # calls whose cost changed (newly priced and no longer priced included)
    newly_priced: int  # calls that had no price and have one now
    still_unpriced: int  # calls that have no price, before and now
    unpriced_now: int  # calls that had a price and have none now (their model's price was removed)


def reprice(store: Store, pricer: Pricer, *, since: datetime, until: datetime) -> RepriceResult:
    """Re-cost the calls of [since, until) with `pricer`'s prices (loaded as a new generation first);
    every rollup and report follows."""
    load_prices(store, pricer, force=True)
    window = {"since": ch_time(since), "until": ch_time(until)}
    in_window = "time >= {since:DateTime64(9, 'UTC')} AND time < {until:DateTime64(9, 'UTC')}"
    before = dict(
        ((str(t), str(s)), c)
        for t, s, c in store.query(
            f"SELECT trace_id, span_id, cost_usd FROM llm_usage FINAL WHERE {in_window} "
            "AND status = 'ok' AND usage_state != 'unavailable'",
            window,
        ).rows
    )
    _price_again(store, in_window, window)
    after = store.query(
        f"SELECT trace_id, span_id, cost_usd FROM llm_usage FINAL WHERE {in_window} "
        "AND status = 'ok' AND usage_state != 'unavailable'",
        window,
    ).rows
    changed = newly = still = lost = 0
    for trace_id, span_id, cost in after:
        old = before.get((str(trace_id), str(span_id)))
        changed += old != cost
        newly += old is None and cost is not None
        still += old is None and cost is None
        lost += old is not None and cost is None
    return RepriceResult(len(after), changed, newly, still, lost)
