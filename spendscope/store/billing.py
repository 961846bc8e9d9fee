"""Per-tenant margins with effective dates: billed cost = provider cost * (100 + margin) / 100."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from spendscope.settings._types import margin
from spendscope.settings.reports import ReportSettings
from spendscope.store.errors import ReportError
from spendscope.store.store import Store


def parse_margin(text: str, *, source: str = "margin") -> Decimal:
    """A margin over provider cost, checked as the default margin's setting is
    (spendscope/settings/_types.py)."""
    try:
        return margin(text)
    except ValueError as exc:
        raise ReportError(f"bad {source} {text!r}: {exc}") from None


def default_margin() -> Decimal:
    """The margin of tenants without one of their own: the reports' `margin_percent` setting
    (SPENDSCOPE_MARGIN_PERCENT, 0 if unset)."""
    return ReportSettings.resolve().margin_percent


def set_margin(store: Store, tenant: str, percent: Decimal, *, effective_from: date | None = None) -> None:
    """Bill `tenant` at `percent` over provider cost from `effective_from` (UTC date, default today)."""
    if not tenant:
        raise ReportError("a margin needs a tenant")
    day = effective_from or datetime.now(UTC).date()
    store.insert(
        "tenant_margins",
        [[tenant, day, parse_margin(str(percent)), datetime.now(UTC)]],
        ["tenant", "effective_from", "margin_percent", "updated_at"],
    )


def margins(store: Store, tenant: str | None = None) -> list[tuple[str, date, Decimal]]:
    rows = store.run("tenant_margins", {"tenant": tenant or ""})
    return [(str(t), d, Decimal(m)) for t, d, m in rows.rows]
