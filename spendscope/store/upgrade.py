"""Moving a store made by the migrations before the baseline onto the baseline schema
(`spendscope migrate --upgrade`).

The old tables move to the database `<name>_pre_baseline` (views and materialized views, all derived,
are dropped), the baseline schema is created in their place, and the data comes back through it:
every span of the old otel_traces is inserted into the new one, so its calls are derived, checked and
priced again by the store (a span the old store held twice is one call now); tenant margins and
reconciliation results are copied as they are; then the rollups are built. The old database is kept
for the operator to compare and drop. Run it with the collector stopped (nothing else writing).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from spendscope.store import migrations as mig
from spendscope.store.errors import StoreError
from spendscope.store.rollups import build_rollups
from spendscope.store.store import Store

# copied as they are (the baseline has their columns, and columns the old chain added later, which a store
# made before those get their defaults)
_COPIED = ("tenant_margins", "reconciliation_runs", "reconciliation_diffs")


@dataclass(frozen=True, slots=True)
class UpgradeResult:
    old_database: str
    spans: int  # spans copied into the new otel_traces
    calls: int  # calls in the new llm_usage
    old_calls: int  # calls the old llm_usage held (FINAL)


def old_database(store: Store) -> str:
    return f"{store.database}_pre_baseline"


def is_pre_baseline(store: Store) -> bool:
    [[exists]] = store.query("EXISTS TABLE spendscope_migrations").rows
    if not exists:
        return False
    rows = store.query("SELECT version, name, checksum FROM spendscope_migrations FINAL").rows
    return mig.pre_baseline(mig.Applied(int(v), str(n), str(c)) for v, n, c in rows)


def upgrade(store: Store) -> UpgradeResult:
    """Move the store's pre-baseline schema aside and its data onto the baseline schema."""
    if not is_pre_baseline(store):
        raise StoreError(
            f"{store.target.describe()} does not have the pre-baseline schema: nothing to upgrade"
        )
    db, old = store.database, old_database(store)
    params = {"db": db, "old": old}
    [[taken]] = store.query("SELECT count() FROM system.databases WHERE name = {old:String}", params).rows
    if taken:
        raise StoreError(f"database {old} exists already: drop or rename it before upgrading {db}")
    objects = store.query(
        "SELECT name, engine FROM system.tables WHERE database = {db:String} ORDER BY name", params
    ).rows
    store.command(f"CREATE DATABASE `{old}`")
    for name, engine in objects:  # derived: the materialized views first, so nothing feeds the tables
        if str(engine) in ("MaterializedView", "View"):
            store.command(f"DROP VIEW `{db}`.`{name}`")
    for name, engine in objects:
        if str(engine) not in ("MaterializedView", "View"):
            store.command(f"RENAME TABLE `{db}`.`{name}` TO `{old}`.`{name}`")
    store.migrate()
    store.command(f"INSERT INTO otel_traces SELECT * FROM `{old}`.otel_traces")
    moved = {str(name) for name, engine in objects}
    for table in _COPIED:
        if table in moved:
            _copy(store, table, old)
    build_rollups(store, lag=timedelta(0))  # nothing else writes: every bucket can be built now
    [[spans]] = store.query("SELECT count() FROM otel_traces").rows
    [[calls]] = store.query("SELECT count() FROM llm_usage FINAL").rows
    [[old_calls]] = store.query(f"SELECT count() FROM `{old}`.llm_usage FINAL").rows
    return UpgradeResult(old, int(spans), int(calls), int(old_calls))


def _copy(store: Store, table: str, old: str) -> None:
    """`old`.`table` into `table`, column by column by name."""
    [[names]] = store.query(
        "SELECT groupArray(name) FROM (SELECT name FROM system.columns WHERE database = {old:String} "
        "AND table = {table:String} AND name IN (SELECT name FROM system.columns WHERE database = "
        "currentDatabase() AND table = {table:String}) ORDER BY position)",
        {"old": old, "table": table},
    ).rows
    columns = ", ".join(f"`{name}`" for name in names)
    store.command(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM `{old}`.{table}")
