"""The base of every settings model: explicit argument > environment variable > default, through
pydantic-settings, and one error format for a bad value:

    <component> setting <name> (<where>=<value>): <what is wrong>

where <where> is `argument <name>` (a keyword argument), `option --<name>` (the command line) or
`environment variable <NAME>`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, ClassVar, Literal, Self

from pydantic import ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, SettingsConfigDict

from spendscope.settings import ConfigurationError

Given = Literal["argument", "option"]


class Settings(BaseSettings):
    """A component's settings. Each field names its environment variable (`validation_alias`) and
    says what it is (`description`); `resolve` is the way to build one."""

    model_config = SettingsConfigDict(
        case_sensitive=True,
        env_ignore_empty=True,  # VAR= is the same as unset
        enable_decoding=False,  # the field types parse their text themselves, never as JSON
        frozen=True,
        validate_by_name=True,
        validate_by_alias=True,
    )
    component: ClassVar[str] = "SpendScope"  # the first word of its errors

    @classmethod
    def resolve(cls, *, given: Given = "argument", **explicit: Any) -> Self:
        """The settings from `explicit` (None: not given), else the environment, else the defaults;
        `given` says where the explicit values came from, for the error a bad one raises."""
        unknown = set(explicit) - set(cls.model_fields)
        if unknown:
            raise TypeError(f"unknown {cls.component} settings: {', '.join(sorted(unknown))}")
        values = {name: value for name, value in explicit.items() if value is not None}
        try:
            return cls(**values)
        except ValidationError as exc:
            raise cls._error(exc.errors()[0], values, given) from None

    @classmethod
    def env(cls, name: str) -> str:
        """The environment variable of setting `name`."""
        alias = cls.model_fields[name].validation_alias
        assert isinstance(alias, str), f"{cls.__name__}.{name} names no environment variable"
        return alias

    @classmethod
    def default_text(cls, name: str) -> str | None:
        """Setting `name`'s default as one writes it (None: it has none)."""
        default = cls.model_fields[name].default
        return None if default is None else as_text(default)

    @classmethod
    def _error(cls, error: Mapping[str, Any], values: dict[str, Any], given: Given) -> ConfigurationError:
        if not error["loc"]:  # a check across settings (a model validator)
            return ConfigurationError(f"{cls.component} setting {_reason(error, None)}")
        key = str(error["loc"][0])
        names = {cls.env(n): n for n in cls.model_fields}
        if key in values:
            where = f"argument {key}" if given == "argument" else f"option --{key.replace('_', '-')}"
            raw = as_text(values[key])
            name = key
        else:
            name = names[key]
            where, raw = f"environment variable {key}", os.environ.get(key, "")
        field = cls.model_fields[name]
        return ConfigurationError(
            f"{cls.component} setting {name} ({where}={raw!r}): {_reason(error, field)}"
        )


def as_text(value: Any) -> str:
    """A setting's value as one writes it: 127.0.0.1:4318, 1h, otlp,console."""
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[1], int):
        return f"{value[0]}:{value[1]}"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value)
    if isinstance(value, timedelta):
        total = value.total_seconds()
        for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
            if total >= size and total % size == 0:
                return f"{int(total // size)}{unit}"
        return f"{total:g}s"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _reason(error: Mapping[str, Any], field: FieldInfo | None) -> str:
    """What is wrong with the value, in the words the field types use."""
    kind, ctx = error["type"], error.get("ctx", {})
    bounds = _bounds(field)
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal") and bounds:
        return f"must be {bounds}"
    if kind == "value_error":
        return str(ctx.get("error", error["msg"]))
    if kind == "literal_error":
        expected = ctx.get("expected", "")
        return (
            f"must be a comma-separated list of {expected}"
            if len(error["loc"]) > 1
            else f"must be {expected}"
        )
    words = {
        "int_parsing": "must be a whole number",
        "int_from_float": "must be a whole number",
        "float_parsing": "must be a number",
        "bool_parsing": "must be true or false",
        "too_short": "must not be empty",
        "path_not_file": f"no such file: {error['input']}",
    }
    return words.get(kind, str(error["msg"]))


def _bounds(field: FieldInfo | None) -> str:
    """The field's bounds in words: `between 0 and 65535`, `at least 1`, `more than 0 and at most 3600`."""
    if field is None:
        return ""
    low = high = ""
    for item in field.metadata:  # Field(ge=...) and the like: annotated-types' Ge, Gt, Le, Lt
        if (ge := getattr(item, "ge", None)) is not None:
            low = f"at least {ge}"
        elif (gt := getattr(item, "gt", None)) is not None:
            low = f"more than {gt}"
        elif (le := getattr(item, "le", None)) is not None:
            high = f"at most {le}"
        elif (lt := getattr(item, "lt", None)) is not None:
            high = f"less than {lt}"
    if low.startswith("at least") and high.startswith("at most"):
        return f"between {low.removeprefix('at least ')} and {high.removeprefix('at most ')}"
    return " and ".join(filter(None, [low, high]))
