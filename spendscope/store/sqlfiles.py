"""The `clickhouse/` folder (migrations and named queries), wherever the package is installed.

A wheel carries the folder inside the package as `spendscope/_clickhouse` (hatch force-include); an
editable install or a checkout reads the repository's `clickhouse/` next to the package.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import spendscope

_PACKAGED = "_clickhouse"
_FTS_BLOCK = re.compile(
    r"\s*\{\{-\s*if \.HasFullTextSearch\s*\}\}(.*?)\s*\{\{-\s*else\s*\}\}(.*?)\s*\{\{-\s*end\s*\}\}",
    re.DOTALL,
)
_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*):([^{}]+)\}")


def clickhouse_dir(package: Path | None = None) -> Path:
    """The folder holding `migrations/` and `queries/` for the installed `spendscope` package."""
    package = package or Path(spendscope.__file__).resolve().parent
    for candidate in (package / _PACKAGED, package.parent / "clickhouse"):
        if (candidate / "migrations").is_dir():
            return candidate
    raise FileNotFoundError(f"SpendScope's ClickHouse files are missing (looked in {package / _PACKAGED})")


def render(sql: str, *, full_text_search: bool) -> str:
    """Resolve the exporter's `{{- if .HasFullTextSearch}} … {{- else}} … {{- end}}` switch as Go's
    text/template does (`{{-` trims the whitespace before it)."""
    return _FTS_BLOCK.sub(lambda m: m.group(1) if full_text_search else m.group(2), sql)


def split_statements(sql: str) -> list[str]:
    """Statements separated by `;`, ignoring semicolons in strings, quoted names and comments."""
    statements: list[str] = []
    start = i = 0
    n = len(sql)
    while i < n:
        ch = sql[i]
        if ch in "'\"`":
            i += 1
            while i < n and sql[i] != ch:
                i += 2 if sql[i] == "\\" else 1
        elif sql.startswith("--", i):
            end = sql.find("\n", i)
            i = n if end < 0 else end
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            i = n if end < 0 else end + 1
        elif ch == ";":
            statements.append(sql[start:i])
            start = i + 1
        i += 1
    statements.append(sql[start:])
    return [s.strip() for s in statements if _strip_comments(s).strip()]


def _strip_comments(sql: str) -> str:
    return re.sub(r"--[^\n]*", "", sql)


def parameters(sql: str) -> dict[str, str]:
    """`{name:Type}` placeholders of a query: name -> ClickHouse type."""
    found: dict[str, str] = {}
    for name, type_ in _PARAM.findall(_strip_comments(sql)):
        type_ = type_.strip()
        if found.setdefault(name, type_) != type_:
            raise ValueError(f"query parameter {name} is declared as {found[name]} and as {type_}")
    return found


@dataclass(frozen=True, slots=True)
class NamedQuery:
    """A query from `clickhouse/queries/NAME.sql`: its text and its bound parameters."""

    name: str
    sql: str
    params: dict[str, str]

    def bind(self, values: dict[str, object]) -> dict[str, object]:
        """`values` checked against the declared parameters: every one given, nothing else."""
        missing = sorted(set(self.params) - set(values))
        extra = sorted(set(values) - set(self.params))
        if missing or extra:
            raise ValueError(f"query {self.name}: missing parameters {missing}, unknown parameters {extra}")
        return dict(values)


@cache
def named_query(name: str) -> NamedQuery:
    path = clickhouse_dir() / "queries" / f"{name}.sql"
    try:
        sql = path.read_text()
    except FileNotFoundError:
        raise KeyError(f"no named query {name!r} in {path.parent}") from None
    statements = split_statements(sql)
    if len(statements) != 1:
        raise ValueError(f"{path} must hold exactly one statement, not {len(statements)}")
    return NamedQuery(name, statements[0], parameters(statements[0]))


def query_names() -> list[str]:
    return sorted(p.stem for p in (clickhouse_dir() / "queries").glob("*.sql"))
