"""Per-user and per-tenant budgets that scale to millions of users without millions of series.

    config = load_budgets("budgets.yaml")
    evaluator = BudgetEvaluator(open_store(dsn), config)
    evaluator.evaluate()            # one query over the ClickHouse daily rollup
    with evaluator.serving(("127.0.0.1", 9465), interval=60):
        ...                         # /metrics for Prometheus, re-evaluated every interval

`spendscope budgets` runs it. Only users at or above the warning percentage of a limit get
`spendscope_budget_spend_usd` / `spendscope_budget_limit_usd` series; the alert rules in
prometheus/rules/budgets.yml fire per user from them. Spend is the priced calls' cost: calls without a
price (their cost unknown, never $0) are counted as tokens, `spendscope_budget_tenant_unpriced_tokens`
per tenant and `spendscope_budget_unpriced_tokens` per listed user.
"""

from spendscope.budgets._config import BudgetConfig, BudgetConfigError, load_budgets, parse_budgets
from spendscope.budgets._evaluate import Evaluation, TenantBudget, UserBudget, evaluate
from spendscope.budgets._serve import BudgetEvaluator
from spendscope.settings.budgets import BudgetSettings

__all__ = [
    "BudgetConfig",
    "BudgetConfigError",
    "BudgetEvaluator",
    "BudgetSettings",
    "Evaluation",
    "TenantBudget",
    "UserBudget",
    "evaluate",
    "load_budgets",
    "parse_budgets",
]
