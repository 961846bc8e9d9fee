"""The store's settings, written to the store by `spendscope migrate` (spendscope/store/setup.py): each
is written when it is given and kept otherwise, so none has a default here."""

from __future__ import annotations

from pydantic import Field

from spendscope.settings._base import Settings
from spendscope.settings._types import Whole


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
