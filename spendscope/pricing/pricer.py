"""Price a call: the user price file first, then genai-prices' catalogue, cached per model and day."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import genai_prices
from genai_prices import data_snapshot
from genai_prices.types import ModelInfo, ModelPrice, StartDateConstraint

from spendscope.pricing.price_file import PriceFile
from spendscope.pricing.rates import Rate, segments
from spendscope.usage import TokenUsage

_log = logging.getLogger("spendscope")

_PROVIDER = "openai"
_BATCH_DISCOUNT = Decimal("0.5")  # OpenAI Batch API: 50% off, where genai-prices has no batch variant
_CACHE_LIMIT = 16_384


@dataclass(frozen=True, slots=True)
class Terms:
    """A model's price at one time: genai-prices' `ModelPrice` and a multiplier on top."""

    model_id: str
    version: str
    model_price: ModelPrice
    multiplier: Decimal


@dataclass(frozen=True, slots=True)
class Price:
    cost_usd: Decimal
    version: str
    model_id: str
    model: str = ""  # the name the price was found for: the call's model, or its fallback


def _cacheable(info: ModelInfo) -> bool:
    """Prices that change only with the UTC date can be cached per day; time-of-day ones cannot."""
    constraints = [c.constraint for c in info.prices] if isinstance(info.prices, list) else []
    constraints += [v.constraint for v in info.price_variants or ()]
    return all(c is None or isinstance(c, StartDateConstraint) for c in constraints)


def _has_batch_variant(info: ModelInfo, at: datetime) -> bool:
    return any(
        v.when == {"processing": "batch"} and (v.constraint is None or v.constraint.active(at))
        for v in info.price_variants or ()
    )


class Pricer:
    """Exact USD cost of one call, or None when the model's price is unknown (never $0)."""

    def __init__(self, price_file: PriceFile | None = None) -> None:
        self.price_file = price_file
        self._cache: dict[tuple[str, str | None, bool, object], Rate | None] = {}
        self._snapshot: object = None
        self._lock = threading.Lock()

    def price(
        self,
        model: str,
        usage: TokenUsage,
        *,
        at: datetime,
        service_tier: str | None = None,
        batch: bool = False,
        fallback: str | None = None,
    ) -> Price | None:
        """`fallback`: the name to price the call as when `model` has no price (the requested model,
        where OpenAI answered with a name that is not priced: `davinci-002` comes back as
        `davinci:2023-07-21-v2`). The Price says which name it was found for."""
        name = model
        rate = self.rate(model, at=at, service_tier=service_tier, batch=batch)
        if rate is None and fallback and fallback != model:
            name = fallback
            rate = self.rate(fallback, at=at, service_tier=service_tier, batch=batch)
        if rate is None:
            return None
        try:
            cost = rate.cost(usage)
        except ValueError as exc:
            _log.warning("spendscope: cannot price usage %s for %s: %s", usage, name, exc)
            return None
        return Price(cost, rate.version, rate.model_id, name)

    def rate(
        self, model: str, *, at: datetime, service_tier: str | None = None, batch: bool = False
    ) -> Rate | None:
        """The rate in force for `model` at `at` (UTC); cached per UTC day."""
        snapshot = data_snapshot.get_snapshot()
        if snapshot is not self._snapshot:  # prices were updated at runtime: drop what we derived
            with self._lock:
                self._cache = {}
                self._snapshot = snapshot
        key = (model.lower(), None if batch else service_tier, batch, at.date())
        try:
            return self._cache[key]
        except KeyError:
            pass
        rate, cacheable = self._build(key[0], at, key[1], batch, snapshot)
        if cacheable:
            with self._lock:
                if len(self._cache) >= _CACHE_LIMIT:
                    self._cache.clear()
                self._cache[key] = rate
        return rate

    def _build(
        self, model: str, at: datetime, tier: str | None, batch: bool, snapshot: data_snapshot.DataSnapshot
    ) -> tuple[Rate | None, bool]:
        found = self._terms(model, at, tier, batch, snapshot)
        if found is None:
            return None, True
        terms, cacheable = found
        parts = segments(terms.model_price)
        if parts is None:
            _log.warning("spendscope: genai-prices refuses the price of %s: it is not applied", model)
            return None, cacheable
        return Rate(terms.model_id, terms.version, parts, terms.multiplier), cacheable

    def terms(
        self, model: str, *, at: datetime, service_tier: str | None = None, batch: bool = False
    ) -> Terms | None:
        """The price in force for `model` at `at` as genai-prices states it, and the multiplier on top
        (discounts, the Batch API's half price): what `rate` is built from, without building it."""
        found = self._terms(
            model.lower(), at, None if batch else service_tier, batch, data_snapshot.get_snapshot()
        )
        return None if found is None else found[0]

    def _terms(
        self, model: str, at: datetime, tier: str | None, batch: bool, snapshot: data_snapshot.DataSnapshot
    ) -> tuple[Terms, bool] | None:
        multiplier = self.price_file.multiplier(model, at) if self.price_file else Decimal(1)
        if self.price_file is not None and (rule := self.price_file.model_rule(model, at, tier)):
            if batch:
                multiplier *= _BATCH_DISCOUNT
            return Terms(model, self.price_file.version, rule.model_price(), multiplier), True
        try:
            _, info = snapshot.find_provider_model(model, None, _PROVIDER, None)
        except LookupError:
            return None
        context: dict[str, str] = {}
        if batch:
            if _has_batch_variant(info, at):
                context["processing"] = "batch"
            else:
                multiplier *= _BATCH_DISCOUNT
        elif tier:
            context["service_tier"] = tier
        version = f"genai-prices {genai_prices.__version__}"
        if snapshot.from_auto_update:
            version += f" (updated {snapshot.timestamp:%Y-%m-%dT%H:%M:%S})"
        if self.price_file is not None and multiplier != 1:
            version += f" + {self.price_file.version}"
        model_price = info.get_prices(at, context or None)
        return Terms(info.id, version, model_price, multiplier), _cacheable(info)
