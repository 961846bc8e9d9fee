"""Per-tenant margins with effective dates: billed cost = provider cost * (100 + margin) / 100."""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation

from spendscope.store.errors import ReportError
from spendscope.store.store import Store

MARGIN_ENV = "SPENDSCOPE_MARGIN_PERCENT"


def parse_margin(text: str, *, source: str = "margin") -> Decimal:
    """A margin over provider cost: billed = cost * (100 + percent) / 100, so 0 (cost price) or more;
    a negative one would bill below cost and is refused, as anything tenant_margins cannot hold."""
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise ReportError(f"bad {source} {text!r}: a percentage such as 20 or 12.5") from None
    if not value.is_finite() or value < 0 or value >= 100_000:
        raise ReportError(
            f"bad {source} {text!r}: a margin over provider cost, a percentage from 0 to 99999.9999, "
            "such as 20 or 12.5"
        )
    if value != value.quantize(Decimal("0.0001")):
        raise ReportError(f"bad {source} {text!r}: at most 4 decimal places")
    return value + 0  # -0 is 0


def default_margin(environ: Mapping[str, str] | None = None) -> Decimal:
    """SPENDSCOPE_MARGIN_PERCENT, 0 if unset: the margin of tenants without one of their own."""
    raw = (os.environ if environ is None else environ).get(MARGIN_ENV, "").strip()
    return parse_margin(raw, source=f"environment variable {MARGIN_ENV}") if raw else Decimal(0)


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
