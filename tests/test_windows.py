"""A window cut into rollup buckets (pure): the parts add up to the window exactly, largest first."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, date, datetime, timedelta

import pytest

from spendscope.store.windows import ALL_GRAINS, Cover, Grain, cover, dimension_params, rollup_params

SUNDAY = datetime(2026, 11, 22, 3, 6, 30, 250000, tzinfo=UTC)
HOUR = timedelta(hours=1)
SIZES = {"hour": HOUR, "day": timedelta(days=1), "week": timedelta(days=7)}


def hours_counted(parts: Cover) -> Counter[datetime]:
    """How many times each whole hour is counted: +1 per added bucket holding it, -1 per subtracted."""
    counted: Counter[datetime] = Counter()
    for month in parts.months:
        start = datetime(month.year, month.month, 1, tzinfo=UTC)
        end = datetime(month.year + month.month // 12, month.month % 12 + 1, 1, tzinfo=UTC)
        counted.update(start + i * HOUR for i in range(int((end - start) / HOUR)))
    for buckets, sign in ((parts.plus, 1), (parts.minus, -1)):
        for grain, start in buckets:
            for i in range(int(SIZES[grain] / HOUR)):
                counted[start + i * HOUR] += sign
    return +counted  # drops hours counted 0 times


def assert_exact(parts: Cover, since: datetime, until: datetime) -> None:
    """Every whole hour of the window counted once and nothing else; the rest in the two edges."""
    (head_since, head_until), (tail_since, tail_until) = parts.edges
    assert head_since == since and tail_until == until
    assert head_until - head_since < HOUR and tail_until - tail_since < HOUR
    whole = int((tail_since - head_until) / HOUR) if tail_since > head_until else 0
    assert hours_counted(parts) == Counter(head_until + i * HOUR for i in range(whole))
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

    signed = cover(since, SUNDAY, signed=True)  # 15 buckets instead of 34
    day = datetime(2026, 10, 23, tzinfo=UTC)
    assert signed.buckets() == [
        ("day", day),  # Oct 23 minus its first four hours
        ("day", day + timedelta(days=1)),
        ("day", day + timedelta(days=2)),
        *(("week", datetime(2026, 10, 26, tzinfo=UTC) + timedelta(weeks=w)) for w in range(4)),
        *(("hour", datetime(2026, 11, 22, h, tzinfo=UTC)) for h in range(3)),
    ]
    assert signed.minus == [
        *(("hour", day + timedelta(hours=h)) for h in range(4)),
        ("day", datetime(2026, 11, 22, tzinfo=UTC)),  # the last week minus its Sunday
    ]
    assert_exact(signed, since, SUNDAY)


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
        parts = cover(since, until, grains, signed=signed)
        assert_exact(parts, since, until)
        assert "week" in grains or parts.starts("week") == []
        assert "month" in grains or parts.months == []
        assert signed or parts.minus == []


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
    }
    assert rollup_params(since, until) == {
        "days": [f"2026-11-{d:02d}" for d in range(1, 31)],
        "hours": ["2026-12-01 00:00:00"],
        **edges,
    }
