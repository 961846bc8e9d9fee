"""A genai-prices `ModelPrice` as rates per call, per token and per audio hour, read off its public fields.

genai-prices states a price in USD per unit: `input_mtok` per million input tokens, `requests_kcount`
per thousand calls, `audio_hours` per hour of audio. Each is a Decimal or a `TieredPrices`: a base
price, and tiers by input tokens (once a call's input is above a tier's start, every token pays the
tier's price). A subset with a price of its own (cached input within input, audio output within output)
pays that price, one without pays its total's. So a call's cost is linear in its token counts between
two tier starts: a few Decimal products per call (about 3 µs), where `ModelPrice.calc_price` takes
about 70 µs, as it resolves units and validates the price every time. tests/test_pricing.py checks
these rates against genai-prices' own calculation for every OpenAI price it has.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal

from genai_prices import Usage
from genai_prices.types import ModelPrice, TieredPrices

from spendscope.usage import TokenUsage

# The TokenUsage counts a price applies to, in the order of `Segment.per_token`.
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
# The genai-prices prices a call's cost depends on: per million tokens of each USAGE_FIELDS count (in
# that order), per thousand calls, per hour of audio.
_PRICE_KEYS = (
    "input_mtok",
    "cache_read_mtok",
    "cache_write_mtok",
    "input_audio_mtok",
    "cache_audio_read_mtok",
    "output_mtok",
    "output_audio_mtok",
    "output_reasoning_mtok",
    "requests_kcount",
    "audio_hours",
    "input_audio_hours",
)
_MILLION = Decimal(1_000_000)


@dataclass(frozen=True, slots=True)
class Segment:
    """A price as it applies to calls of more than `above` input tokens (up to the next segment's
    `above`): USD per call, per token of each USAGE_FIELDS count (a subset's price is what it adds to
    its total's: a cached input token's is the cached price minus the input price), and per hour of
    duration-billed audio (whose calls are priced on their seconds, not on tokens)."""

    above: int
    per_call: Decimal
    per_token: tuple[Decimal, ...]
    per_audio_hour: Decimal


def _at(model_price: ModelPrice, key: str, input_tokens: int) -> Decimal | None:
    """The price `key` of a call of `input_tokens` input tokens: the last tier whose start it is above."""
    price = getattr(model_price, key)
    if not isinstance(price, TieredPrices):
        return price  # type: ignore[no-any-return]
    applies: Decimal = price.base
    for tier in price.tiers:  # in ascending order of start
        if input_tokens > tier.start:
            applies = tier.price
    return applies


def _segment(model_price: ModelPrice, above: int, input_tokens: int, multiplier: Decimal) -> Segment:
    """The segment of calls of `input_tokens` input tokens, which are above `above`."""

    def price(key: str, otherwise: Decimal = Decimal(0)) -> Decimal:
        value = _at(model_price, key, input_tokens)
        return otherwise if value is None else value

    # USD per million tokens of a token in exactly these sets; a set without a price pays its total's
    text_in = price("input_mtok")
    cached = price("cache_read_mtok", text_in)
    audio_in = price("input_audio_mtok", text_in)
    # a cached audio token without a price of its own pays the cached and the audio price, as both sets
    # count it (genai-prices prices one of them at most then: both need a price for cached audio)
    cached_audio = price("cache_audio_read_mtok", cached + audio_in - text_in)
    text_out = price("output_mtok")
    per_million = (
        text_in,
        cached - text_in,
        price("cache_write_mtok", text_in) - text_in,
        audio_in - text_in,
        cached_audio - cached - audio_in + text_in,
        text_out,
        price("output_audio_mtok", text_out) - text_out,
        price("output_reasoning_mtok", text_out) - text_out,
    )
    # whisper-1 style calls report seconds: genai-prices bills them as input audio, else as audio
    per_audio_hour = price("input_audio_hours", price("audio_hours"))
    return Segment(
        above,
        price("requests_kcount") / 1000 * multiplier,
        tuple(p / _MILLION * multiplier for p in per_million),
        per_audio_hour * multiplier,
    )


def segments(model_price: ModelPrice, multiplier: Decimal = Decimal(1)) -> tuple[Segment, ...] | None:
    """`model_price` (times `multiplier`) as linear segments, one per start of a long-context tier;
    None for a price genai-prices refuses (a negative price, a cached price without an input price, a
    price of cache-written audio, whose count calls do not report): such a price is unknown, never $0."""
    every_count = Usage(
        input_tokens=4,
        cache_read_tokens=2,
        cache_write_tokens=1,
        input_audio_tokens=2,
        cache_audio_read_tokens=1,
        output_tokens=2,
        output_audio_tokens=1,
        output_reasoning_tokens=1,
    )
    try:  # genai-prices refuses a malformed price, or one it cannot apply to the counts a call reports
        model_price.calc_price(every_count)
    except ValueError:
        return None
    tiered = [p for key in _PRICE_KEYS if isinstance(p := getattr(model_price, key), TieredPrices)]
    bounds = (0, *sorted({tier.start for price in tiered for tier in price.tiers}))
    return tuple(
        _segment(model_price, above, above + 1 if i else 0, multiplier) for i, above in enumerate(bounds)
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


@dataclass(frozen=True, slots=True)
class Rate:
    """The price of one model, in one tier, on one day: its segments and a multiplier on top (a
    discount, the Batch API's half price)."""

    model_id: str
    version: str
    segments: tuple[Segment, ...]
    multiplier: Decimal = Decimal(1)

    @property
    def linear_up_to(self) -> int | None:
        """The first tier's start in input tokens (None: no tiers): calls below it cost what their sum
        costs."""
        return self.segments[1].above if len(self.segments) > 1 else None

    def cost(self, usage: TokenUsage) -> Decimal:
        """Exact USD cost, as genai-prices computes it. Raises ValueError for audio seconds that are
        negative or not finite, as genai-prices does."""
        segment = self.segments[0]
        for s in self.segments[1:]:
            if usage.input > s.above:
                segment = s
        if usage.audio_seconds is not None:
            if not 0 <= usage.audio_seconds < math.inf:
                raise ValueError(f"audio seconds must be finite and not negative, not {usage.audio_seconds}")
            # in genai-prices' order: price times seconds, then per hour
            total = segment.per_call + segment.per_audio_hour * Decimal(repr(usage.audio_seconds)) / 3600
        else:
            total = segment.per_call
            for price, count in zip(segment.per_token, _counts(usage), strict=True):
                if count:
                    total += price * count
        return total if self.multiplier == 1 else total * self.multiplier
