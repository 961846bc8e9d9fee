"""Reports as text: CSV and JSON for scripts, cells for terminal tables (pure).

CSV is spreadsheet-safe (OWASP's advice on CSV injection): a text cell that begins with `=`, `+`, `-`,
`@`, a tab or a carriage return gets a single quote before it, so that a spreadsheet shows it as text
rather than running it as a formula. Which cells are text is decided by their type, not their look:
numbers (token counts, costs, including negative ones) stay numbers, and a user id `-5` is text,
written `'-5`."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TextIO

from spendscope.store.money import COST_COLUMNS, Cost, has_costs
from spendscope.store.reports import Report, json_value

NUMERIC_SUFFIXES = ("_usd", "_tokens", "calls", "_percent", "_seconds")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_text(text: str) -> str:
    """Text a spreadsheet shows as text and never runs as a formula (a single quote before it)."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_field(value: Any) -> str:
    """A CSV cell: `csv_cell`, text made spreadsheet-safe."""
    text = csv_cell(value)
    return spreadsheet_text(text) if isinstance(value, str) else text


def csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value else "0"
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):  # as ClickHouse's toJSONString writes it (see csv_render.py)
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return str(value)


def to_csv(report: Report) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(report.columns)
    writer.writerows([csv_field(v) for v in row] for row in report.rows)
    return buffer.getvalue()


def to_json(report: Report) -> str:
    return json.dumps(report.to_json(), indent=2)


def write_json(columns: list[str], blocks: Iterable[list[list[Any]]], out: TextIO) -> None:
    """The shape of to_json ({"columns": [...], "rows": [[...], ...]}), written block by block (one
    row a line): the rows are never all in memory."""
    out.write('{\n  "columns": ' + json.dumps(columns) + ',\n  "rows": [')
    separator = "\n"
    for block in blocks:
        for row in block:
            out.write(separator + "    " + json.dumps([json_value(v) for v in row]))
            separator = ",\n"
    out.write("\n  ]\n}\n")


def numeric(column: str) -> bool:
    return column.endswith(NUMERIC_SUFFIXES)


def table_cells(columns: list[str], row: list[Any]) -> list[str]:
    """A row for people: each cell as table_cell shows it, and each cost with its counts (see
    spendscope.store.money: `unknown`, or `$0.01000000 + 2 unknown` for a partial sum)."""
    if not has_costs(columns):
        return [table_cell(c, v) for c, v in zip(columns, row, strict=True)]
    named = dict(zip(columns, row, strict=True))
    return [
        Cost.of(named, c).text() if c in COST_COLUMNS else table_cell(c, v)
        for c, v in zip(columns, row, strict=True)
    ]


def table_cell(column: str, value: Any) -> str:
    """A cell for people: money to 8 decimal places (exact in CSV/JSON), unknown cost as 'unknown'."""
    if value is None:
        return "unknown" if column.endswith("_usd") else ""
    if column.endswith("_usd") and isinstance(value, Decimal):
        return f"${value:,.8f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return csv_cell(value)
