"""A time window cut into the rollups' buckets (pure).

    cover(since, until, grains=("month", "week", "day"), signed=False, now=None) -> Cover

[since, until) becomes whole months, weeks (from Monday), days and hours, and at most two partial
hours at its ends (read from the timeline), largest buckets first, so a report sums a few rows per
value instead of one per hour or per call. All in UTC.

With `signed`, a bucket may also be subtracted where that reads fewer rows: the 20 last hours of a
day are the day minus its first 4 hours, the 6 last days of a week the week minus its Sunday. The
rollups hold integer counts and Decimal dollars, so the difference is exact. Weeks only ever nest
days and days hours, so a daily series (grains: day) keeps every row in its own day.

A signed cover's ends may also lie outside the window, its timeline spans subtracted: [10:50, ...)
is the hour from 10:00 minus the timeline's [10:00, 10:50), and a window ending at `now` (nothing
recorded after it yet) may run to the end of its day, week or month minus the timeline from `until`
on: the 30 days to now are a few days, a week and a month. Of every such cover, the one reading
least is chosen (a bucket counts one, an hour of timeline before `now` `_TIMELINE_HOUR`): the sums
are exact whatever lies after `now`, only the speed assumes it is little.

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
# An hour of the timeline (a row per call) reads about as much as two buckets (a row per value: an
# hour's calls outnumber its users, and endpoints or models far more).
_TIMELINE_HOUR = 2


@dataclass(frozen=True, slots=True)
class Cover:
    edges: tuple[Span, Span]  # the timeline spans at the two ends, [start, end) (empty if aligned)
    months: list[date] = field(default_factory=list)
    plus: list[Bucket] = field(default_factory=list)  # weeks, days and hours added
    minus: list[Bucket] = field(default_factory=list)  # and subtracted (only when signed)
    signs: tuple[int, int] = (1, 1)  # of the edges: -1 for a span outside the window the buckets cover

    def starts(self, grain: str) -> list[datetime]:
        return [start for g, start in self.plus if g == grain]

    def buckets(self) -> list[Bucket]:
        """Every added bucket, months included, as llm_usage_by_dimension keys them."""
        return [("month", _midnight(m)) for m in self.months] + self.plus


def cover(
    since: datetime,
    until: datetime,
    grains: tuple[Grain, ...] = ALL_GRAINS,
    *,
    signed: bool = False,
    now: datetime | None = None,
) -> Cover:
    """`since` and `until` are aware datetimes; `grains` the bucket sizes above an hour to use (a
    daily series cannot use weeks or months, whose buckets would hide their days); `now`, after
    which the timeline is taken to be empty (None: it may hold anything anywhere)."""
    since, until = since.astimezone(UTC), until.astimezone(UTC)
    h0, h1 = _ceil_hour(since), _floor_hour(until)
    inside = Cover(((since, until), (until, until)))  # the timeline alone
    if not signed:
        return inside if h0 > h1 else _between(since, until, h0, h1, grains, signed)
    starts = sorted({h0, _floor_hour(since)}, reverse=True)  # the first: the window's own hours
    ends = [h1, *_ends(until, grains)]
    covers = [_between(since, until, s, e, grains, signed) for s in starts for e in ends if s <= e]
    # the head span before the tail span (the queries sign a timeline row by the span it is in)
    ordered = [c for c in covers if c.edges[0][1] <= c.edges[1][0]]
    return min([*ordered, inside], key=lambda c: _cost(c, now))  # the first of the cheapest


def _between(
    since: datetime, until: datetime, start: datetime, end: datetime, grains: tuple[Grain, ...], signed: bool
) -> Cover:
    """[start, end) (whole hours) in buckets, and the timeline between them and the window's ends:
    added inside the window, subtracted outside."""
    head, tail = (
        (since, start) if start >= since else (start, since),
        (end, until) if end <= until else (until, end),
    )
    months: list[date] = []
    spans = [(start, end)]
    if "month" in grains:
        m0, m1 = _ceil_month(start), _midnight(end.date().replace(day=1))
        if m0 < m1:
            months = _months(m0.date(), m1.date())
            spans = [(start, m0), (m1, end)]
    levels = [_LEVELS["hour"], *(_LEVELS[g] for g in ("day", "week") if g in grains)]
    parts = [p for a, b in spans for p in _cover(_hours(a), _hours(b), levels, signed)]
    plus = [(g, _EPOCH + h * _HOUR) for g, h, sign in parts if sign > 0]
    minus = [(g, _EPOCH + h * _HOUR) for g, h, sign in parts if sign < 0]
    signs = (1 if start >= since else -1, 1 if end <= until else -1)
    return Cover((head, tail), months, plus, minus, signs)


def _ends(until: datetime, grains: tuple[Grain, ...]) -> list[datetime]:
    """The ends after `until` of its hour, day, week and month (those of `grains`)."""
    hour = _hours(_ceil_hour(until))
    sizes = [_LEVELS[g] for g in ("hour", "day", "week") if g == "hour" or g in grains]
    ends = {_EPOCH + _ceil(hour, size, offset) * _HOUR for _, size, offset in sizes}
    if "month" in grains:
        ends.add(_ceil_month(until))
    return sorted(end for end in ends if end > until)


def _cost(parts: Cover, now: datetime | None) -> float:
    """Buckets read, and the timeline's hours before `now` (after it, there is next to nothing)."""
    hours = 0.0
    for start, end in parts.edges:
        end = min(end, now) if now else end
        hours += max((end - start) / _HOUR, 0)
    return len(parts.months) + len(parts.plus) + len(parts.minus) + _TIMELINE_HOUR * hours


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
    since: datetime, until: datetime, grains: tuple[Grain, ...] = ALL_GRAINS, *, now: datetime | None = None
) -> dict[str, Any]:
    """For the queries over llm_usage_by_dimension (added and subtracted buckets) and the timeline
    (head and tail spans, each added or subtracted: head_sign, tail_sign)."""
    parts = cover(since, until, grains, signed=True, now=now)
    return {
        "buckets": [(grain, _text(start)) for grain, start in parts.buckets()],
        "minus_buckets": [(grain, _text(start)) for grain, start in parts.minus],
        **_edges(parts),
        "head_sign": parts.signs[0],
        "tail_sign": parts.signs[1],
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


def _floor_hour(t: datetime) -> datetime:
    return t.replace(minute=0, second=0, microsecond=0)


def _ceil_hour(t: datetime) -> datetime:
    floor = _floor_hour(t)
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
