"""What `migrate` sets up besides the schema: the store settings the views read, and the price data.

Settings (spendscope/settings/store.py): the retention of raw spans and calls and of the rollups (TTLs), and
whether calls of a model without a price take their client's cost. Each is written to the store when
it is given (argument or environment) and kept there otherwise, so a process started without them
(the collector) does not undo what `spendscope migrate` set.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from spendscope.settings import ConfigurationError
from spendscope.settings.app import PriceSettings
from spendscope.settings.store import StoreSettings
from spendscope.store.store import Store

if TYPE_CHECKING:
    from spendscope.pricing import Pricer

# (table, the expression a row's age is counted from) for each retention
RAW_TABLES = (
    ("otel_traces", "toDateTime(Timestamp)"),
    ("otel_traces_trace_id_ts", "Start"),
    ("llm_usage", "toDateTime(time)"),
    ("llm_usage_rejected", "toDateTime(time)"),
)
ROLLUP_TABLES = (("llm_usage_rollup", "bucket"), ("rollup_builds", "bucket"))
RAW_RETENTION = "raw_retention_days"
ROLLUP_RETENTION = "rollup_retention_days"
TRUST_CLIENT_COSTS = "trust_client_costs"


def stored_settings(store: Store) -> dict[str, str]:
    rows = store.query("SELECT name, argMax(value, updated_at) FROM store_settings GROUP BY name").rows
    return {str(name): str(value) for name, value in rows}


def apply_settings(
    store: Store,
    *,
    raw_retention_days: int | None = None,
    rollup_retention_days: int | None = None,
    trust_client_costs: bool | None = None,
) -> dict[str, str]:
    """Write the settings given (argument, else environment) to the store, and the retention as TTLs;
    returns the store's settings."""
    stored = stored_settings(store)
    settings = StoreSettings.resolve(
        store_raw_retention_days=raw_retention_days,
        store_rollup_retention_days=rollup_retention_days,
        store_trust_client_costs=trust_client_costs,
    )
    raw, rollup = settings.store_raw_retention_days, settings.store_rollup_retention_days
    trust = settings.store_trust_client_costs
    wanted = {
        RAW_RETENTION: None if raw is None else str(raw),
        ROLLUP_RETENTION: None if rollup is None else str(rollup),
        TRUST_CLIENT_COSTS: None if trust is None else str(int(trust)),
    }
    after = {**stored, **{k: v for k, v in wanted.items() if v is not None}}
    raw_days, rollup_days = int(after.get(RAW_RETENTION, "0")), int(after.get(ROLLUP_RETENTION, "0"))
    if raw_days and rollup_days and rollup_days < raw_days:
        raise ConfigurationError(
            f"SpendScope setting store_rollup_retention_days ({rollup_days}) must not be less than "
            f"store_raw_retention_days ({raw_days}): rollups answer for the days whose raw calls are gone"
        )
    changed = {k: v for k, v in wanted.items() if v is not None and stored.get(k, "0") != v}
    for name, tables in ((RAW_RETENTION, RAW_TABLES), (ROLLUP_RETENTION, ROLLUP_TABLES)):
        if name in changed:
            _set_ttl(store, tables, int(changed[name]), had=int(stored.get(name, "0")) > 0)
    if changed:
        now = datetime.now(UTC)
        store.insert(
            "store_settings",
            [[name, value, now] for name, value in changed.items()],
            ["name", "value", "updated_at"],
            column_type_names=["LowCardinality(String)", "String", "DateTime64(6, 'UTC')"],
        )
    return after


def _set_ttl(store: Store, tables: tuple[tuple[str, str], ...], days: int, *, had: bool) -> None:
    for table, age in tables:
        if days:
            store.command(f"ALTER TABLE {table} MODIFY TTL {age} + toIntervalDay({days})")
        elif had:
            store.command(f"ALTER TABLE {table} REMOVE TTL")


def pricer(price_file: str | None = None) -> Pricer:
    """The Pricer of the store's prices: genai-prices and the price file (argument, else
    SPENDSCOPE_PRICE_FILE)."""
    from spendscope.pricing import PriceFile, Pricer

    path = PriceSettings.resolve(price_file=price_file).price_file
    return Pricer(PriceFile.load(path) if path is not None else None)


def load_prices(store: Store) -> int:
    """The price data (genai-prices and the price file), if it changed since the store's were loaded."""
    from spendscope.store.prices import load_prices as load

    return load(store, pricer())
