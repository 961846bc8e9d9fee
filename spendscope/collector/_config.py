"""The collector's settings: one table of name, environment variable, parser and default.

Explicit argument > environment > default, as for the app-side settings (spendscope/settings.py). A bad
value raises `ConfigurationError` naming the setting and where the value came from.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from spendscope.collector._limits import MAX_DEPTH, Limits
from spendscope.settings import ConfigurationError
from spendscope.store.dsn import DEFAULT_STORE, STORE_ENV, parse_dsn
from spendscope.store.errors import StoreError

MiB = 1024 * 1024


def _listen(raw: str) -> tuple[str, int]:
    text = raw.strip()
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit():
        raise ValueError("must be HOST:PORT, such as 127.0.0.1:4318")
    port = int(port_text)
    if port > 65535:
        raise ValueError("port must be between 0 and 65535")
    host = host.strip("[]") or "127.0.0.1"
    return host, port


def _int_at_least(minimum: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw.strip().replace("_", ""))
        except ValueError:
            raise ValueError("must be a whole number") from None
        if value < minimum:
            raise ValueError(f"must be at least {minimum}")
        return value

    return parse


def _int_between(minimum: int, maximum: int) -> Callable[[str], int]:
    at_least = _int_at_least(minimum)

    def parse(raw: str) -> int:
        value = at_least(raw)
        if value > maximum:
            raise ValueError(f"must be at most {maximum}")
        return value

    return parse


def _seconds(raw: str) -> float:
    try:
        value = float(raw.strip())
    except ValueError:
        raise ValueError("must be a number of seconds, such as 0.5") from None
    if not 0 < value <= 3600:
        raise ValueError("must be more than 0 and at most 3600 seconds")
    return value


def _seconds_or_off(raw: str) -> float:
    if raw.strip() in ("0", "0.0"):
        return 0.0
    return _seconds(raw)


def _text(raw: str) -> str:
    if not raw.strip():
        raise ValueError("must not be empty")
    return raw.strip()


def _dsn(raw: str) -> str:
    text = _text(raw)
    try:
        parse_dsn(text)
    except StoreError as exc:
        raise ValueError(str(exc)) from None
    return text


def _path(raw: str) -> Path:
    return Path(_text(raw)).expanduser().absolute()


def _file(raw: str) -> Path:
    path = _path(raw)
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
    Setting("listen", "SPENDSCOPE_COLLECTOR_LISTEN", _listen, ("127.0.0.1", 4318), "HOST:PORT to serve on"),
    Setting(
        "store",
        STORE_ENV,
        _dsn,
        DEFAULT_STORE,
        "the store: a directory (a local store, its server started if need be) or http(s)://... (a server)",
    ),
    Setting(
        "spool",
        "SPENDSCOPE_COLLECTOR_SPOOL",
        _path,
        None,
        "directory for batches the store could not take (default: next to a local store's directory)",
    ),
    Setting(
        "price_file",
        "SPENDSCOPE_PRICE_FILE",
        _file,
        None,
        "TOML/JSON price overrides: with genai-prices, what the collector loads into model_prices on start",
    ),
    Setting(
        "max_body_bytes",
        "SPENDSCOPE_COLLECTOR_MAX_BODY_BYTES",
        _int_at_least(1024),
        20 * MiB,
        "largest request body, before and after decompression (413 beyond)",
    ),
    Setting(
        "max_decoded_bytes",
        "SPENDSCOPE_COLLECTOR_MAX_DECODED_BYTES",
        _int_at_least(MiB),
        256 * MiB,
        "memory one request may take once decoded, estimated as it is decoded (413 beyond)",
    ),
    Setting(
        "decoders",
        "SPENDSCOPE_COLLECTOR_DECODERS",
        _int_at_least(1),
        1,
        "requests decoded at once, each within max_decoded_bytes (the others wait their turn)",
    ),
    Setting(
        "attribute_count_limit",
        "SPENDSCOPE_COLLECTOR_ATTRIBUTE_COUNT_LIMIT",
        _int_at_least(1),
        128,
        "attributes of a span, resource, scope, event, link or data point, and entries of an array or map "
        "value (a span or point over it is refused)",
    ),
    Setting(
        "attribute_value_length_limit",
        "SPENDSCOPE_COLLECTOR_ATTRIBUTE_VALUE_LENGTH_LIMIT",
        _int_at_least(64),
        65_536,
        "characters of an attribute value (each element of an array) and of every name, key and message",
    ),
    Setting(
        "attribute_depth_limit",
        "SPENDSCOPE_COLLECTOR_ATTRIBUTE_DEPTH_LIMIT",
        _int_between(1, MAX_DEPTH),
        8,
        "arrays and maps nested in one another in an attribute value",
    ),
    Setting(
        "span_event_count_limit",
        "SPENDSCOPE_COLLECTOR_SPAN_EVENT_COUNT_LIMIT",
        _int_at_least(0),
        128,
        "events of a span",
    ),
    Setting(
        "span_link_count_limit",
        "SPENDSCOPE_COLLECTOR_SPAN_LINK_COUNT_LIMIT",
        _int_at_least(0),
        128,
        "links of a span",
    ),
    Setting(
        "queue_spans",
        "SPENDSCOPE_COLLECTOR_QUEUE_SPANS",
        _int_at_least(1),
        150_000,
        "spans held in memory before answering 503",
    ),
    Setting(
        "queue_bytes",
        "SPENDSCOPE_COLLECTOR_QUEUE_BYTES",
        _int_at_least(1024),
        256 * MiB,
        "memory of the spans held until written (their rows, estimated when decoded) before answering 503",
    ),
    Setting(
        "batch_spans",
        "SPENDSCOPE_COLLECTOR_BATCH_SPANS",
        _int_at_least(1),
        50_000,
        "spans per insert (each insert costs ClickHouse ~0.5 s of CPU besides its spans: larger is cheaper)",
    ),
    Setting(
        "flush_interval",
        "SPENDSCOPE_COLLECTOR_FLUSH_INTERVAL",
        _seconds,
        1.0,
        "seconds a span may wait for its batch to fill",
    ),
    Setting(
        "token",
        "SPENDSCOPE_COLLECTOR_TOKEN",
        _text,
        None,
        "bearer token every request must carry (none: no authentication)",
    ),
    Setting(
        "spool_max_bytes",
        "SPENDSCOPE_COLLECTOR_SPOOL_MAX_BYTES",
        _int_at_least(0),
        4096 * MiB,
        "spool size beyond which new spans get 503 while the store is down (0: no limit)",
    ),
    Setting(
        "rollup_interval",
        "SPENDSCOPE_COLLECTOR_ROLLUP_INTERVAL",
        _seconds_or_off,
        60.0,
        "seconds between runs of the rollup builder (0: never; `spendscope rollups build` runs it once)",
    ),
    Setting(
        "writers",
        "SPENDSCOPE_COLLECTOR_WRITERS",
        _int_at_least(1),
        2,
        "batches inserted at once, each on its own store connection",
    ),
)
_BY_NAME = {s.name: s for s in SETTINGS}


@dataclass(frozen=True)
class CollectorConfig:
    """Everything the collector needs. Build it with `CollectorConfig.resolve(...)` to apply the
    environment and check the values; the constructor takes values as they are (tests use it)."""

    listen: tuple[str, int] = ("127.0.0.1", 4318)
    store: str = DEFAULT_STORE
    spool: Path | None = None
    price_file: Path | None = None
    max_body_bytes: int = 20 * MiB
    max_decoded_bytes: int = 256 * MiB
    decoders: int = 1
    attribute_count_limit: int = 128
    attribute_value_length_limit: int = 65_536
    attribute_depth_limit: int = 8
    span_event_count_limit: int = 128
    span_link_count_limit: int = 128
    queue_spans: int = 150_000
    queue_bytes: int = 256 * MiB
    batch_spans: int = 50_000
    flush_interval: float = 1.0
    token: str | None = None
    spool_max_bytes: int = 4096 * MiB
    rollup_interval: float = 60.0
    writers: int = 2

    @classmethod
    def resolve(cls, environ: Mapping[str, str] | None = None, **explicit: Any) -> CollectorConfig:
        """Explicit keyword arguments (None means not given) > environment > defaults."""
        env = os.environ if environ is None else environ
        unknown = set(explicit) - set(_BY_NAME)
        if unknown:
            raise TypeError(f"unknown collector settings: {', '.join(sorted(unknown))}")
        values: dict[str, Any] = {}
        for setting in SETTINGS:
            given = explicit.get(setting.name)
            if given is not None:
                values[setting.name] = _parse(setting, _as_text(given), f"option --{_flag(setting.name)}")
            elif env.get(setting.env):
                values[setting.name] = _parse(
                    setting, env[setting.env], f"environment variable {setting.env}"
                )
            else:
                values[setting.name] = setting.default
        config = cls(**values)
        return config.checked()

    def checked(self) -> CollectorConfig:
        if self.batch_spans > self.queue_spans:
            raise ConfigurationError(
                f"collector setting batch_spans ({self.batch_spans}) must not exceed queue_spans "
                f"({self.queue_spans})"
            )
        return self

    @property
    def store_dir(self) -> Path | None:
        """A local store's data directory, or None for a ClickHouse server."""
        return parse_dsn(self.store).directory

    @property
    def limits(self) -> Limits:
        """What one request may hold (_limits.py)."""
        return Limits(
            attribute_count=self.attribute_count_limit,
            attribute_value_length=self.attribute_value_length_limit,
            attribute_depth=self.attribute_depth_limit,
            span_events=self.span_event_count_limit,
            span_links=self.span_link_count_limit,
            decoded_bytes=self.max_decoded_bytes,
        )

    @property
    def spool_dir(self) -> Path:
        """The spool directory: as set, else next to a local store's directory (`<dir>-spool`), else
        ./spendscope-spool for a ClickHouse server."""
        if self.spool is not None:
            return self.spool
        data = self.store_dir
        if data is not None:
            return data.with_name(data.name + "-spool")
        return Path("spendscope-spool").absolute()

    def with_(self, **changes: Any) -> CollectorConfig:
        return replace(self, **changes).checked()


def _as_text(value: Any) -> str:
    if isinstance(value, tuple) and len(value) == 2:
        return f"{value[0]}:{value[1]}"
    return str(value)


def _flag(name: str) -> str:
    return name.replace("_", "-")


def _parse(setting: Setting, raw: str, source: str) -> Any:
    try:
        return setting.parse(raw)
    except ValueError as exc:
        raise ConfigurationError(f"collector setting {setting.name} ({source}={raw!r}): {exc}") from None
