"""What tokens cost: SpendScope's Pricer (the same exact prices as the spans), else the unit prices the
Costs API implies (amount / quantity of a line item), else unknown."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal

from genai_prices import data_snapshot
from genai_prices.types import StartDateConstraint

from spendscope.pricing import Pricer
from spendscope.pricing.rates import Rate
from spendscope.reconciler._model import CostLine, Tokens
from spendscope.reconciler._normalize import DEFAULT_TIER, line_key, normalize_model, parse_line_item
from spendscope.usage import TokenUsage

_UNITS = {"tokens": Decimal(1), "1000_tokens": Decimal(1000)}
# One token of every component (for per-unit prices): input 4 = 1 uncached + 1 cached + 1 write + 1 audio.
_UNIT = Tokens(input=4, cached_input=1, output=2, input_audio=1, output_audio=1)


def token_usage(tokens: Tokens, cache_write: int = 0) -> TokenUsage:
    return TokenUsage(
        input=tokens.input,
        output=tokens.output,
        cached_input=tokens.cached_input,
        cache_write_input=cache_write,
        input_audio=tokens.input_audio,
        output_audio=tokens.output_audio,
        audio_seconds=tokens.audio_seconds or None,
    )


def components(tokens: Tokens, cache_write: int = 0) -> list[tuple[str, str, Tokens, int]]:
    """The parts of a token vector that the Costs API bills as separate line items:
    (modality, direction, the part as a vector, its cache-write tokens)."""
    if tokens.audio_seconds:
        return [("text", "audio", Tokens(audio_seconds=tokens.audio_seconds), 0)]
    text_input = tokens.input - tokens.cached_input - cache_write - tokens.input_audio
    parts = [
        ("text", "input", Tokens(input=text_input), 0),
        ("text", "cached input", Tokens(input=tokens.cached_input, cached_input=tokens.cached_input), 0),
        ("text", "cache write", Tokens(input=cache_write), cache_write),
        ("audio", "input", Tokens(input=tokens.input_audio, input_audio=tokens.input_audio), 0),
        ("text", "output", Tokens(output=tokens.output - tokens.output_audio), 0),
        ("audio", "output", Tokens(output=tokens.output_audio, output_audio=tokens.output_audio), 0),
    ]
    return [p for p in parts if p[2].input or p[2].output]


def change_days(pricer: Pricer, model: str) -> tuple[date, ...] | None:
    """The UTC days on which `model`'s price may change (genai-prices' start dates and the price file's
    effective dates), or None when its price also depends on the time of day. Between two such days
    the Pricer returns the same rate, so one rate serves every day in between (the Pricer itself caches
    per day, and building a rate costs ~0.2 ms). The same dates as spendscope/store/prices.py reads."""
    days: set[date] = set()
    try:
        _, info = data_snapshot.get_snapshot().find_provider_model(model, None, "openai", None)
    except LookupError:
        info = None
    if info is not None:
        constraints = [c.constraint for c in info.prices] if isinstance(info.prices, list) else []
        constraints += [v.constraint for v in info.price_variants or ()]
        for constraint in constraints:
            if isinstance(constraint, StartDateConstraint):
                days.add(constraint.start_date)
            elif constraint is not None:
                return None
    if pricer.price_file is not None:
        for rule in (*pricer.price_file.models, *pricer.price_file.discounts):
            if rule.effective_from is not None and rule.matches(model, rule.effective_from):
                days.add(rule.effective_from)
    return tuple(sorted(days))


class Valuer:
    """Dollars of a token vector (negative counts allowed: a linear price of a difference)."""

    def __init__(self, pricer: Pricer) -> None:
        self.pricer = pricer
        # (UTC day, line key) -> USD per unit, from Costs API quantities
        self.implied: dict[tuple[datetime, str], Decimal] = {}
        self._days: dict[str, tuple[date, ...] | None] = {}
        self._rates: dict[tuple[str, str, bool, date], Rate | None] = {}
        self._units: dict[tuple[str, str, bool, date], dict[tuple[str, str], Decimal]] = {}

    def _key(self, model: str, at: datetime, tier: str, batch: bool) -> tuple[str, str, bool, date] | None:
        """What identifies the rate in force at `at`; None when it depends on the time of day."""
        name = model.lower()
        if name not in self._days:
            self._days[name] = change_days(self.pricer, name)
        days = self._days[name]
        if days is None:
            return None
        day = at.date()
        return (name, tier, batch, max((d for d in days if d <= day), default=date.min))

    def rate(self, model: str, *, at: datetime, tier: str, batch: bool) -> Rate | None:
        """The Pricer's rate, shared by all the days between two price changes."""
        key = self._key(model, at, tier, batch)
        service_tier = None if batch else tier
        if key is None:
            return self.pricer.rate(model, at=at, service_tier=service_tier, batch=batch)
        if key not in self._rates:
            self._rates[key] = self.pricer.rate(model, at=at, service_tier=service_tier, batch=batch)
        return self._rates[key]

    def learn(self, lines: Iterable[CostLine]) -> None:
        totals: dict[tuple[datetime, str], tuple[Decimal, Decimal]] = {}
        for line in lines:
            unit = _UNITS.get(line.quantity_unit or "")
            if unit is None or not line.quantity:
                continue
            item = parse_line_item(line.line_item)
            if not item.parsed:
                continue
            key = (line.day, item.key)
            amount, quantity = totals.get(key, (Decimal(0), Decimal(0)))
            totals[key] = (amount + line.amount, quantity + line.quantity * unit)
        self.implied = {k: a / q for k, (a, q) in totals.items() if q}

    def value(
        self,
        model: str,
        tokens: Tokens,
        *,
        at: datetime,
        tier: str = DEFAULT_TIER,
        batch: bool = False,
        cache_write: int = 0,
    ) -> Decimal | None:
        if tokens.input == tokens.output == 0 and not tokens.audio_seconds:
            return Decimal(0)
        rate = self.rate(model, at=at, tier=tier, batch=batch)
        if rate is not None:
            try:
                return rate.cost(token_usage(tokens, cache_write))
            except ValueError:
                return None
        return self._implied(model, tokens, at=at, tier=tier, batch=batch, cache_write=cache_write)

    def split(
        self, model: str, tokens: Tokens, *, at: datetime, tier: str, batch: bool, cache_write: int = 0
    ) -> list[tuple[str, str, Decimal]]:
        """The dollars of each line-item component of `tokens`: (modality, direction, USD). Linear
        prices are applied per unit (one lookup per component); others are priced part by part."""
        parts = components(tokens, cache_write)
        key = self._key(model, at, tier, batch)
        rate = self.rate(model, at=at, tier=tier, batch=batch)
        if key is not None and rate is not None and not tokens.audio_seconds:
            units = self._units.get(key)
            if units is None:
                units = {}
                for modality, direction, part, write in components(_UNIT, 1):
                    units[(modality, direction)] = rate.cost(token_usage(part, write))
                self._units[key] = units
            if rate.linear_up_to is None or tokens.input < rate.linear_up_to:
                return [(m, d, units[(m, d)] * (p.input or p.output)) for m, d, p, _ in parts]
        out = []
        for modality, direction, part, write in parts:
            value = self.value(model, part, at=at, tier=tier, batch=batch, cache_write=write)
            out.append((modality, direction, value or Decimal(0)))
        return out

    def version(self, model: str, *, at: datetime, tier: str, batch: bool) -> str | None:
        rate = self.rate(model, at=at, tier=tier, batch=batch)
        return rate.version if rate is not None else None

    def linear(self, model: str, *, at: datetime, tier: str, batch: bool, max_input: int) -> bool:
        """Whether pricing a sum of calls equals the sum of their prices (no tier threshold crossed)."""
        rate = self.rate(model, at=at, tier=tier, batch=batch)
        if rate is None:
            return False
        return rate.linear_up_to is None or max_input < rate.linear_up_to

    def _implied(
        self, model: str, tokens: Tokens, *, at: datetime, tier: str, batch: bool, cache_write: int
    ) -> Decimal | None:
        day = at.replace(hour=0, minute=0, second=0, microsecond=0)
        total = Decimal(0)
        for modality, direction, part, _ in components(tokens, cache_write):
            price = self.implied.get(
                (day, line_key(normalize_model(model), tier, batch, modality, direction))
            )
            if price is None:
                return None
            count = part.audio_seconds if direction == "audio" else part.input or part.output
            total += price * Decimal(str(count))
        return total
