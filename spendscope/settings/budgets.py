"""The settings of `spendscope budgets` (and of `spendscope collector --budgets`)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from spendscope.settings._base import Settings
from spendscope.settings._types import AbsolutePath, Listen, Seconds


class BudgetSettings(Settings):
    component = "budgets"

    config: AbsolutePath = Field(
        Path("budgets.yaml"), validation_alias="SPENDSCOPE_BUDGETS_CONFIG", description="the budgets file"
    )
    listen: Listen = Field(
        ("127.0.0.1", 9465),
        validation_alias="SPENDSCOPE_BUDGETS_LISTEN",
        description="HOST:PORT for /metrics",
    )
    interval: Seconds = Field(
        60.0,
        ge=1,
        le=3600,
        validation_alias="SPENDSCOPE_BUDGETS_INTERVAL",
        description="seconds between evaluations, as 60, 60s, 5m or 1h",
    )
