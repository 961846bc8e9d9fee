"""The reports' settings: what every report of billed cost reads (`spendscope invoice`, `export`, the
collector's reports API and portal)."""

from __future__ import annotations

from decimal import Decimal

from pydantic import Field

from spendscope.settings._base import Settings
from spendscope.settings._types import Margin


class ReportSettings(Settings):
    component = "reports"

    margin_percent: Margin = Field(
        Decimal(0),
        validation_alias="SPENDSCOPE_MARGIN_PERCENT",
        description="margin over provider cost of the tenants without one of their own (`spendscope "
        "margin`), in percent: billed = cost * (100 + margin) / 100",
    )
