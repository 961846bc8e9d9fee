"""Schema migrations: ordered files `clickhouse/migrations/NNNN_name.sql`, recorded in a table.

Pure: which files exist, which are pending given what a database has recorded, the statements of each.
`Store.migrate` does the I/O.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from spendscope.store.errors import StoreError
from spendscope.store.sqlfiles import clickhouse_dir, render, split_statements

_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
# ClickHouse renders the otel_traces indexes as text indexes from this version on (as the exporter does).
FULL_TEXT_SEARCH_SINCE = (26, 2)


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    text: str  # the file as written (the exporter's template switch unrendered)

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()

    @property
    def label(self) -> str:
        return f"{self.version:04d}_{self.name}"

    def statements(self, *, full_text_search: bool) -> list[str]:
        return split_statements(render(self.text, full_text_search=full_text_search))


@dataclass(frozen=True, slots=True)
class Applied:
    version: int
    name: str
    checksum: str


def load_migrations(directory: Path | None = None) -> list[Migration]:
    folder = directory or clickhouse_dir() / "migrations"
    migrations: dict[int, Migration] = {}
    for path in sorted(folder.glob("*.sql")):
        match = _FILE.match(path.name)
        if not match:
            raise StoreError(f"migration file {path.name} is not named NNNN_name.sql")
        version = int(match.group(1))
        if version in migrations:
            raise StoreError(f"two migrations numbered {version:04d} in {folder}")
        migrations[version] = Migration(version, match.group(2), path.read_text())
    return [migrations[v] for v in sorted(migrations)]


def migrations_table_sql() -> str:
    return (clickhouse_dir() / "migrations_table.sql").read_text()


# The schema before the baseline (0001_baseline.sql replaced these; tests/store_old_schema/ holds them).
PRE_BASELINE = (
    (1, "otel_traces"),
    (2, "insert_deduplication"),
    (3, "llm_usage"),
    (4, "rollups"),
    (5, "prices_and_margins"),
    (6, "usage_window"),
    (7, "usage_window_fast_edges"),
    (8, "time_first_rollups"),
    (9, "usage_window_timeline"),
    (100, "reconciliation"),
    (101, "reconciliation_calls"),
)
UPGRADE_HINT = (
    "this store has SpendScope's pre-release schema (migrations 0001_otel_traces to "
    "0101_reconciliation_calls), which the baseline schema replaces: stop the collector and run "
    "`spendscope migrate --upgrade` (it keeps the old database as {old} and derives and prices every call "
    "again from its spans)"
)


class PreBaselineStore(StoreError):
    """The database was made by the migrations before the baseline."""


def pre_baseline(applied: Iterable[Applied]) -> bool:
    old = set(PRE_BASELINE)
    return any((a.version, a.name) in old for a in applied)


def pending(
    migrations: Iterable[Migration], applied: Iterable[Applied], *, database: str = ""
) -> list[Migration]:
    """The migrations still to run, in order; refuses a database that disagrees with the files."""
    applied = list(applied)
    if pre_baseline(applied):
        raise PreBaselineStore(UPGRADE_HINT.format(old=f"{database or 'spendscope'}_pre_baseline"))
    known = {m.version: m for m in migrations}
    done = {a.version: a for a in applied}
    for version, record in sorted(done.items()):
        migration = known.get(version)
        if migration is None:
            raise StoreError(
                f"the store has migration {version:04d}_{record.name}, which this SpendScope does not "
                "know: upgrade SpendScope"
            )
        if migration.checksum != record.checksum:
            raise StoreError(
                f"migration {migration.label} was changed after it was applied (checksum "
                f"{record.checksum[:12]} in the store, {migration.checksum[:12]} in the file): add a new "
                "migration instead of editing an applied one"
            )
    return [m for v, m in sorted(known.items()) if v not in done]


def full_text_search(server_version: str, indexes: str = "auto") -> bool:
    """Whether otel_traces gets the text-index variant: as chosen (the store's `store_trace_indexes`
    setting), else (`auto`) as the exporter renders it for a server of this version."""
    if indexes != "auto":
        return indexes == "text"
    numbers = re.findall(r"\d+", server_version)[:2]
    if len(numbers) < 2:
        return False
    return (int(numbers[0]), int(numbers[1])) >= FULL_TEXT_SEARCH_SINCE
