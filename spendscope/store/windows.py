"""A time window cut into the rollups' buckets (pure).

    cover(since, until, grains=("month", "week", "day"), signed=False) -> Cover

[since, until) becomes whole months, weeks (from Monday), days and hours, and at most two partial
hours at its ends (read from the timeline), largest buckets first, so a report sums a few rows per
value instead of one per hour or per call. All in UTC.

With `signed`, a bucket may also be subtracted where that reads fewer rows: the 20 last hours of a
day are the day minus its first 4 hours, the 6 last days of a week the week minus its Sunday. The
rollups hold integer counts and Decimal dollars, so the difference is exact. Weeks only ever nest
days and days hours, so a daily series (grains: day) keeps every row in its own day.

`rollup_params` and `dimension_params` are the cover as the named queries' parameters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from spendscope.store.times import ch_time

Grain = Literal["month", "week", "day"]
ALL_GRAINS: tuple[Grain, ...] = ("month", "week", "day")
Span = tuple[datetime, datetime]
Bucket = tuple[str, datetime]  # (grain, start)
_HOUR = timedelta(hours=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# name, size in hours, offset of an aligned start from the epoch (1970-01-05 was a Monday)
_Level = tuple[str, int, int]
_LEVELS: dict[str, _Level] = {"hour": ("hour", 1, 0), "day": ("day", 24, 0), "week": ("week", 168, 96)}
_Part = tuple[str, int, int]  # (grain, start in hours since the epoch, +1 or -1)


@dataclass(frozen=True, slots=True)
class Cover:
    edges: tuple[Span, Span]  # the partial hours at the two ends, [start, end) (empty if aligned)
    months: list[date] = field(default_factory=list)
    plus: list[Bucket] = field(default_factory=list)  # weeks, days and hours added
    minus: list[Bucket] = field(default_factory=list)  # and subtracted (only when signed)

    def starts(self, grain: str) -> list[datetime]:
        return [start for g, start in self.plus if g == grain]

    def buckets(self) -> list[Bucket]:
        """Every added bucket, months included, as llm_usage_by_dimension keys them."""
        return [("month", _midnight(m)) for m in self.months] + self.plus


def cover(
    since: datetime, until: datetime, grains: tuple[Grain, ...] = ALL_GRAINS, *, signed: bool = False
) -> Cover:
    """`since` and `until` are aware datetimes; `grains` the bucket sizes above an hour to use (a
    daily series cannot use weeks or months, whose buckets would hide their days)."""
    since, until = since.astimezone(UTC), until.astimezone(UTC)
    h0, h1 = _ceil_hour(since), until.replace(minute=0, second=0, microsecond=0)
    if h0 > h1:  # inside one hour
        return Cover(((since, until), (until, until)))
    edges: tuple[Span, Span] = ((since, h0), (h1, until))
    months: list[date] = []
    spans = [(h0, h1)]
    if "month" in grains:
        m0, m1 = _ceil_month(h0), _midnight(h1.date().replace(day=1))
        if m0 < m1:
            months = _months(m0.date(), m1.date())
            spans = [(h0, m0), (m1, h1)]
    levels = [_LEVELS["hour"], *(_LEVELS[g] for g in ("day", "week") if g in grains)]
    parts = [p for start, end in spans for p in _cover(_hours(start), _hours(end), levels, signed)]
    plus = [(g, _EPOCH + h * _HOUR) for g, h, sign in parts if sign > 0]
    minus = [(g, _EPOCH + h * _HOUR) for g, h, sign in parts if sign < 0]
    return Cover(edges, months, plus, minus)


def _cover(a: int, b: int, levels: list[_Level], signed: bool) -> list[_Part]:
    """[a, b) (whole hours since the epoch) in buckets of `levels` (finest first, each nesting the
    one before), the coarsest in the middle; each end either added from finer buckets or, when
    `signed` and fewer, as one coarse bucket minus what lies outside the window."""
    if a >= b:
        return []
    name, size, offset = levels[-1]
    if len(levels) == 1:
        return [(name, t, 1) for t in range(a, b)]
    finer = levels[:-1]
    first, last = _ceil(a, size, offset), _floor(b, size, offset)
    if first > last:  # inside one coarse bucket, [last, first)
        inside = [_cover(a, b, finer, signed)]
        if signed:
            around = _cover(last, a, finer, signed) + _cover(b, first, finer, signed)
            inside.append([(name, last, 1), *_negated(around)])
        return min(inside, key=len)
    head = [_cover(a, first, finer, signed)]
    tail = [_cover(last, b, finer, signed)]
    if signed and a < first:
        head.append([(name, first - size, 1), *_negated(_cover(first - size, a, finer, signed))])
    if signed and last < b:
        tail.append([(name, last, 1), *_negated(_cover(b, last + size, finer, signed))])
    middle = [(name, t, 1) for t in range(first, last, size)]
    return min(head, key=len) + middle + min(tail, key=len)


def _negated(parts: list[_Part]) -> list[_Part]:
    return [(grain, start, -sign) for grain, start, sign in parts]


def rollup_params(since: datetime, until: datetime) -> dict[str, Any]:
    """For the queries over llm_usage_daily, _hourly and _timeline."""
    parts = cover(since, until, ("day",))
    return {
        "days": [d.date().isoformat() for d in parts.starts("day")],
        "hours": [_text(h) for h in parts.starts("hour")],
        **_edges(parts),
    }


def dimension_params(
    since: datetime, until: datetime, grains: tuple[Grain, ...] = ALL_GRAINS
) -> dict[str, Any]:
    """For the queries over llm_usage_by_dimension (added and subtracted buckets) and the timeline."""
    parts = cover(since, until, grains, signed=True)
    return {
        "buckets": [(grain, _text(start)) for grain, start in parts.buckets()],
        "minus_buckets": [(grain, _text(start)) for grain, start in parts.minus],
        **_edges(parts),
    }


def _edges(parts: Cover) -> dict[str, str]:
    (head_since, head_until), (tail_since, tail_until) = parts.edges
    return {
        "head_since": ch_time(head_since),
        "head_until": ch_time(head_until),
        "tail_since": ch_time(tail_since),
        "tail_until": ch_time(tail_until),
    }


def _text(t: datetime) -> str:
    return t.strftime("%Y-%m-%d %H:%M:%S")


def _hours(t: datetime) -> int:
    return int((t - _EPOCH) / _HOUR)


def _floor(t: int, size: int, offset: int) -> int:
    return t - (t - offset) % size


def _ceil(t: int, size: int, offset: int) -> int:
    return t + (offset - t) % size


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _ceil_hour(t: datetime) -> datetime:
    floor = t.replace(minute=0, second=0, microsecond=0)
    return floor if floor == t else floor + _HOUR


def _ceil_month(t: datetime) -> datetime:
    first = _midnight(t.date().replace(day=1))
    return first if first == t else _midnight(_next_month(first.date()))


def _next_month(day: date) -> date:
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def _months(start: date, end: date) -> list[date]:
    out = []
    while start < end:
        out.append(start)
        start = _next_month(start)
    return out
