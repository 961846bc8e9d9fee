"""The store's settings, read by `spendscope migrate` (and the collector, which migrates on start). The
retention and trust settings are written to the store (spendscope/store/setup.py) when they are given
and kept otherwise, so none of them has a default here; the trace indexes choose how otel_traces is
created."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from spendscope.settings._base import Settings
from spendscope.settings._types import DEFAULT_STORE, StoreDsn, Whole


class StoreLocation(Settings):
    """Where the store is: `--store` of every command, and `spendscope.store.open_store()` without one
    (the collector's `store` is the same setting)."""

    store: StoreDsn = DEFAULT_STORE


class StoreSettings(Settings):
    store_raw_retention_days: Whole | None = Field(
        None,
        ge=0,
        validation_alias="SPENDSCOPE_STORE_RAW_RETENTION_DAYS",
        description="days of raw spans and calls the store keeps (0: all); set in the store by "
        "`spendscope migrate`",
    )
    store_rollup_retention_days: Whole | None = Field(
        None,
        ge=0,
        validation_alias="SPENDSCOPE_STORE_ROLLUP_RETENTION_DAYS",
        description="days of rollups the store keeps (0: all; at least the raw retention); set by "
        "`spendscope migrate`",
    )
    store_trust_client_costs: bool | None = Field(
        None,
        validation_alias="SPENDSCOPE_STORE_TRUST_CLIENT_COSTS",
        description="calls of a model the store has no price for take the cost their client sent (anyone "
        "who can reach the collector can then set those costs); set by `spendscope migrate`",
    )
    store_trace_indexes: Literal["auto", "text", "bloom_filter"] = Field(
        "auto",
        validation_alias="SPENDSCOPE_STORE_TRACE_INDEXES",
        description="the otel_traces indexes a new store gets: `auto` as the ClickHouse exporter renders "
        "them (text indexes on ClickHouse >= 26.2, bloom filters before), or `text` or `bloom_filter` "
        "(text indexes cost more at ingest: bench/README.md, Ingest)",
    )
