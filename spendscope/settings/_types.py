"""The field types the settings models share: each parses a setting's text (from the environment or
an option) or takes the typed value a caller passes, and says in a few words what a bad one lacks."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, TypeVar
from urllib.parse import urlsplit

from pydantic import BeforeValidator, Field, FilePath

N = TypeVar("N", bound=str)
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|h|d)?$")
_UNIT_SECONDS = {None: 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def _text(value: Any) -> Any:
    if isinstance(value, str):
        if not value.strip():
            raise ValueError("must not be empty")
        return value.strip()
    return value


def _whole(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return int(value.strip().replace("_", ""))
        except ValueError:
            raise ValueError("must be a whole number") from None
    return value


def seconds(value: Any) -> Any:
    """90, 0.5, 90s, 30m, 1h or 1d: seconds (a number alone counts seconds)."""
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, str):
        match = _DURATION.match(value.strip().lower())
        if not match:
            raise ValueError("must be a duration such as 0.5, 90s, 30m, 1h or 1d")
        return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    return value


def _duration(value: Any) -> Any:
    parsed = seconds(value)
    return timedelta(seconds=parsed) if isinstance(parsed, int | float) else parsed


def _listen(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    host, sep, port = value.strip().rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError("must be HOST:PORT, such as 127.0.0.1:4318")
    if int(port) > 65535:
        raise ValueError("port must be between 0 and 65535")
    return host.strip("[]") or "127.0.0.1", int(port)


def _url(value: Any) -> Any:
    text = str(value).strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an http(s) URL such as http://localhost:4318")
    return text.rstrip("/")


def _path(value: Any) -> Any:
    return Path(_text(str(value))).expanduser().absolute()


def _names(value: Any) -> Any:
    if isinstance(value, str):
        return tuple(v.strip().lower() for v in value.split(",") if v.strip())
    return value


def _ratio(value: Any) -> Any:
    if isinstance(value, str):
        text = value.strip()
        percent = text.endswith("%")
        try:
            return float(text.rstrip("%")) / (100 if percent else 1)
        except ValueError:
            raise ValueError("must be a ratio such as 0.95 or a percentage such as 95%") from None
    return value


Text = Annotated[str, BeforeValidator(_text)]
"""Non-empty text, stripped."""
Whole = Annotated[int, BeforeValidator(_whole)]
"""A whole number (`1_000` reads as 1000); bounds go on the field: `Field(ge=..., le=...)`."""
Seconds = Annotated[float, BeforeValidator(seconds)]
"""A number of seconds, given as 0.5, 90s, 30m, 1h or 1d; bounds go on the field."""
Duration = Annotated[timedelta, BeforeValidator(_duration)]
"""A duration, given as Seconds is."""
Listen = Annotated[tuple[str, int], BeforeValidator(_listen)]
"""HOST:PORT to serve on (port 0: any free one); `:PORT` means 127.0.0.1."""
Url = Annotated[str, BeforeValidator(_url)]
"""An http(s) URL, without its trailing slash."""
AbsolutePath = Annotated[Path, BeforeValidator(_path)]
"""A path, `~` expanded, made absolute."""
ExistingFile = Annotated[FilePath, BeforeValidator(_path)]
"""An existing file, `~` expanded, made absolute."""
Names = Annotated[tuple[N, ...], BeforeValidator(_names), Field(min_length=1)]
"""A comma-separated list of names, lowercased: `Names[Literal["a", "b"]]`."""
Ratio = Annotated[float, BeforeValidator(_ratio)]
"""A ratio such as 0.95, or a percentage such as 95%."""
# Booleans are pydantic's own `bool`: true/false, 1/0, yes/no, on/off.

PRICE_FILE = "SPENDSCOPE_PRICE_FILE"
PriceFile = Annotated[
    ExistingFile | None,
    Field(
        validation_alias=PRICE_FILE,
        description="TOML/JSON price overrides, on top of genai-prices",
    ),
]
"""The price file: the app, the collector and the store's commands read the same one."""
