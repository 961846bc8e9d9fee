"""The reconciler's values: token vectors, comparison groups, residual pieces, the run's result (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from decimal import Decimal
from typing import Final

from spendscope.reconciler._keys import ReportedKey, TrackedKey

# Causes of the residual (reported - tracked), in the order they are explained.
UNTRACKED: Final = "untracked"
USAGE_UNAVAILABLE: Final = "usage_unavailable"
FAILED_BILLED: Final = "failed_billed"
TIER_BATCH_MISPRICING: Final = "tier_batch_mispricing"
MISSING_PRICE: Final = "missing_price"
STALE_PRICE: Final = "stale_price"
UNEXPLAINED: Final = "unexplained"
CAUSES: Final = (
    UNTRACKED,
    USAGE_UNAVAILABLE,
    FAILED_BILLED,
    TIER_BATCH_MISPRICING,
    MISSING_PRICE,
    STALE_PRICE,
    UNEXPLAINED,
)
# Causes whose tokens are missing from (or extra in) SpendScope's counts: they add up to the token
# residual. The others are about dollars; their tokens are the tokens whose price was wrong or missing.
TOKEN_CAUSES: Final = (UNTRACKED, USAGE_UNAVAILABLE, FAILED_BILLED, UNEXPLAINED)

KIND_CAUSE: Final = "cause"
KIND_LINE_ITEM: Final = "line_item"
SOURCE_COSTS: Final = "costs"


@dataclass(frozen=True, slots=True)
class Tokens:
    """Requests and token counts in the Usage API's terms (input includes cached and audio input,
    output includes audio output); `audio_seconds` for duration-billed transcription."""

    requests: int = 0
    input: int = 0
    cached_input: int = 0
    output: int = 0
    input_audio: int = 0
    output_audio: int = 0
    audio_seconds: float = 0.0

    @property
    def total(self) -> int:
        return self.input + self.output

    def __add__(self, other: Tokens) -> Tokens:
        return Tokens(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    def __sub__(self, other: Tokens) -> Tokens:
        return Tokens(*(getattr(self, f.name) - getattr(other, f.name) for f in fields(self)))

    def __neg__(self) -> Tokens:
        return Tokens() - self

    def map(self, fn: object) -> Tokens:
        assert callable(fn)
        return Tokens(*(fn(getattr(self, f.name)) for f in fields(self)))

    def positive(self) -> Tokens:
        return self.map(lambda v: max(v, 0))

    def negative(self) -> Tokens:
        return self.map(lambda v: min(v, 0))

    def is_zero(self) -> bool:
        return all(getattr(self, f.name) == 0 for f in fields(self))

    def counts(self) -> tuple[int, int, int, int, int, int]:
        return (
            self.requests,
            self.input,
            self.cached_input,
            self.output,
            self.input_audio,
            self.output_audio,
        )


def elementwise_min(a: Tokens, b: Tokens) -> Tokens:
    return Tokens(*(min(getattr(a, f.name), getattr(b, f.name)) for f in fields(a)))


@dataclass(frozen=True, slots=True)
class GroupKey:
    """The comparison grain: one Usage API result row."""

    source: str  # completions | embeddings | audio_transcriptions | costs (day-level pieces)
    bucket: datetime
    project_id: str
    api_key_id: str
    model: str  # normalised
    batch: bool = False
    service_tier: str = "default"

    @property
    def family(self) -> tuple[str, datetime, str, str, str]:
        """The group without batch and tier: where traffic tracked under the wrong tier is found."""
        return (self.source, self.bucket, self.project_id, self.api_key_id, self.model)

    def tier_label(self) -> str:
        return f"{self.service_tier}{' batch' if self.batch else ''}"


@dataclass(slots=True)
class Group:
    """One group where tracked and reported differ (mutable while tier/batch moves are applied)."""

    key: GroupKey
    bucket_end: datetime
    key_mapping: str
    reported_model: str
    tracked_model: str
    reported: Tokens
    tracked: Tokens  # requests = calls that got an answer
    unavailable_calls: int = 0
    error_calls: int = 0

    @property
    def model_raw(self) -> str:
        return self.reported_model or self.tracked_model or self.key.model


@dataclass(frozen=True, slots=True)
class Piece:
    """A part of the residual with its cause: tokens (for price causes, the tokens affected), dollars
    (None where the Costs API was not compared, or no price is known) and the number of calls it
    concerns (0 where none are known: a line item, the rest of a day's dollars)."""

    cause: str
    detail: str
    key: GroupKey
    bucket_end: datetime
    tokens: Tokens
    usd: Decimal | None
    key_mapping: str = ""
    line_item: str = ""
    calls: int = 0


@dataclass(frozen=True, slots=True)
class LineRow:
    """SpendScope's cost against the Costs API for one UTC day, project and line item."""

    day: datetime
    project_id: str
    line_item: str
    model: str
    service_tier: str
    batch: bool
    tracked_usd: Decimal
    reported_usd: Decimal

    @property
    def diff_usd(self) -> Decimal:
        return self.reported_usd - self.tracked_usd


@dataclass(frozen=True, slots=True)
class DailyTracked:
    """SpendScope's calls of one UTC day by project, model, tier, batch and price data."""

    day: datetime
    project_id: str
    model: str
    model_raw: str
    batch: bool
    service_tier: str
    price_version: str
    priced: bool
    tokens: Tokens
    cache_write_input: int
    usd: Decimal  # stored cost (0 for unpriced calls)
    max_input_tokens: int


@dataclass(frozen=True, slots=True)
class CostLine:
    """One Costs API result (amounts summed over the page's duplicates)."""

    day: datetime
    project_id: str
    line_item: str
    amount: Decimal
    quantity: Decimal | None = None
    quantity_unit: str | None = None


@dataclass(frozen=True, slots=True)
class Windows:
    """The window asked for and the closed parts compared."""

    start: datetime
    until: datetime
    usage_end: datetime  # tokens over [start, usage_end)
    costs_start: datetime  # dollars over whole UTC days [costs_start, costs_end)
    costs_end: datetime
    bucket_width: str

    @property
    def has_costs(self) -> bool:
        return self.costs_end > self.costs_start

    def in_costs(self, bucket: datetime) -> bool:
        return self.costs_start <= bucket < self.costs_end


@dataclass
class Totals:
    tracked_requests: int = 0
    reported_requests: int = 0
    tracked_tokens: int = 0
    reported_tokens: int = 0
    tracked_usd: Decimal = Decimal(0)
    reported_usd: Decimal | None = None
    reported_buckets: int = 0
    empty_buckets: int = 0
    by_source: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def residual_tokens(self) -> int:
        return self.reported_tokens - self.tracked_tokens

    @property
    def residual_usd(self) -> Decimal | None:
        return None if self.reported_usd is None else self.reported_usd - self.tracked_usd

    @property
    def coverage_ratio(self) -> float | None:
        """Tracked / reported spend over the closed cost days."""
        if self.reported_usd is None or self.reported_usd == 0:
            return None if self.reported_usd is None or self.tracked_usd == 0 else float("inf")
        return float(self.tracked_usd / self.reported_usd)

    @property
    def token_coverage_ratio(self) -> float | None:
        if self.reported_tokens == 0:
            return None
        return self.tracked_tokens / self.reported_tokens


@dataclass
class ReconciliationResult:
    run_id: str
    windows: Windows
    started_at: datetime
    finished_at: datetime
    totals: Totals
    pieces: list[Piece]
    lines: list[LineRow]
    ambiguous_keys: list[str]
    unmapped_keys: list[str]
    min_coverage: float
    pages: int = 0
    requests_made: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    # every key fingerprint of the spans, and every key OpenAI reports, with their figures
    tracked_keys: list[TrackedKey] = field(default_factory=list)
    reported_keys: list[ReportedKey] = field(default_factory=list)

    @property
    def coverage(self) -> float | None:
        """What the threshold is checked against: spend coverage, else token coverage when no cost
        day is closed yet."""
        if self.windows.has_costs and self.totals.reported_usd is not None:
            return self.totals.coverage_ratio
        return self.totals.token_coverage_ratio

    @property
    def passed(self) -> bool:
        coverage = self.coverage
        return coverage is None or coverage >= self.min_coverage

    def cause_tokens(self) -> dict[str, int]:
        out = dict.fromkeys(CAUSES, 0)
        for piece in self.pieces:
            out[piece.cause] += piece.tokens.total
        return out

    def cause_calls(self) -> dict[str, int]:
        out = dict.fromkeys(CAUSES, 0)
        for piece in self.pieces:
            out[piece.cause] += piece.calls
        return out

    def cause_usd(self) -> dict[str, Decimal]:
        out = dict.fromkeys(CAUSES, Decimal(0))
        for piece in self.pieces:
            if piece.usd is not None and self.windows.in_costs(piece.key.bucket):
                out[piece.cause] += piece.usd
        return out
