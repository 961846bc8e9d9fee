"""How the pages show figures (pure): money as the store's `Cost` (unknown is never $0), numbers,
quantities, and the bars of a cost chart.

Every money cell carries its exact figure beside the rounded text (`data-usd`, the API's decimal
string, empty when unknown; `data-unknown`, its calls of unknown cost), so the browser tests compare
a page with the API to the last digit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from markupsafe import Markup, escape

from spendscope.store.money import Cost
from spendscope.store.reports import json_value

MINUTE_QUANTITIES = {"realtime_seconds": "realtime minutes"}


def usd_text(usd: Decimal) -> str:
    """$1,234.57 from a dollar up; below, up to 6 decimals (at least 2): $0.000123, $0.50."""
    if abs(usd) >= 1:
        return f"${usd:,.2f}"
    text = f"{usd:.6f}".rstrip("0")
    whole, _, decimals = text.partition(".")
    return f"${whole}.{decimals.ljust(2, '0')}"


def cost_of(row: Mapping[str, Any], column: str = "cost_usd") -> Cost:
    return Cost.of(row, column)


def money(cost: Cost) -> Markup:
    """A money cell's content: `unknown`, `$X`, or `$X + N unknown` (the priced part, and the calls of
    unknown cost it leaves out)."""
    exact = "" if cost.usd is None else str(json_value(cost.usd))
    attrs = f'data-usd="{exact}" data-unknown="{cost.unknown_calls}"'
    if cost.usd is None:
        text = '<span class="unknown" title="no price, or answered without usage">unknown</span>'
    elif cost.complete:
        text = escape(usd_text(cost.usd))
    else:
        text = Markup(
            '{} <span class="unknown" title="{} calls of unknown cost are not in it">+ {:,} unknown</span>'
        ).format(usd_text(cost.usd), cost.unknown_calls, cost.unknown_calls)
    return Markup(f'<span class="money" {attrs}>{text}</span>')


def number(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.1f}"
    return f"{int(value):,}"


def quantity_label(name: str) -> str:
    return MINUTE_QUANTITIES.get(name, name.replace("_", " "))


def quantity_value(name: str, value: float) -> str:
    """A quantity as shown: seconds of Realtime sessions as minutes."""
    if name in MINUTE_QUANTITIES:
        minutes = value / 60
        return "< 0.01" if 0 < minutes < 0.005 else f"{minutes:,.2f}"  # recorded, if short: never 0.00
    return number(value)


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    x: float
    width: float
    height: float  # 0 for an unknown or empty period
    cost: Cost
    calls: int


@dataclass(frozen=True, slots=True)
class Chart:
    bars: list[Bar]
    width: int
    height: int
    top: Decimal  # the largest known cost (the scale)


def periods(first: date, last: date, period: str) -> list[str]:
    """Every day (YYYY-MM-DD) or month (YYYY-MM) from `first` to `last`, both included."""
    out: list[str] = []
    current = first if period == "day" else first.replace(day=1)
    while current <= last:
        out.append(current.isoformat() if period == "day" else current.isoformat()[:7])
        if period == "day":
            current += timedelta(days=1)
        else:
            current = date(current.year + current.month // 12, current.month % 12 + 1, 1)
    return out


def chart(
    rows: Sequence[Mapping[str, Any]],
    period: str,
    *,
    first: date,
    last: date,
    width: int = 960,
    height: int = 120,
) -> Chart:
    """Bars of a cost series (`period`: day or month), one per period from `first` to `last` (none
    without calls): a bar's height is its priced cost; a period whose cost is unknown gets a marked
    stub (never drawn as $0)."""
    size = 7 if period == "month" else 10
    found = {str(row[period])[:size]: (Cost.of(row), int(row["calls"])) for row in rows}
    labels = periods(first, last, period)
    costs = [(label, *found.get(label, (Cost.zero(), 0))) for label in labels]
    top = max((c.usd for _, c, _ in costs if c.usd is not None), default=Decimal(0))
    slot = width / max(len(costs), 1)
    bar = min(slot * 0.8, 48)
    bars = []
    for i, (label, cost, calls) in enumerate(costs):
        share = float(cost.usd / top) if top and cost.usd is not None else 0.0
        bars.append(
            Bar(
                label,
                round(i * slot + (slot - bar) / 2, 1),
                round(bar, 1),
                round(share * (height - 20), 1),
                cost,
                calls,
            )
        )
    return Chart(bars, width, height, top)
