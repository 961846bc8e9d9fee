"""`budgets.yaml`: per-user and per-tenant budgets, validated with pydantic.

    warning_percent: 80
    per_user: {daily_usd: 5, monthly_usd: 50}          # every user's limits (UTC day, calendar month)
    tenants:
      acme:
        per_user: {daily_usd: 20, monthly_usd: 300}    # the limits of acme's users
        total: {daily_usd: 2000, monthly_usd: 40000}   # acme's own budget
    users:
      u-ceo: {daily_usd: 100}                          # monthly_usd: acme's (or the default)
      batch-bot: {daily_usd: null}                     # null: no daily limit

A user's limit in a window is the first one set of: `users.<id>`, `tenants.<tenant>.per_user`,
`per_user`; a limit left out is inherited, `null` means no limit. Budgets are per (tenant, user): a
user id seen under two tenants has two budgets.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Final

from pydantic import BaseModel, ConfigDict, Field, ValidationError

INHERIT: Final = None  # a limit left out (or null in per_user): the next level's limit
NO_LIMIT: Final = math.inf

Usd = Annotated[Decimal, Field(gt=0, allow_inf_nan=False, description="US dollars")]


class BudgetConfigError(ValueError):
    """`budgets.yaml` is missing, not YAML, or not a valid budget file; the message says where."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)


class Limits(_Model):
    """Limits in USD for a UTC day and a calendar month (UTC). Left out: inherited; null: no limit."""

    daily_usd: Usd | None = None
    monthly_usd: Usd | None = None

    def resolved(self, field: str) -> float | None:
        """The limit as the evaluator's query takes it: None to inherit, inf for no limit."""
        if field not in self.model_fields_set:
            return INHERIT
        value: Decimal | None = getattr(self, field)
        return NO_LIMIT if value is None else float(value)


class TenantBudget(_Model):
    per_user: Limits = Limits()
    total: Limits = Limits()


class BudgetConfig(_Model):
    warning_percent: Annotated[float, Field(gt=0, le=100)] = 80.0
    per_user: Limits = Limits()
    tenants: dict[Annotated[str, Field(min_length=1)], TenantBudget] = {}
    users: dict[Annotated[str, Field(min_length=1)], Limits] = {}
    max_listed_users: Annotated[int, Field(ge=1, le=1_000_000)] = 10_000

    def tenant_totals(self) -> dict[str, tuple[float | None, float | None]]:
        """Tenants with an own budget: tenant -> (daily, monthly) limit in USD (None: none)."""
        out: dict[str, tuple[float | None, float | None]] = {}
        for tenant, budget in sorted(self.tenants.items()):
            daily, monthly = budget.total.daily_usd, budget.total.monthly_usd
            if daily is not None or monthly is not None:
                out[tenant] = (
                    float(daily) if daily is not None else None,
                    float(monthly) if monthly is not None else None,
                )
        return out

    def query_params(self, today: date) -> dict[str, Any]:
        """The parameters of `clickhouse/queries/budget_status.sql` for the UTC day `today`."""

        def default(field: str) -> float:
            value = self.per_user.resolved(field)
            return NO_LIMIT if value is None else value

        tenants = sorted(self.tenants.items())
        users = sorted(self.users.items())
        return {
            "today": today,
            "warning_percent": self.warning_percent,
            "default_day": default("daily_usd"),
            "default_month": default("monthly_usd"),
            "tenants": [t for t, _ in tenants],
            "tenant_day": [b.per_user.resolved("daily_usd") for _, b in tenants],
            "tenant_month": [b.per_user.resolved("monthly_usd") for _, b in tenants],
            "users": [u for u, _ in users],
            "user_day": [limits.resolved("daily_usd") for _, limits in users],
            "user_month": [limits.resolved("monthly_usd") for _, limits in users],
            "max_users": self.max_listed_users,
        }


def _location(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def format_errors(source: str, error: ValidationError) -> str:
    """One line per problem: `budgets.yaml: users.u-42.daily_usd: Input should be greater than 0 (got -5)`."""
    lines = []
    for problem in error.errors(include_url=False):
        where = _location(tuple(problem["loc"]))
        got = problem.get("input")
        shown = "" if isinstance(got, Mapping | list) else f" (got {got!r})"
        lines.append(f"{source}: {where}: {problem['msg']}{shown}")
    return "\n".join(lines)


def parse_budgets(data: Any, source: str = "budgets.yaml") -> BudgetConfig:
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise BudgetConfigError(f"{source}: must be a mapping of settings, not {type(data).__name__}")
    try:
        return BudgetConfig.model_validate(data)
    except ValidationError as exc:
        raise BudgetConfigError(format_errors(source, exc)) from None


def load_budgets(path: str | Path) -> BudgetConfig:
    """Read and validate a budgets file; raises BudgetConfigError naming the file, field and reason."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise BudgetConfigError(f"cannot read the budgets file {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise BudgetConfigError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from None
    return parse_budgets(data, str(path))
