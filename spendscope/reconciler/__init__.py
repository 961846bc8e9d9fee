"""Reconciliation: SpendScope's numbers proven against OpenAI's organization Usage and Costs APIs, with
every gap explained by cause.

    from spendscope.reconciler import AdminAPI, Reconciler, ReconcileOptions
    with open_store(dsn) as store, AdminAPI() as api:           # OPENAI_ADMIN_KEY
        result = Reconciler(store, api).run(ReconcileOptions(since=..., until=...))
        result.totals.coverage_ratio, result.cause_usd()

Tokens are compared with the Usage API per (bucket, project_id, api_key_id, model, batch, service_tier),
dollars with the Costs API per UTC day and line item. Results go to the reconciliation_runs and
reconciliation_diffs tables; `ReconcileMetrics` exposes them to Prometheus.
"""

from spendscope.reconciler._errors import AdminKeyError, FetchError, ReconcileError
from spendscope.reconciler._fetch import AdminAPI, RetryPolicy
from spendscope.reconciler._metrics import ReconcileMetrics
from spendscope.reconciler._model import CAUSES, ReconciliationResult
from spendscope.reconciler._run import ReconcileOptions, Reconciler, plan_windows

__all__ = [
    "CAUSES",
    "AdminAPI",
    "AdminKeyError",
    "FetchError",
    "ReconcileError",
    "ReconcileMetrics",
    "ReconcileOptions",
    "Reconciler",
    "ReconciliationResult",
    "RetryPolicy",
    "plan_windows",
]
