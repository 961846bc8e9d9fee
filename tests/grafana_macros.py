"""A Grafana panel's ClickHouse SQL as ClickHouse receives it, for running dashboard queries in tests.

A target's `rawSql` goes through three steps, each done here as its source does it:

1. `$__conditionalAll(condition, $var)`, in the plugin's frontend (grafana/clickhouse-datasource
   `CHDatasource.applyConditionalAll`): from the last one backwards, the condition, or `1=1` when the
   variable's value is All (`$__all`) or empty.
2. Template variables, by Grafana's `templateSrv.replace` with the plugin's format function: `$var`,
   `${var}`, `${var:format}` and `[[var]]`; a list becomes `'a','b'` by default, `:singlequote` and
   `:sqlstring` quote each value; All stands for every option. Names that are not variables are left
   alone (they may be macros).
3. Macros, in the plugin's backend (`pkg/macros` through grafana-plugin-sdk-go `sqlutil.Interpolate`):
   `$__timeFilter(col)` is `col >= toDateTime(<from s>) AND col <= toDateTime(<to s>)`, `$__fromTime_ms`
   is `fromUnixTimestamp64Milli(<from ms>)`, ... Arguments are read only when `(` follows the name
   directly, split at commas and trimmed.

Anything left that looks like a variable or a macro (`$name`, `${...}`, `[[...]]`) raises
`InterpolationError`, so a typo in a dashboard fails the test instead of reaching ClickHouse as text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

ALL = "$__all"


class InterpolationError(ValueError):
    """The SQL uses a macro or variable Grafana or the plugin would not expand as intended."""


@dataclass(frozen=True)
class Variable:
    """A dashboard variable's state: `current` is Grafana's `current.value` (a string, or a tuple for a
    multi-value variable; All is `ALL` or `(ALL,)`); `options` are the values All stands for."""

    current: str | tuple[str, ...]
    options: tuple[str, ...] = ()

    @property
    def is_all(self) -> bool:
        return self.current in (ALL, (ALL,))

    def values(self) -> str | list[str]:
        if self.is_all:
            return list(self.options)
        return list(self.current) if isinstance(self.current, tuple) else self.current


@dataclass(frozen=True)
class Query:
    """What a panel query is expanded for: the dashboard's time range and interval, and variables."""

    start: datetime
    end: datetime
    variables: Mapping[str, Variable]
    interval: timedelta = timedelta(seconds=60)


def expand(sql: str, query: Query) -> str:
    """`sql` as ClickHouse receives it from the plugin (steps 1-3 of the module docstring)."""
    sql = conditional_all(sql, query.variables)
    sql = template_variables(sql, query.variables)
    sql = macros(sql, query)
    leftover = re.search(r"\$\w+|\$\{|\[\[\w+", sql)
    if leftover:
        raise InterpolationError(f"unknown variable or macro {leftover.group(0)!r} in: {sql}")
    return sql


# --- 1. $__conditionalAll (frontend) ------------------------------------------------------------------
_CONDITIONAL_ALL = "$__conditionalAll("
_VAR_NAME = re.compile(r"(?<=\$\{)\w+(?=\})|(?<=\$)\w+")


def _macro_args(sql: str, at: int) -> list[str]:
    """The plugin's getMacroArgs: the comma-separated arguments of the parenthesis at `at`."""
    rest = sql[at:]
    args: list[str] = []
    depth = 0
    last = 1
    for found in re.finditer(r"[(),]", rest):
        char, pos = found.group(0), found.start()
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 1:
            args.append(rest[last:pos])
            last = pos + 1
        if depth == 0:
            args.append(rest[last:pos])
            return args
    return []


def conditional_all(sql: str, variables: Mapping[str, Variable]) -> str:
    index = sql.rfind(_CONDITIONAL_ALL)
    while index != -1:
        params = _macro_args(sql, index + len(_CONDITIONAL_ALL) - 1)
        if len(params) != 2:  # the plugin leaves it in place: ClickHouse would get it as text
            raise InterpolationError(f"$__conditionalAll needs 2 arguments, got {params} in: {sql}")
        name = _VAR_NAME.search(params[1].strip())
        if name is None or name.group(0) not in variables:
            raise InterpolationError(f"$__conditionalAll over an unknown variable {params[1].strip()!r}")
        variable = variables[name.group(0)]
        current = ",".join(variable.current) if isinstance(variable.current, tuple) else variable.current
        phrase = "1=1" if current in ("", ALL) else params[0]
        if re.search(r"\$[$&`']", phrase):  # String.replace would read these as replacement patterns
            raise InterpolationError(f"$__conditionalAll condition with a replacement pattern: {phrase}")
        sql = sql.replace(f"{_CONDITIONAL_ALL}{params[0]},{params[1]})", phrase, 1)
        index = sql.rfind(_CONDITIONAL_ALL)
    return sql


