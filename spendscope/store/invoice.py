"""A tenant's invoice for a calendar month (UTC): a document a finance team forwards.

    doc = invoice(store, tenant="acme", month=date(2026, 11, 1), by="model", default_margin=Decimal(10))
    doc.to_json(); doc.to_csv(); doc.table()

It states its tenant, window, the margin(s) in force, the price data its calls were priced with, its
lines (provider and billed cost by model, user, endpoint, service, operation or attr:KEY), the usage of
unknown cost on a line of its own (not billed: see spendscope/store/money.py) and its total, in JSON,
CSV and a table alike. A tenant the store has never seen (no call at any time, no margin) is an error;
one without usage that month is an invoice of nothing, which says so.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from spendscope.store.errors import ReportError
from spendscope.store.formatting import csv_field, spreadsheet_text, table_cells
from spendscope.store.money import Cost
from spendscope.store.reports import QueryRunner, Report, invoice_query, json_value, month_range, run
from spendscope.store.times import ch_time

ITEM, UNPRICED, TOTAL = "item", "unpriced", "total"  # the kinds of line (the CSV's `line` column)
# The columns a table shows (the unpriced tokens are on the unpriced line's token columns).
TABLE_COLUMNS = (
    "calls",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "billed_usd",
    "unpriced_calls",
    "usage_unavailable_calls",
    "error_calls",
)


@dataclass(frozen=True, slots=True)
class Margin:
    """The margin billed from `start` (a UTC day) on: the tenant's own, else the default."""

    start: date
    percent: Decimal
    default: bool

    def text(self) -> str:
        return f"{self.percent.normalize():f}% from {self.start}" + (" (default)" if self.default else "")


