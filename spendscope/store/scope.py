"""What a tenant token may read: every named query a report runs goes through `TenantScope`, which
forces the tenant into it, whatever the caller asked for.

    scoped = TenantScope(store, "acme")
    reports.report(scoped, by="user", since=..., until=..., where={"tenant": "other"})   # -> no rows

The one place tenant access is decided. Queries with `where_keys`/`where_values` get `tenant=<tenant>`
added (all filters must hold, so `tenant=other` beside it matches nothing); queries with a `tenant`
parameter must name the scope's tenant; any other query is refused (`OutsideScope`): reconciliation,
budgets and the unpriced-calls list are an admin's. A route cannot forget the filter: it never sees the
unscoped store.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, BinaryIO

from spendscope.store.reports import ReportStore

# named query -> how it is scoped: "where" (a tenant filter added) or "tenant" (its tenant parameter)
SCOPED: Mapping[str, str] = {
    "usage_by": "where",
    "usage_by_raw": "where",
    "cost_series": "where",
    "top_users": "where",
    "calls": "where",
    "user_monthly_by_model": "where",
    "usage_days": "where",
    "active_users": "where",
    "usage_pairs": "where",
    "users_page": "where",
    "billing_by": "where",
    "billing_pairs": "where",
    "billing_jobs": "where",
    "tenant_invoice": "tenant",
    "tenant_invoice_raw": "tenant",
    "invoice_facts": "tenant",
    "tenant_margins": "tenant",
}


class OutsideScope(Exception):
    """A tenant token asked for something that is not its tenant's (a 403)."""


def scoped_params(name: str, params: Mapping[str, Any], tenant: str) -> dict[str, Any]:
    """`params` of the named query `name` restricted to `tenant` (pure)."""
    how = SCOPED.get(name)
    if how is None or not tenant:
        raise OutsideScope(f"not open to a tenant token ({name})")
    out = dict(params)
    if how == "where":
        out["where_keys"] = [*params["where_keys"], "tenant"]
        out["where_values"] = [*params["where_values"], tenant]
    elif params["tenant"] != tenant:
        raise OutsideScope(f"a tenant token for {tenant!r} sees that tenant only")
    return out


class TenantScope:
    """A `ReportStore` that answers for one tenant only."""

    def __init__(self, store: ReportStore, tenant: str) -> None:
        self._store = store
        self.tenant = tenant

    def run(self, name: str, params: Mapping[str, Any]) -> Any:
        return self._store.run(name, scoped_params(name, params, self.tenant))

    def write_csv(self, name: str, params: Mapping[str, Any], out: BinaryIO) -> None:
        self._store.write_csv(name, scoped_params(name, params, self.tenant), out)
