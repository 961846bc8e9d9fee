"""Typer options made from a settings model's fields: the help is the field's description, the
default shown is the field's default, and the value is left to the model (option > environment >
default), so a bad one gets the settings' single error format."""

from __future__ import annotations

import types
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import typer

from spendscope.settings._base import Settings

_METAVARS: dict[Any, str] = {
    int: "INTEGER",
    float: "SECONDS",
    timedelta: "DURATION",
    Path: "PATH",
    str: "TEXT",
    bool: "BOOLEAN",
}


def setting_option(model: type[Settings], name: str, *, metavar: str | None = None, help: str = "") -> Any:
    """A `typer.Option` for setting `name` of `model`; `help` is added to the field's description."""
    field = model.model_fields[name]
    words = "; ".join(filter(None, [field.description, help]))
    default = model.default_text(name)
    where = f"env {model.env(name)}" + (f"; default {default}" if default is not None else "")
    # Typer shows no default of its own: the option's is None (not given), so the model decides.
    return typer.Option(
        help=f"{words} ({where})", show_default=False, metavar=metavar or _metavar(field.annotation)
    )


def _metavar(annotation: Any) -> str:
    if get_origin(annotation) in (Union, types.UnionType):  # X | None
        annotation = next(a for a in get_args(annotation) if a is not type(None))
    if get_origin(annotation) is Annotated:  # a shared type (spendscope/settings/_types.py)
        annotation = get_args(annotation)[0]
    if get_origin(annotation) is Literal:
        return "|".join(str(a) for a in get_args(annotation))
    if get_origin(annotation) is tuple and get_args(annotation) == (str, int):
        return "HOST:PORT"
    return _METAVARS.get(annotation, "TEXT")
