"""A query's result as CSV rendered by ClickHouse itself, with the values written as the Python
formatting writes them (spendscope.store.formatting.csv_cell), for results too large to go through
Python: `spendscope export` and `/api/usage/export.csv` (pure).

ClickHouse writes CSV at its own speed and block by block (format CSV, streamed; the header is
written apart, from the described columns), so Python holds one block at a time whatever the number
of calls (ClickHouse's own memory is its query's: the export's sort by time grows with the calls).
Only the columns whose ClickHouse text differs from the Python rendering are rewritten in SQL: times
(ISO 8601 with `+00:00`, microseconds only when there are some, as `datetime.isoformat` writes
them), maps (JSON objects with sorted keys). Decimals lose their trailing zeros and NULL is an empty
field through the query's SETTINGS. What stays ClickHouse's own: strings are always quoted, and
floats print their shortest form (`0`, `1e-7` where Python writes `0.0`, `1e-07`), the same numbers.
Text columns are made spreadsheet-safe in SQL as `formatting.spreadsheet_text` does (a single quote
before a leading `=`, `+`, `-`, `@`, tab or carriage return); numbers are left alone.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Final

FORMAT: Final = "CSV"
_FORMULA_STARTS: Final = "'=', '+', '-', '@', '\\t', '\\r'"  # formatting.FORMULA_STARTS
_SETTINGS: Final = (
    "output_format_decimal_trailing_zeros = 0, format_csv_null_representation = '', "
    "output_format_json_escape_forward_slashes = 0"
)


def _base(type_: str) -> str:
    """The type without its Nullable / LowCardinality wrappers (functions carry NULL through)."""
    for wrapper in ("Nullable(", "LowCardinality("):
        while type_.startswith(wrapper):
            type_ = type_[len(wrapper) : -1]
    return type_


def _quoted(name: str) -> str:
    return f"`{name.replace('`', '``')}`"


def _expression(column: str, type_: str) -> str:
    name = _quoted(column)
    base = _base(type_)
    if base.startswith("DateTime64"):
        micros = f"toUnixTimestamp64Micro({name}) % 1000000"
        fraction = f"if({micros} = 0, '', concat('.', leftPad(toString({micros}), 6, '0')))"
        return f"concat(formatDateTime({name}, '%Y-%m-%dT%H:%i:%S', 'UTC'), {fraction}, '+00:00')"
    if base.startswith("DateTime"):
        return f"formatDateTime({name}, '%Y-%m-%dT%H:%i:%S+00:00', 'UTC')"
    if base.startswith("Map("):
        return f"toJSONString(mapSort({name}))"
    if base == "String" or base.startswith("FixedString("):
        return f"if(substring({name}, 1, 1) IN ({_FORMULA_STARTS}), concat('\\'', {name}), {name})"
    return name


def csv_select(sql: str, columns: Sequence[tuple[str, str]], settings: str = "") -> str:
    """SELECT over `sql` (its result's (name, ClickHouse type) pairs: `columns`) that renders each
    column as csv_cell does, keeping the names; to be read in FORMAT. `settings`: more of them."""
    rendered = ", ".join(f"{_expression(name, type_)} AS {_quoted(name)}" for name, type_ in columns)
    return f"SELECT {rendered} FROM (\n{sql}\n) SETTINGS {', '.join(filter(None, [_SETTINGS, settings]))}"


def header(columns: Sequence[tuple[str, str]]) -> bytes:
    """The header line CSVWithNames writes: every name quoted."""
    line = io.StringIO()
    csv.writer(line, quoting=csv.QUOTE_ALL, lineterminator="\n").writerow(name for name, _ in columns)
    return line.getvalue().encode()
