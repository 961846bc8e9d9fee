"""SpendScope's settings: one table of name, environment variable, parser and default.

Explicit argument > environment > default. A bad value raises `ConfigurationError` naming the setting
and the variable it came from.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit


class ConfigurationError(ValueError):
    """A SpendScope setting has a value it cannot use."""


def _str(raw: str) -> str:
    if not raw.strip():
        raise ValueError("must not be empty")
    return raw.strip()


def _url(raw: str) -> str:
    parts = urlsplit(raw.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an http(s) URL such as http://localhost:4318")
    return raw.strip().rstrip("/")


def _int_at_least(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise ValueError("must be a whole number") from None
        if value < minimum or (maximum is not None and value > maximum):
            bound = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
            raise ValueError(f"must be {bound}")
        return value

    return parse


def _bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError("must be true or false")


def _exporters(allowed: tuple[str, ...]) -> Callable[[str], tuple[str, ...]]:
    def parse(raw: str) -> tuple[str, ...]:
        values = tuple(v.strip().lower() for v in raw.split(",") if v.strip())
        unknown = [v for v in values if v not in allowed]
        if not values or unknown:
            raise ValueError(f"must be a comma-separated list of {', '.join(allowed)}")
        return values

    return parse


def _existing_file(raw: str) -> Path:
    path = Path(raw).expanduser()
    if not path.is_file():
        raise ValueError(f"no such file: {path}")
    return path


@dataclass(frozen=True)
class Setting:
    name: str
    env: str
    parse: Callable[[str], Any]
    default: Any
    help: str


SETTINGS: tuple[Setting, ...] = (
    Setting("service_name", "OTEL_SERVICE_NAME", _str, None, "service.name of this app"),
    Setting(
        "otlp_endpoint",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        _url,
        "http://localhost:4318",
        "OTLP/HTTP base URL; /v1/traces and /v1/metrics are appended",
    ),
    Setting(
        "traces_exporter",
        "OTEL_TRACES_EXPORTER",
        _exporters(("otlp", "console", "none")),
        ("otlp",),
        "where spans go",
    ),
    Setting(
        "metrics_exporter",
        "OTEL_METRICS_EXPORTER",
        _exporters(("otlp", "prometheus", "console", "none")),
        ("otlp",),
        "where metrics go; prometheus serves /metrics from the app itself",
    ),
    Setting(
        "metric_export_interval_ms",
        "OTEL_METRIC_EXPORT_INTERVAL",
        _int_at_least(1),
        60_000,
        "milliseconds between metric exports (push exporters)",
    ),
    Setting(
        "prometheus_host", "OTEL_EXPORTER_PROMETHEUS_HOST", _str, "localhost", "address to serve /metrics on"
    ),
    Setting(
        "prometheus_port", "OTEL_EXPORTER_PROMETHEUS_PORT", _int_at_least(0, 65535), 9464, "port for /metrics"
    ),
    Setting(
        "user_label_limit",
        "SPENDSCOPE_USER_LABEL_LIMIT",
        _int_at_least(0),
        1000,
        "distinct `user` metric label values per process; the rest become __other__",
    ),
    Setting("price_file", "SPENDSCOPE_PRICE_FILE", _existing_file, None, "TOML/JSON price overrides"),
    Setting(
        "store_raw_retention_days",
        "SPENDSCOPE_STORE_RAW_RETENTION_DAYS",
        _int_at_least(0),
        None,
        "days of raw spans and calls the store keeps (0: all); set in the store by `spendscope migrate`",
    ),
    Setting(
        "store_rollup_retention_days",
        "SPENDSCOPE_STORE_ROLLUP_RETENTION_DAYS",
        _int_at_least(0),
        None,
        "days of rollups the store keeps (0: all; at least the raw retention); set by `spendscope migrate`",
    ),
    Setting(
        "store_trust_client_costs",
        "SPENDSCOPE_STORE_TRUST_CLIENT_COSTS",
        _bool,
        None,
        "calls of a model the store has no price for take the cost their client sent (anyone who can "
        "reach the collector can then set those costs); set by `spendscope migrate`",
    ),
    Setting(
        "inject_stream_usage",
        "SPENDSCOPE_INJECT_STREAM_USAGE",
        _bool,
        True,
        "ask OpenAI for usage on streams the caller did not ask it for (the chunk is hidden from the caller)",
    ),
)
_BY_NAME = {s.name: s for s in SETTINGS}


def resolve(name: str, explicit: Any = None) -> Any:
    """The value of setting `name`: `explicit` if given, else its environment variable, else the default."""
    setting = _BY_NAME[name]
    if explicit is not None:
        # Explicit values go through the same parser as the environment's, so they are checked alike.
        text = ",".join(explicit) if isinstance(explicit, list | tuple) else str(explicit)
        return _parse(setting, text, f"argument {name}")
    raw = os.environ.get(setting.env)
    if raw is None or raw == "":
        return setting.default
    return _parse(setting, raw, f"environment variable {setting.env}")


def _parse(setting: Setting, raw: str, source: str) -> Any:
    try:
        return setting.parse(raw)
    except ValueError as exc:
        raise ConfigurationError(f"SpendScope setting {setting.name} ({source}={raw!r}): {exc}") from None