@dataclass(frozen=True, slots=True)
class Invoice:
    tenant: str
    month: date  # its first day
    since: datetime
    until: datetime
    by: str
    lines: Report
    margins: tuple[Margin, ...]
    price_versions: tuple[str, ...]
    client_cost_calls: int  # priced from the cost their client sent (trust_client_costs)

    @property
    def key(self) -> str:
        return self.lines.columns[0]

    def total(self) -> dict[str, Any]:
        """Every line added up (zeros for an invoice of nothing); costs as Costs add (money.py)."""
        totals = self.lines.total()
        if not totals:
            totals = {c: 0 for c in self.lines.columns[1:]} | {
                "cost_usd": Decimal(0),
                "billed_usd": Decimal(0),
            }
        return totals

    @property
    def cost(self) -> Cost:
        return Cost.of(self.total())

    @property
    def billed(self) -> Cost:
        return Cost.of(self.total(), "billed_usd")

    @property
    def complete(self) -> bool:
        return self.cost.complete

    def unpriced(self) -> dict[str, Any]:
        """The line of the usage whose cost is unknown, in the lines' columns: not billed."""
        cost = self.cost
        line: dict[str, Any] = dict.fromkeys(self.lines.columns[1:], 0)
        line |= cost.counts() | {
            "calls": cost.unknown_calls,
            "input_tokens": cost.unpriced_input_tokens,
            "output_tokens": cost.unpriced_output_tokens,
            "priced_calls": 0,
            "cost_usd": None,
            "billed_usd": None,
        }
        return line

    def facts(self) -> list[tuple[str, str]]:
        """What the invoice states besides its lines, as (name, text)."""
        cost = self.cost
        return [
            ("invoice", self.tenant),
            ("month", f"{self.month:%Y-%m}"),
            ("since", self.since.isoformat()),
            ("until", self.until.isoformat()),
            ("by", self.by),
            ("margin", "; ".join(m.text() for m in self.margins)),
            ("price_data", "; ".join(self.price_versions)),
            ("client_cost_calls", str(self.client_cost_calls)),
            ("complete", "true" if cost.complete else "false"),
            ("unknown_cost_calls", str(cost.unknown_calls)),
        ]

    def notes(self) -> list[str]:
        """Sentences for people: what the invoice holds, and what it does not."""
        cost = self.cost
        out = []
        if not self.lines.rows:
            out.append(f"No usage for {self.tenant} in {self.month:%Y-%m}: nothing to bill.")
        if not cost.complete:
            out.append(
                f"INCOMPLETE: {cost.unknown_calls:,} call(s) have an unknown cost and are not billed "
                f"({cost.unpriced_calls:,} without a price: {cost.unpriced_input_tokens:,} input and "
                f"{cost.unpriced_output_tokens:,} output tokens; {cost.usage_unavailable_calls:,} answered "
                "without usage). The totals are the priced calls' only."
            )
        if self.client_cost_calls:
            out.append(f"{self.client_cost_calls:,} call(s) are billed at the cost their client sent.")
        return out

    def rows(self) -> list[tuple[str, list[Any]]]:
        """(kind of line, the line in the lines' columns): the items, the unpriced line when there is
        usage of unknown cost, the total."""
        out = [(ITEM, list(row)) for row in self.lines.rows]
        columns = self.lines.columns[1:]
        if not self.complete:
            unpriced = self.unpriced()
            out.append((UNPRICED, ["", *(unpriced[c] for c in columns)]))
        total = self.total()
        out.append((TOTAL, ["", *(total[c] for c in columns)]))
        return out

    def to_json(self) -> dict[str, Any]:
        cost = self.cost
        return {
            "tenant": self.tenant,
            "month": f"{self.month:%Y-%m}",
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "by": self.by,
            "margins": [
                {"from": m.start.isoformat(), "percent": json_value(m.percent), "default": m.default}
                for m in self.margins
            ],
            "price_versions": list(self.price_versions),
            "client_cost_calls": self.client_cost_calls,
            "complete": cost.complete,
            "unknown_cost_calls": cost.unknown_calls,
            **self.lines.to_json(),
            "unpriced": json_value(self.unpriced()),
            "total": json_value(self.total()),
            "notes": self.notes(),
        }

    def to_csv(self) -> str:
        """The facts as `name,value` lines, an empty line, then the lines with their kind first
        (`item`, `unpriced`, `total`): money exact, unknown costs empty."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerows((name, spreadsheet_text(text)) for name, text in self.facts())
        writer.writerow([])
        writer.writerow(["line", *self.lines.columns])
        writer.writerows([kind, *(csv_field(v) for v in row)] for kind, row in self.rows())
        return buffer.getvalue()

    def table(self) -> tuple[list[str], list[list[str]]]:
        """Headers and cells for a terminal: the key, TABLE_COLUMNS, each cost with its unknown calls."""
        columns = self.lines.columns
        shown = [0, *(columns.index(c) for c in TABLE_COLUMNS)]
        cells = []
        for kind, row in self.rows():
            line = table_cells(columns, row)
            if kind != ITEM:
                line[0] = "unknown cost, not billed" if kind == UNPRICED else "total"
            cells.append([line[i] for i in shown])
        return [columns[i] for i in shown], cells


def margins_in_force(
    rows: Sequence[tuple[date, Decimal]], since: date, until: date, default: Decimal
) -> tuple[Margin, ...]:
    """The margins billed over [since, until): the one in force on `since` (the tenant's latest from
    then or before, else the default) and each of the tenant's starting inside (pure)."""
    before = [(d, p) for d, p in sorted(rows) if d <= since]
    first = Margin(since, before[-1][1], False) if before else Margin(since, default, True)
    inside = [Margin(d, p, False) for d, p in sorted(rows) if since < d < until]
    return (first, *inside)


def invoice(
    store: QueryRunner, *, tenant: str, month: date, by: str = "model", default_margin: Decimal = Decimal(0)
) -> Invoice:
    """The invoice of `tenant` for the month of `month`; ReportError for a tenant never seen."""
    since, until = month_range(month)
    lines = run(store, invoice_query(tenant, month, by=by, default_margin=default_margin), key=by)
    facts = store.run("invoice_facts", {"tenant": tenant, "since": ch_time(since), "until": ch_time(until)})
    [[seen, versions, client_calls]] = facts.rows
    if not seen:
        raise ReportError(f"no tenant {tenant!r} in the store: no call at any time, no margin (a typo?)")
    margin_rows = store.run("tenant_margins", {"tenant": tenant}).rows
    margins = margins_in_force(
        [(d, Decimal(p)) for _, d, p in margin_rows], since.date(), until.date(), default_margin
    )
    return Invoice(
        tenant,
        since.date(),
        since,
        until,
        by,
        lines,
        margins,
        tuple(str(v) for v in versions),
        int(client_calls),
    )
