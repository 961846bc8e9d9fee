"""Turn a genai-prices `ModelPrice` into a fast, exact per-call cost function.

`ModelPrice.calc_price` costs about 190 µs per call (it re-resolves units and validates usage every
time), far too much for the hot path. For prices without tiers the cost is linear in the usage counts
we report, so we read the per-token coefficients off genai-prices once, by probing it, check them
against genai-prices on further vectors, and then price a call with a handful of Decimal products.
Anything that does not linearise exactly (tiered prices above their threshold, duration-billed audio,
a probe that does not check out) is priced by genai-prices itself.
"""

from __future__ import annotations

from copy import copy
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from genai_prices import Usage
from genai_prices.types import ModelPrice, TieredPrices

from spendscope.usage import TokenUsage

# The TokenUsage counts a price applies to, in the order of `_KEYS` (and of `Segment.per_token`).
USAGE_FIELDS = (
    "input",
    "cached_input",
    "cache_write_input",
    "input_audio",
    "cached_input_audio",
    "output",
    "output_audio",
    "reasoning",
)

# genai-prices usage keys, in the order of `_counts`. Subsets are passed alongside their totals.
_KEYS = (
    "input_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "input_audio_tokens",
    "cache_audio_read_tokens",
    "output_tokens",
    "output_audio_tokens",
    "output_reasoning_tokens",
)
_MILLION = 1_000_000
# A valid usage vector with headroom: adding a million to any one key keeps every subset in its total.
_BASE = tuple(n * _MILLION for n in (10, 2, 1, 2, 1, 10, 2, 2))
_CHECKS = (
    (7_919, 1_024, 128, 300, 64, 1_733, 120, 512),
    (1, 0, 0, 0, 0, 1, 0, 0),
    (123_457, 100_000, 0, 0, 0, 98_765, 0, 98_000),
)


def _counts(usage: TokenUsage) -> tuple[int, ...]:
    return (
        usage.input,
        usage.cached_input,
        usage.cache_write_input,
        usage.input_audio,
        usage.cached_input_audio,
        usage.output,
        usage.output_audio,
        usage.reasoning,
    )


def exact_cost(model_price: ModelPrice, usage: TokenUsage) -> Decimal:
    """genai-prices' own calculation: the reference every fast path is checked against."""
    if usage.audio_seconds is not None:
        seconds = usage.audio_seconds
        gp_usage = Usage(audio_seconds=seconds, input_audio_seconds=seconds)
    else:
        gp_usage = Usage(**dict(zip(_KEYS, _counts(usage), strict=True)))
    total: Decimal = model_price.calc_price(gp_usage)["total_price"]
    return total


def _exact_counts(model_price: ModelPrice, counts: tuple[int, ...]) -> Decimal:
    total: Decimal = model_price.calc_price(Usage(**dict(zip(_KEYS, counts, strict=True))))["total_price"]
    return total


def _flatten(model_price: ModelPrice) -> tuple[ModelPrice, int | None]:
    """The prices below the first tier, and the input-token count up to which they apply."""
    values: dict[str, Any] = dict(model_price.__dict__)
    threshold: int | None = None
    for key, value in values.items():
        if isinstance(value, TieredPrices):
            values[key] = value.base
            if value.tiers:
                start = value.tiers[0].start
                threshold = start if threshold is None else min(threshold, start)
    flat = copy(model_price)
    flat.__dict__.update(values)
    return flat, threshold


def _linearise(model_price: ModelPrice) -> tuple[Decimal, ...] | None:
    try:
        base = _exact_counts(model_price, _BASE)
        coefficients = []
        for i in range(len(_KEYS)):
            probe = tuple(n + _MILLION if j == i else n for j, n in enumerate(_BASE))
            coefficients.append((_exact_counts(model_price, probe) - base) / _MILLION)
        linear = tuple(coefficients)
        vectors = (_BASE, *_CHECKS)
        if all(_linear_cost(linear, v) == _exact_counts(model_price, v) for v in vectors):
            return linear
    except (ValueError, ArithmeticError):
        pass
    return None