# --- 2. template variables (Grafana's templateSrv) ----------------------------------------------------
_VARIABLE = re.compile(r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^}]+))?(?::([^}]+))?\}")


def _plugin_format(value: str | list[str]) -> str:
    return "'" + "','".join(value) + "'" if isinstance(value, list) else value


def _quoted(escape: Callable[[str], str]) -> Callable[[str | list[str]], str]:
    def format_(value: str | list[str]) -> str:
        values = value if isinstance(value, list) else [value]
        return ",".join(f"'{escape(v)}'" for v in values)

    return format_


def _joined(value: str | list[str]) -> str:
    return ",".join(value) if isinstance(value, list) else value


_FORMATS: dict[str, Callable[[str | list[str]], str]] = {
    "singlequote": _quoted(lambda v: v.replace("'", "\\'")),
    "sqlstring": _quoted(lambda v: v.replace("'", "''")),
    "csv": _joined,
    "raw": _joined,
}


def template_variables(sql: str, variables: Mapping[str, Variable]) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(4)
        if name not in variables:
            return match.group(0)
        if match.group(5):
            raise InterpolationError(f"variable field paths are not supported: {match.group(0)}")
        fmt = match.group(3) or match.group(6)
        variable = variables[name]
        if variable.is_all and not variable.options:
            raise InterpolationError(f"${name} is All outside $__conditionalAll and has no options")
        if fmt is None:
            return _plugin_format(variable.values())
        if fmt not in _FORMATS:
            raise InterpolationError(f"format {fmt!r} of {match.group(0)} is not supported here")
        return _FORMATS[fmt](variable.values())

    return _VARIABLE.sub(replace, sql)


# --- 3. macros (backend) ------------------------------------------------------------------------------
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _seconds(moment: datetime) -> int:  # Go's Time.Unix()
    return (moment - _EPOCH) // timedelta(seconds=1)


def _millis(moment: datetime) -> int:  # Go's Time.UnixMilli()
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def _date(moment: datetime) -> str:
    return f"toDate('{moment.astimezone(UTC):%Y-%m-%d}')"


def _range(column: str, low: str, high: str) -> str:
    return f"{column} >= {low} AND {column} <= {high}"


def _macro(name: str, args: list[str], query: Query) -> str:
    def one() -> str:
        if len(args) != 1 or not args[0]:
            raise InterpolationError(f"$__{name} expects 1 argument, got {args}")
        return args[0]

    start, end = query.start, query.end
    seconds = max(int(query.interval.total_seconds()), 1)
    millis = max(int(query.interval.total_seconds() * 1000), 1)
    if name in ("fromTime", "toTime"):
        return f"toDateTime({_seconds(start if name == 'fromTime' else end)})"
    if name in ("fromTime_ms", "toTime_ms"):
        return f"fromUnixTimestamp64Milli({_millis(start if name == 'fromTime_ms' else end)})"
    if name == "timeFilter":
        return _range(one(), f"toDateTime({_seconds(start)})", f"toDateTime({_seconds(end)})")
    if name == "timeFilter_ms":
        low, high = _millis(start), _millis(end)
        return _range(one(), f"fromUnixTimestamp64Milli({low})", f"fromUnixTimestamp64Milli({high})")
    if name == "dateFilter":
        return _range(one(), _date(start), _date(end))
    if name in ("dateTimeFilter", "dt"):
        if len(args) != 2 or not all(args):
            raise InterpolationError(f"$__{name} expects 2 arguments, got {args}")
        dates = _range(args[0], _date(start), _date(end))
        times = _range(args[1], f"toDateTime({_seconds(start)})", f"toDateTime({_seconds(end)})")
        return f"({dates}) AND ({times})"
    if name == "timeInterval":
        return f"toStartOfInterval(toDateTime({one()}), INTERVAL {seconds} second)"
    if name == "timeInterval_ms":
        return f"toStartOfInterval(toDateTime64({one()}, 3), INTERVAL {millis} millisecond)"
    if name == "interval_s":
        return str(seconds)
    raise InterpolationError(f"unknown macro $__{name}")


def macros(sql: str, query: Query) -> str:
    while match := re.search(r"\$__(\w+)", sql):
        end = match.end()
        args: list[str] = []
        if sql[end : end + 1] == "(":
            depth = 0
            for pos in range(end, len(sql)):
                depth += {"(": 1, ")": -1}.get(sql[pos], 0)
                if depth == 0:
                    args = [a.strip() for a in sql[end + 1 : pos].split(",")]
                    end = pos + 1
                    break
            else:
                raise InterpolationError(f"$__{match.group(1)}( is never closed in: {sql}")
        sql = sql.replace(sql[match.start() : end], _macro(match.group(1), args, query))
    return sql
