"""Times as people type them on the command line (pure). All times are UTC, and within what the store's
DateTime64(9) columns hold (1900-01-01 to 2262-04-11): anything else is a `ReportError`."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

from spendscope.store.errors import ReportError

_RELATIVE = re.compile(r"^(\d{1,12})\s*(m|min|h|d|w)$")
_UNITS = {"m": "minutes", "min": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_HELP = "use 30d, 12h, 90m, 2w, today, now, 2026-11-01 or 2026-11-01T10:00Z"
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(2262, 4, 11, tzinfo=UTC)
_RANGE = f"times must be from {EARLIEST:%Y-%m-%d} to {LATEST:%Y-%m-%d} (UTC)"


def parse_time(text: str, *, now: datetime, option: str = "time") -> datetime:
    """`30d` (ago), `today` (UTC midnight), `now`, an ISO date or date-time (naive means UTC), between
    EARLIEST and LATEST."""
    try:
        parsed = _parse_time(text, now, option)
    except OverflowError:  # beyond what datetime holds: far out of range
        raise ReportError(f"bad {option} {_shown(text)}: {_RANGE}") from None
    if not EARLIEST <= parsed <= LATEST:
        raise ReportError(f"bad {option} {_shown(text)}: {_RANGE}")
    return parsed


def _shown(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:37] + "...")


def _parse_time(text: str, now: datetime, option: str) -> datetime:
    value = text.strip()
    lowered = value.lower()
    if lowered == "now":
        return now
    if lowered == "today":
        return datetime.combine(now.date(), datetime.min.time(), UTC)
    if match := _RELATIVE.match(lowered):
        return now - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    try:
        parsed = datetime.fromisoformat(value.replace("z", "Z"))
    except ValueError:
        raise ReportError(f"bad {option} {_shown(text)}: {_HELP}") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def parse_range(since: str, until: str | None, *, now: datetime | None = None) -> tuple[datetime, datetime]:
    current = now or datetime.now(UTC)
    start = parse_time(since, now=current, option="--since")
    end = parse_time(until, now=current, option="--until") if until else current
    if end <= start:
        raise ReportError(f"empty time range: --until ({end:%Y-%m-%d %H:%M:%S}) is not after --since")
    return start, end


def parse_month(text: str) -> tuple[date, date]:
    """`2026-11` -> (2026-11-01, 2026-12-01)."""
    match = _MONTH.match(text.strip())
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise ReportError(f"bad month {_shown(text)}: use YYYY-MM, e.g. 2026-11")
    year, month = int(match.group(1)), int(match.group(2))
    if not EARLIEST.year <= year <= LATEST.year:
        raise ReportError(f"bad month {_shown(text)}: {_RANGE}")
    first = date(year, month, 1)
    following = date(year + month // 12, month % 12 + 1, 1)
    if following > LATEST.date():
        raise ReportError(f"bad month {_shown(text)}: {_RANGE}")
    return first, following


def ch_time(value: datetime) -> str:
    """A UTC time as a DateTime64(9, 'UTC') query parameter."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