def _affine(model_price: ModelPrice) -> tuple[Decimal, tuple[Decimal, ...]] | None:
    """A price without tiers as (per call, per token of each `_KEYS` count), read off genai-prices and
    checked against it on further vectors; None if it is not of that form."""
    try:
        per_call = _exact_counts(model_price, (0,) * len(_KEYS))
        base = _exact_counts(model_price, _BASE)
        per_token = []
        for i in range(len(_KEYS)):
            probe = tuple(n + _MILLION if j == i else n for j, n in enumerate(_BASE))
            per_token.append((_exact_counts(model_price, probe) - base) / _MILLION)
        linear = tuple(per_token)
        checks = (_BASE, *_CHECKS)
        if all(per_call + _linear_cost(linear, v) == _exact_counts(model_price, v) for v in checks):
            return per_call, linear
    except (ValueError, ArithmeticError):
        pass
    return None


def _at_input(model_price: ModelPrice, input_tokens: int) -> ModelPrice:
    """The prices that apply to a call of `input_tokens` input tokens, without tiers (genai-prices'
    rule: a tier applies to every token once the input is above its start)."""
    values: dict[str, Any] = dict(model_price.__dict__)
    for key, value in values.items():
        if isinstance(value, TieredPrices):
            values[key] = value.base
            for tier in value.tiers:
                if input_tokens > tier.start:
                    values[key] = tier.price
    flat = copy(model_price)
    flat.__dict__.update(values)
    return flat


@dataclass(frozen=True, slots=True)
class Segment:
    """A price as the store applies it to calls of more than `above` input tokens (up to the next
    segment's `above`): USD per call, per token of each USAGE_FIELDS count (a subset's price is what
    it adds to its total's: a cached input token's is the cached price minus the input price), and per
    hour of duration-billed audio (whose calls are priced on their seconds, not on tokens)."""

    above: int
    per_call: Decimal
    per_token: tuple[Decimal, ...]
    per_audio_hour: Decimal


def segments(model_price: ModelPrice, multiplier: Decimal = Decimal(1)) -> tuple[Segment, ...] | None:
    """`model_price` (times `multiplier`) as linear segments, one per long-context tier; None where it
    is not linear in the usage counts (genai-prices then prices each call itself)."""
    tiered = [value for value in model_price.__dict__.values() if isinstance(value, TieredPrices)]
    starts = sorted({tier.start for value in tiered for tier in value.tiers})
    out: list[Segment] = []
    for above in (0, *starts):
        flat = _at_input(model_price, above + 1 if above else 0)
        affine = _affine(flat)
        if affine is None:
            return None
        per_call, per_token = affine
        try:
            per_hour = exact_cost(flat, TokenUsage(audio_seconds=3600.0)) - per_call
        except (ValueError, ArithmeticError):
            return None
        out.append(
            Segment(
                above,
                per_call * multiplier,
                tuple(c * multiplier for c in per_token),
                per_hour * multiplier,
            )
        )
    return tuple(out)


def _linear_cost(coefficients: tuple[Decimal, ...], counts: tuple[int, ...]) -> Decimal:
    total = Decimal(0)
    for coefficient, count in zip(coefficients, counts, strict=True):
        if count:
            total += coefficient * count
    return total


@dataclass(frozen=True, slots=True)
class Rate:
    """The price of one model, in one tier, on one day: a fast exact cost function."""

    model_id: str
    version: str
    model_price: ModelPrice
    coefficients: tuple[Decimal, ...] | None
    linear_up_to: int | None  # input tokens; above this a tiered price applies
    multiplier: Decimal = Decimal(1)

    @classmethod
    def build(cls, model_id: str, version: str, model_price: ModelPrice, multiplier: Decimal) -> Rate:
        flat, threshold = _flatten(model_price)
        return cls(model_id, version, model_price, _linearise(flat), threshold, multiplier)

    def cost(self, usage: TokenUsage) -> Decimal:
        """Exact USD cost; raises ValueError when genai-prices rejects the usage."""
        if (
            self.coefficients is not None
            and usage.audio_seconds is None
            and (self.linear_up_to is None or usage.input < self.linear_up_to)
        ):
            total = _linear_cost(self.coefficients, _counts(usage))
        else:
            total = exact_cost(self.model_price, usage)
        return total if self.multiplier == 1 else total * self.multiplier
