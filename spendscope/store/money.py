"""A cost that may be partly or wholly unknown: the one representation of every report, invoice, API
answer, table and budget (pure).

A call's cost is **unknown** when it is unpriced (its usage is known, its model has no price) or its
usage is unavailable (it was answered without usage: a stream closed early). A failed call costs
nothing: it is counted (`error_calls`), never unknown. The named queries (clickhouse/queries/) decide
it once per group, in SQL, and every group carries beside its cost:

    priced_calls, unpriced_calls, unpriced_input_tokens, unpriced_output_tokens, usage_unavailable_calls

- `cost_usd` (and `billed_usd`) is the sum over the group's priced calls, or NULL when no call of the
  group is priced and at least one has an unknown cost: no dollar figure, never $0.
- The group is **complete** when none of its calls has an unknown cost
  (`unpriced_calls + usage_unavailable_calls == 0`); else its dollar figure is the priced part only.

`Cost` is that group's figure with its counts, as every renderer shows it: JSON null and the count
columns; CSV an empty cell and the count columns; a table `unknown`, or `$1.23000000 + 3 unknown`
for a partial sum (with PARTIAL_NOTE under the table). Billed cost follows: billed of an unknown
cost is unknown, billed of a partial one is the billed priced part, marked the same way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

# The columns that travel with every cost (in this order in the named queries, after the cost).
COUNTS = (
    "priced_calls",
    "unpriced_calls",
    "unpriced_input_tokens",
    "unpriced_output_tokens",
    "usage_unavailable_calls",
)
# Columns holding a group's cost, priced part only; a row that has them carries COUNTS too.
COST_COLUMNS = ("cost_usd", "billed_usd")
UNKNOWN = "unknown"
# Printed under a table that shows a partial sum.
PARTIAL_NOTE = (
    "$X + N unknown: the priced calls cost $X; N more calls have an unknown cost (no price, or "
    "answered without usage) and are not in it."
)


@dataclass(frozen=True, slots=True)
class Cost:
    """A group's cost: `usd` the sum over its priced calls, None when it has none and some of unknown
    cost (see the module's docstring)."""

    usd: Decimal | None
    priced_calls: int = 0
    unpriced_calls: int = 0
    unpriced_input_tokens: int = 0
    unpriced_output_tokens: int = 0
    usage_unavailable_calls: int = 0

    def __post_init__(self) -> None:
        if (self.usd is None) != (self.priced_calls == 0 and self.unknown_calls > 0):
            raise ValueError(f"a cost is unknown exactly when no call is priced and some are not: {self}")

    @classmethod
    def of(cls, row: Mapping[str, Any], column: str = "cost_usd") -> Cost:
        """The cost in `row[column]` with the row's counts (a report's row, as_dicts)."""
        value = row[column]
        return cls(None if value is None else Decimal(value), *(int(row[c]) for c in COUNTS))

    @classmethod
    def zero(cls) -> Cost:
        return cls(Decimal(0))

    @property
    def unknown_calls(self) -> int:
        """Calls whose cost is unknown: unpriced, or answered without usage."""
        return self.unpriced_calls + self.usage_unavailable_calls

    @property
    def unpriced_tokens(self) -> int:
        return self.unpriced_input_tokens + self.unpriced_output_tokens

    @property
    def complete(self) -> bool:
        """Whether `usd` is the whole cost (no call of unknown cost)."""
        return self.unknown_calls == 0

    def __add__(self, other: Cost) -> Cost:
        priced = self.priced_calls + other.priced_calls
        counts = (
            self.unpriced_calls + other.unpriced_calls,
            self.unpriced_input_tokens + other.unpriced_input_tokens,
            self.unpriced_output_tokens + other.unpriced_output_tokens,
            self.usage_unavailable_calls + other.usage_unavailable_calls,
        )
        unknown = priced == 0 and counts[0] + counts[3] > 0
        usd = None if unknown else (self.usd or Decimal(0)) + (other.usd or Decimal(0))
        return Cost(usd, priced, *counts)

    def text(self, places: int = 8) -> str:
        """For people: `$0.01000000`, `unknown`, or `$0.01000000 + 2 unknown` (a partial sum: the priced
        part, and how many calls of unknown cost it leaves out; see PARTIAL_NOTE)."""
        if self.usd is None:
            return UNKNOWN
        amount = f"${self.usd:,.{places}f}"
        if self.complete:
            return amount
        return f"{amount} + {self.unknown_calls:,} {UNKNOWN}"

    def counts(self) -> dict[str, int]:
        return {c: getattr(self, c) for c in COUNTS}


def has_costs(columns: Sequence[str]) -> bool:
    """Whether rows with these columns carry costs with their counts (see COUNTS)."""
    return any(c in columns for c in COST_COLUMNS) and all(c in columns for c in COUNTS)


def any_partial(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> bool:
    """Whether a row's cost is a partial sum: a dollar figure with calls of unknown cost beside it."""
    if not has_costs(columns):
        return False
    column = next(c for c in COST_COLUMNS if c in columns)
    costs = (Cost.of(dict(zip(columns, row, strict=True)), column) for row in rows)
    return any(cost.usd is not None and not cost.complete for cost in costs)


def total(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> dict[str, Any]:
    """The total of each numeric column of `rows` (every value an int or a Decimal): the costs as
    their Costs' sum (None when the whole is unknown), the counts summed; {} without rows."""
    rows = list(rows)
    if not rows:
        return {}
    costs = has_costs(columns)
    out: dict[str, Any] = {}
    for i, column in enumerate(columns):
        values = [row[i] for row in rows]
        if costs and column in COST_COLUMNS:
            dicts = (dict(zip(columns, row, strict=True)) for row in rows)
            out[column] = sum((Cost.of(d, column) for d in dicts), Cost.zero()).usd
        elif all(isinstance(v, int | Decimal) and not isinstance(v, bool) for v in values):
            out[column] = sum(values)
    return out
