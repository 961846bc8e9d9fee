"""A window cut into rollup buckets (pure): the parts add up to the window exactly, largest first."""

from __future__ import annotations

import itertools
import random
from collections import Counter
from datetime import UTC, date, datetime, timedelta

import pytest

from spendscope.store.windows import ALL_GRAINS, Cover, Grain, cover, dimension_params, rollup_params

SUNDAY = datetime(2026, 11, 22, 3, 6, 30, 250000, tzinfo=UTC)
HOUR = timedelta(hours=1)
SIZES = {"hour": HOUR, "day": timedelta(days=1), "week": timedelta(days=7)}


def pieces(parts: Cover) -> list[tuple[datetime, datetime, int]]:
    """The cover as signed spans of time: its buckets (+1 added, -1 subtracted) and timeline edges."""
    out = []
    for month in parts.months:
        start = datetime(month.year, month.month, 1, tzinfo=UTC)
        out.append((start, datetime(month.year + month.month // 12, month.month % 12 + 1, 1, tzinfo=UTC), 1))
    for buckets, sign in ((parts.plus, 1), (parts.minus, -1)):
        out += [(start, start + SIZES[grain], sign) for grain, start in buckets]
    return out + [(start, end, sign) for (start, end), sign in zip(parts.edges, parts.signs, strict=True)]


def assert_exact(parts: Cover, since: datetime, until: datetime) -> None:
    """Every instant of the window counted once and nothing else counted, the timeline read in two
    spans (the head before the tail, each added inside the window or subtracted just outside it)."""
    spans = pieces(parts)
    points = sorted({t for start, end, _ in spans for t in (start, end)} | {since, until})
    for a, b in itertools.pairwise(points):
        counted = sum(sign for start, end, sign in spans if start <= a and b <= end)
        assert counted == (since <= a and b <= until), (a, b, counted)
    (head_since, head_until), (tail_since, tail_until) = parts.edges
    assert head_until <= tail_since
    assert (head_since, head_until)[parts.signs[0] < 0] == since  # starts the window, or ends at it
    assert (tail_until, tail_since)[parts.signs[1] < 0] == until
    assert all(n == 1 for n in Counter(parts.buckets() + parts.minus).values())  # no bucket twice


def test_thirty_days_to_now() -> None:
    since = SUNDAY - timedelta(days=30)  # a Friday, 03:06:30.25
    plain = cover(since, SUNDAY)
    assert plain.edges == (
        (since, datetime(2026, 10, 23, 4, tzinfo=UTC)),
        (datetime(2026, 11, 22, 3, tzinfo=UTC), SUNDAY),
    )
    assert [start.date() for start in plain.starts("week")] == [
        date(2026, 10, 26),
        date(2026, 11, 2),
        date(2026, 11, 9),
    ]
    assert [start.day for start in plain.starts("day")] == [24, 25, *range(16, 22)]
    assert len(plain.starts("hour")) == 20 + 3  # Oct 23 04:00-24:00, Nov 22 00:00-03:00
    assert plain.minus == []
    assert_exact(plain, since, SUNDAY)

    signed = cover(since, SUNDAY, signed=True)  # 14 buckets instead of 34
    day = datetime(2026, 10, 23, tzinfo=UTC)
    assert signed.buckets() == [
        ("day", day),  # Oct 23 minus its first three hours, minus the timeline's 03:00-03:06:30.25
        ("day", day + timedelta(days=1)),
        ("day", day + timedelta(days=2)),
        *(("week", datetime(2026, 10, 26, tzinfo=UTC) + timedelta(weeks=w)) for w in range(4)),
        *(("hour", datetime(2026, 11, 22, h, tzinfo=UTC)) for h in range(3)),
    ]
    assert signed.minus == [
        *(("hour", day + timedelta(hours=h)) for h in range(3)),
        ("day", datetime(2026, 11, 22, tzinfo=UTC)),  # the last week minus its Sunday
    ]
    three = datetime(2026, 10, 23, 3, tzinfo=UTC)
    assert (signed.edges, signed.signs) == (
        ((three, since), (SUNDAY.replace(minute=0, second=0, microsecond=0), SUNDAY)),
        (-1, 1),
    )
    assert_exact(signed, since, SUNDAY)


def test_a_window_ending_now_runs_to_the_end_of_its_month() -> None:
    """Nothing is recorded after now: November whole, minus the timeline from `until` on, is cheaper
    than its weeks, days and hours; the rest of October is three days and a week minus Nov 1."""
    since = SUNDAY - timedelta(days=30)
    for now in (SUNDAY, SUNDAY + timedelta(minutes=5)):  # the few calls after `until` are read, subtracted
        parts = cover(since, SUNDAY, signed=True, now=now)
        day = datetime(2026, 10, 23, tzinfo=UTC)
        assert parts.months == [date(2026, 11, 1)]
        assert parts.plus == [
            ("day", day),
            ("day", day + timedelta(days=1)),
            ("day", day + timedelta(days=2)),
            ("week", datetime(2026, 10, 26, tzinfo=UTC)),
        ]
        assert parts.minus == [
            *(("hour", day + timedelta(hours=h)) for h in range(3)),
            ("day", datetime(2026, 11, 1, tzinfo=UTC)),
        ]
        assert (parts.edges[1], parts.signs) == ((SUNDAY, datetime(2026, 12, 1, tzinfo=UTC)), (-1, -1))
        assert_exact(parts, since, SUNDAY)
    # a window that ended two days ago keeps its end: two days of calls would be read to subtract them
    assert cover(since, SUNDAY, signed=True, now=SUNDAY + timedelta(days=2)) == cover(
        since, SUNDAY, signed=True
    )
    # a daily series runs to the end of the day at most, a monthly one never into a week
    daily = cover(since, SUNDAY, ("day",), signed=True, now=SUNDAY)
    assert daily.edges[1] == (SUNDAY, datetime(2026, 11, 23, tzinfo=UTC)) and daily.months == []
    monthly = cover(since, SUNDAY, ("month", "day"), signed=True, now=SUNDAY)
    assert monthly.months == [date(2026, 11, 1)] and monthly.starts("week") == []
    for parts in (daily, monthly):
        assert_exact(parts, since, SUNDAY)


def test_a_window_starting_late_in_an_hour_subtracts_the_start_of_that_hour() -> None:
    """[10:50, 14:00): the hours from 10:00 minus the timeline's 10:00-10:50 would read 50 minutes of
    calls, the 10 minutes of [10:50, 11:00) read less; [10:10, 14:00) is the other way round."""
    ten = datetime(2026, 11, 18, 10, tzinfo=UTC)
    late = cover(ten + timedelta(minutes=50), ten + 4 * HOUR, signed=True)
    assert (late.edges[0], late.signs[0], late.starts("hour")) == (
        (ten + timedelta(minutes=50), ten + HOUR),
        1,
        [ten + h * HOUR for h in range(1, 4)],
    )
    early = cover(ten + timedelta(minutes=10), ten + 4 * HOUR, signed=True)
    assert (early.edges[0], early.signs[0], early.starts("hour")) == (
        (ten, ten + timedelta(minutes=10)),
        -1,
        [ten + h * HOUR for h in range(4)],
    )
    # unsigned covers (the rollups of all five dimensions) only ever add
    plain = cover(ten + timedelta(minutes=10), ten + 4 * HOUR)
    assert plain.signs == (1, 1) and plain.edges[0] == (ten + timedelta(minutes=10), ten + HOUR)
    for parts in (late, early, plain):
        assert_exact(parts, parts.edges[0][0] if parts.signs[0] > 0 else parts.edges[0][1], ten + 4 * HOUR)


def test_whole_months_are_one_bucket_each_and_series_keep_their_periods() -> None:
    since, until = datetime(2026, 9, 30, 22, tzinfo=UTC), datetime(2026, 12, 2, tzinfo=UTC)
    parts = cover(since, until)
    assert parts.months == [date(2026, 10, 1), date(2026, 11, 1)]
    assert parts.plus == [
        ("hour", datetime(2026, 9, 30, 22, tzinfo=UTC)),
        ("hour", datetime(2026, 9, 30, 23, tzinfo=UTC)),
        ("day", datetime(2026, 12, 1, tzinfo=UTC)),
    ]
    daily = cover(since, until, ("day",), signed=True)  # a daily series: no bucket longer than a day
    assert (daily.months, daily.starts("week"), len(daily.starts("day"))) == ([], [], 62)
    monthly = cover(since, until, ("month", "day"), signed=True)  # no week crosses into another month
    assert monthly.starts("week") == [] and monthly.months == parts.months
    for parts in (daily, monthly):
        assert_exact(parts, since, until)


def test_windows_inside_an_hour_or_aligned_to_it() -> None:
    inside = cover(SUNDAY - timedelta(minutes=5), SUNDAY, signed=True)
    assert inside == Cover(((SUNDAY - timedelta(minutes=5), SUNDAY), (SUNDAY, SUNDAY)))
    hour = datetime(2026, 11, 22, 3, tzinfo=UTC)
    aligned = cover(hour - 2 * HOUR, hour)
    assert aligned.plus == [("hour", hour - 2 * HOUR), ("hour", hour - HOUR)]
    assert all(start == end for start, end in aligned.edges)


@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("grains", [ALL_GRAINS, ("month", "day"), ("day",)])
def test_any_window_is_counted_exactly_once(grains: tuple[Grain, ...], signed: bool) -> None:
    rng = random.Random(7)
    start = datetime(2025, 12, 1, tzinfo=UTC)
    for _ in range(150):
        since = start + timedelta(seconds=rng.randrange(400 * 86400), microseconds=rng.randrange(10**6))
        until = since + rng.choice(
            [
                timedelta(seconds=rng.randrange(1, 7200)),
                timedelta(hours=rng.randrange(1, 100)),
                timedelta(days=rng.randrange(1, 75), seconds=rng.randrange(86400)),
            ]
        )
        # now: unknown, at the window's end or a little after, long after, before it (a skewed clock)
        now = rng.choice([None, until, until + timedelta(minutes=3), until + timedelta(days=9), since])
        parts = cover(since, until, grains, signed=signed, now=now)
        assert_exact(parts, since, until)
        assert "week" in grains or parts.starts("week") == []
        assert "month" in grains or parts.months == []
        assert signed or (parts.minus == [] and parts.signs == (1, 1))


def test_the_cover_as_query_parameters() -> None:
    since, until = datetime(2026, 10, 31, 23, 30, tzinfo=UTC), datetime(2026, 12, 1, 1, tzinfo=UTC)
    edges = {
        "head_since": "2026-10-31 23:30:00.000000",
        "head_until": "2026-11-01 00:00:00.000000",
        "tail_since": "2026-12-01 01:00:00.000000",
        "tail_until": "2026-12-01 01:00:00.000000",
    }
    assert dimension_params(since, until) == {
        "buckets": [("month", "2026-11-01 00:00:00"), ("hour", "2026-12-01 00:00:00")],
        "minus_buckets": [],
        **edges,
        "head_sign": 1,
        "tail_sign": 1,
    }
    assert dimension_params(since, until, now=until) == dimension_params(since, until)  # none better
    later = until + timedelta(minutes=30)  # nothing after it: Dec 1 whole, minus the timeline from 01:30
    assert dimension_params(since, later, now=later) == {
        "buckets": [("month", "2026-11-01 00:00:00"), ("day", "2026-12-01 00:00:00")],
        "minus_buckets": [],
        **edges,
        "tail_since": "2026-12-01 01:30:00.000000",
        "tail_until": "2026-12-02 00:00:00.000000",
        "head_sign": 1,
        "tail_sign": -1,
    }
    assert rollup_params(since, until) == {
        "days": [f"2026-11-{d:02d}" for d in range(1, 31)],
        "hours": ["2026-12-01 00:00:00"],
        **edges,
    }
