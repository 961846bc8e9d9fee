"""Column widths that fit a report table to a terminal (pure): amounts and counts are never cut.

A number is shown whole or not at all useful, so each numeric column is as wide as its widest cell;
text cells and headers fold (headers after their underscores where they can). When that is still too
wide, the cells lose their padding; when even that is, the table is as wide as it must be.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from spendscope.store.formatting import numeric

if TYPE_CHECKING:
    from rich.console import Console

TEXT_MIN_WIDTH = 8  # a text column keeps this much while the numbers fit (its cells fold)
TEXT_FLOOR = 4  # and no less than this when they do not


@dataclass(frozen=True, slots=True)
class Layout:
    widths: list[int]  # content width of each column
    padding: int  # spaces each side of a cell
    width: int  # of the whole table, borders included


def fit(
    headers: Sequence[str], cells: Sequence[Sequence[str]], width: int, numbers: Sequence[bool] | None = None
) -> Layout:
    """The layout of a table with one border between columns and around them, `width` wide or less
    if its numbers allow it: first with a space each side of a cell, else with none. `numbers` says
    which columns hold numbers (default: as their names say, see formatting.numeric)."""
    for padding in (1, 0):
        chrome = len(headers) * (2 * padding + 1) + 1
        widths = fit_widths(headers, cells, width - chrome, numbers)
        if sum(widths) + chrome <= width:
            break
    return Layout(widths, padding, sum(widths) + chrome)


def fit_widths(
    headers: Sequence[str], cells: Sequence[Sequence[str]], room: int, numbers: Sequence[bool] | None = None
) -> list[int]:
    """Content widths within `room`: each numeric column as wide as its widest cell, each text column
    TEXT_MIN_WIDTH (or its widest cell or header, if narrower), narrowed to TEXT_FLOOR if need be.
    The room left widens the columns in turn: first until every header breaks only after its
    underscores (see wrap_header), then until no text cell folds, then until every header is one
    line. More than `room` when the numbers and the narrowest text columns are."""
    widest = [max((len(row[i]) for row in cells), default=0) for i in range(len(headers))]
    text = [not n for n in numbers] if numbers is not None else [not numeric(h) for h in headers]
    widths = [
        min(max(w, len(h)), TEXT_MIN_WIDTH) if t else max(w, 1)
        for w, h, t in zip(widest, headers, text, strict=True)
    ]
    floor = [min(w, TEXT_FLOOR) if t else w for w, t in zip(widths, text, strict=True)]
    _step(widths, floor, sum(widths) - room, -1)
    parts = [max(w, *(len(p) for p in _header_parts(h))) for w, h in zip(widths, headers, strict=True)]
    unfolded = [max(p, w) for p, w in zip(parts, widest, strict=True)]
    whole = [max(w, len(h)) for w, h in zip(unfolded, headers, strict=True)]
    spare = room - sum(widths)
    for target in (parts, unfolded, whole):
        spare = _step(widths, target, spare, 1)
    return widths


def _step(widths: list[int], target: Sequence[int], amount: int, step: int) -> int:
    """Move `widths` toward `target` by `step`, one column after the other, `amount` times at most;
    returns what is left of `amount`."""
    while amount > 0 and any((t - w) * step > 0 for w, t in zip(widths, target, strict=True)):
        for i, t in enumerate(target):
            if amount > 0 and (t - widths[i]) * step > 0:
                widths[i] += step
                amount -= 1
    return amount


def _header_parts(name: str) -> list[str]:
    """`usage_unavailable_calls` -> `usage_`, `unavailable_`, `calls`."""
    return re.findall(r"[^_]*_|[^_]+", name) or [name]


def wrap_header(name: str, width: int) -> str:
    """`name` on lines of at most `width` characters, broken after its underscores (`usage_` /
    `unavailable_` / `calls`); a part longer than `width` is left for the table to fold."""
    lines: list[str] = []
    for part in _header_parts(name):
        if lines and len(lines[-1]) + len(part) <= width:
            lines[-1] += part
        else:
            lines.append(part)
    return "\n".join(lines)


def print_table(
    console: Console,
    title: str,
    headers: Sequence[str],
    cells: Sequence[Sequence[str]],
    numbers: Sequence[bool] | None = None,
) -> None:
    """Print a Rich table fitted to the console (see `fit`): numbers right-aligned and whole, text
    and headers folded; a table that cannot fit is printed wider and left to the terminal to wrap."""
    from rich.table import Table

    is_number = list(numbers) if numbers is not None else [numeric(h) for h in headers]
    layout = fit(headers, cells, console.width, is_number)
    table = Table(title=title, title_justify="left", padding=(0, layout.padding))
    for header, width, number in zip(headers, layout.widths, is_number, strict=True):
        justify: Literal["left", "right"] = "right" if number else "left"
        table.add_column(wrap_header(header, width), justify=justify, width=width, overflow="fold")
    for row in cells:
        table.add_row(*row)
    console.print(table, width=max(console.width, layout.width))
