"""The reconciler's settings: one table of name, environment variable, parser and default.

Explicit argument > environment > default, as for the app and collector settings. A bad value raises
`ConfigurationError` naming the setting and where it came from. The admin key is not a setting: it
is read from OPENAI_ADMIN_KEY only (never from the command line, where `ps` would show it).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from spendscope.settings import ConfigurationError

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def duration(raw: str) -> timedelta:
    match = _DURATION.match(raw.lower())
    if not match:
        raise ValueError("must be a duration such as 90s, 30m, 1h or 1d")
    return timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})


def _ratio(raw: str) -> float:
    text = raw.strip()
    percent = text.endswith("%")
    try:
        value = float(text.rstrip("%")) / (100 if percent else 1)
    except ValueError:
        raise ValueError("must be a ratio such as 0.95 or a percentage such as 95%") from None
    if not 0 <= value <= 10:
        raise ValueError("must be between 0 and 10 (1 = 100%)")
    return value


def _int_between(low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw.strip().replace("_", ""))
        except ValueError:
            raise ValueError("must be a whole number") from None
        if not low <= value <= high:
            raise ValueError(f"must be between {low} and {high}")
        return value

    return parse


def _seconds(raw: str) -> float:
    return duration(raw).total_seconds() if not raw.strip().replace(".", "").isdigit() else float(raw)


def _retry_wait(raw: str) -> float:
    value = _seconds(raw)
    if value > 120:  # the openai SDK, which makes the retries, waits for a Retry-After of 120 s at most
        raise ValueError("must be at most 120s (the longest Retry-After the openai SDK waits for)")
    return value


def _width(raw: str) -> str:
    if raw.strip() not in ("1h", "1d"):
        raise ValueError("must be 1h or 1d")
    return raw.strip()


def _listen(raw: str) -> tuple[str, int]:
    host, sep, port = raw.strip().rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError("must be HOST:PORT, such as 127.0.0.1:9465")
    return host.strip("[]") or "127.0.0.1", int(port)


def _path(raw: str) -> Path:
    if not raw.strip():
        raise ValueError("must not be empty")
    return Path(raw.strip()).expanduser().absolute()


@dataclass(frozen=True)
class Setting:
    name: str
    env: str
    parse: Callable[[str], Any]
    default: Any
    help: str


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "min_coverage",
        "SPENDSCOPE_RECONCILE_MIN_COVERAGE",
        _ratio,
        0.95,
        "exit 3 when tracked / reported spend is below this (token coverage while no cost day is closed)",
    ),
    Setting(
        "usage_settle",
        "SPENDSCOPE_RECONCILE_USAGE_SETTLE",
        duration,
        timedelta(hours=1),
        "compare a usage bucket only this long after it ended",
    ),
    Setting(
        "costs_settle",
        "SPENDSCOPE_RECONCILE_COSTS_SETTLE",
        duration,
        timedelta(days=1),
        "compare a cost day only this long after it ended",
    ),
    Setting("bucket_width", "SPENDSCOPE_RECONCILE_BUCKET_WIDTH", _width, "1h", "usage buckets: 1h or 1d"),
    Setting(
        "interval",
        "SPENDSCOPE_RECONCILE_INTERVAL",
        duration,
        timedelta(hours=1),
        "--watch: time between runs",
    ),
    Setting(
        "max_retries",
        "SPENDSCOPE_RECONCILE_MAX_RETRIES",
        _int_between(0, 20),
        5,
        "retries per admin API call on 429, 5xx and connection errors",
    ),
    Setting(
        "max_retry_wait",
        "SPENDSCOPE_RECONCILE_MAX_RETRY_WAIT",
        _retry_wait,
        120.0,
        "longest Retry-After honoured (seconds, at most 120); a longer one fails the run",
    ),
    Setting(
        "page_bytes",
        "SPENDSCOPE_RECONCILE_PAGE_BYTES",
        _int_between(1 << 16, 1 << 30),
        16 << 20,
        "memory budget of one usage page: later pages are sized to it",
    ),
    Setting(
        "metrics_file",
        "SPENDSCOPE_RECONCILE_METRICS_FILE",
        _path,
        None,
        "write the Prometheus metrics here after each run (node_exporter textfile collector)",
    ),
    Setting(
        "metrics_listen",
        "SPENDSCOPE_RECONCILE_METRICS_LISTEN",
        _listen,
        ("127.0.0.1", 9466),
        "--watch: serve Prometheus metrics on HOST:PORT /metrics (prometheus/prometheus.yml scrapes 9466)",
    ),
)
_BY_NAME = {s.name: s for s in SETTINGS}


def resolve(name: str, explicit: Any = None, environ: Mapping[str, str] | None = None) -> Any:
    setting = _BY_NAME[name]
    env = os.environ if environ is None else environ
    if explicit is not None:
        return _parse(setting, str(explicit), f"option --{name.replace('_', '-')}")
    raw = env.get(setting.env)
    if not raw:
        return setting.default
    return _parse(setting, raw, f"environment variable {setting.env}")


def _parse(setting: Setting, raw: str, source: str) -> Any:
    try:
        return setting.parse(raw)
    except ValueError as exc:
        raise ConfigurationError(f"reconcile setting {setting.name} ({source}={raw!r}): {exc}") from None
