"""Per-user budget alerts at scale, end to end with the real parts: 100,000 users in ClickHouse (the store server, their
history in the rollups), 50 of them pushed over budget by their calls (spans through llm_usage) and 20
near it; `spendscope budgets` exports only those; a real Prometheus scraping it with the alert rules
fires SpendScopeUserBudgetExceeded for exactly the 50, and a real Alertmanager with
alertmanager/alertmanager.yml delivers them to a webhook, and holds them back once the collector is down.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import yaml

from spendscope import names as n
from spendscope.budgets import BudgetEvaluator, Evaluation, parse_budgets
from spendscope.store import Store
from spendscope.store.rollups import build_rollups
from tests.monitoring import (
    ALERTMANAGER_DIR,
    PROMETHEUS_DIR,
    Alertmanager,
    Prometheus,
    Webhook,
    post_json,
    running_alertmanager,
    running_prometheus,
    wait_for,
    webhook_receiver,
)
from tests.store_fixtures import fresh_store, llm_record, priced_at

USERS = 100_000
NOW = datetime(2026, 3, 18, 12, 0, tzinfo=UTC)
EARLIER = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)  # this month, not today
CONFIG: dict[str, Any] = {
    "warning_percent": 80,
    "per_user": {"daily_usd": 5, "monthly_usd": 50},
    "tenants": {
        "t-3": {"per_user": {"daily_usd": 10}},
        "t-0": {"total": {"daily_usd": 20000, "monthly_usd": 1000000}},
    },
    "users": {"u-00007": {"daily_usd": None, "monthly_usd": None}},
}
WARNING = Decimal(80)


# --- the data: a model of every user's spend, in Python, from which the expectations follow ---------
def tenant(i: int) -> str:
    return f"t-{i % 4}"


def user(i: int) -> str:
    return f"u-{i:05d}"


def base_today(i: int) -> Decimal:
    return Decimal(50 + i % 7 * 10) / 100  # 0.50 .. 1.10


def base_earlier(i: int) -> Decimal:
    return Decimal(10 + i % 11)  # 10 .. 20, on 2026-03-05


def limits(i: int) -> tuple[Decimal | None, Decimal | None]:
    if user(i) == "u-00007":
        return None, None
    return (Decimal(10) if tenant(i) == "t-3" else Decimal(5)), Decimal(50)


OVER = sorted({(k * 1999 + 3) % USERS for k in range(50)})
WARN = sorted({(j * 7919 + 11) % USERS for j in range(20)} - set(OVER))
QUIET_T3 = next(i for i in range(3, USERS, 4) if i not in OVER and i not in WARN)  # 7 USD: under t-3's 8


def extra_spend() -> dict[int, tuple[Decimal, Decimal]]:
    """The calls that push users over or near their budgets: user -> (today, earlier this month)."""
    extra: dict[int, tuple[Decimal, Decimal]] = {}
    for k, i in enumerate(OVER):
        day_limit, month_limit = limits(i)
        assert day_limit is not None and month_limit is not None
        if k % 3 == 0:  # over today's limit by 25 cents
            extra[i] = (day_limit - base_today(i) + Decimal("0.25"), Decimal(0))
        elif k % 3 == 1:  # over the month's by a dollar, nothing more today
            extra[i] = (Decimal(0), month_limit - base_today(i) - base_earlier(i) + 1)
        else:  # both
            extra[i] = (Decimal(60), Decimal(0))
    for j, i in enumerate(WARN):
        day_limit, month_limit = limits(i)
        assert day_limit is not None and month_limit is not None
        if j % 2 == 0:  # 90% of today's
            extra[i] = (day_limit * Decimal("0.9") - base_today(i), Decimal(0))
        else:  # 85% of the month's
            extra[i] = (Decimal(0), month_limit * Decimal("0.85") - base_today(i) - base_earlier(i))
    extra[7] = (Decimal(500), Decimal(0))  # no limits at all
    extra[QUIET_T3] = (Decimal(7) - base_today(QUIET_T3), Decimal(0))
    return extra


def expected() -> dict[tuple[str, str, str], tuple[float, float]]:
    """(tenant, user, window) -> (spend, limit) for every user at or above the warning percentage."""
    out: dict[tuple[str, str, str], tuple[float, float]] = {}
    for i, (today, earlier) in extra_spend().items():
        day = base_today(i) + today
        month = day + base_earlier(i) + earlier
        for window, spent, limit in zip(("day", "month"), (day, month), limits(i), strict=True):
            if limit is not None and spent * 100 >= WARNING * limit:
                out[(tenant(i), user(i), window)] = (float(spent), float(limit))
    return out


def load(store: Store) -> None:
    """100,000 users' history straight into llm_usage (one call a day each), then the calls that matter as
    spans."""
    store.command(
        f"""
        INSERT INTO llm_usage (time, trace_id, span_id, tenant, user_id, operation, model, service, status,
            usage_state, cost_usd, cost_source, inserted_at)
        SELECT toDateTime64(d, 9, 'UTC') + toIntervalSecond(i % 3600), hex(cityHash64(i, d)), hex(i),
               concat('t-', toString(i % 4)), concat('u-', leftPad(toString(i), 5, '0')), 'chat',
               'gpt-4o-mini', 'app', 'ok', 'reported', c, 'store', now64(6)
        FROM (
            SELECT number AS i, toDate('2026-03-18') AS d, toDecimal128(50 + i % 7 * 10, 18) / 100 AS c
            FROM numbers({USERS})
            UNION ALL
            SELECT number, toDate('2026-03-05'), toDecimal128(10 + number % 11, 18) FROM numbers({USERS})
            UNION ALL  -- last month does not count
            SELECT number, toDate('2026-02-27'), toDecimal128(1000, 18) FROM numbers({USERS}) WHERE number % 1000 = 0
        )
        """
    )
    records = []
    for i, (today, earlier) in extra_spend().items():
        for at, cost in ((NOW, today), (EARLIER, earlier)):
            if cost:
                records.append(llm_record(at, tenant=tenant(i), user=user(i), **priced_at(str(cost))))
    build_rollups(store, lag=timedelta(0))  # the history's days: read from the daily rollup
    store.insert_spans(records)


# --- fixtures ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def users(server_dsn: str, _store_admin: Store) -> Iterator[Store]:
    with fresh_store(server_dsn, _store_admin) as store:
        load(store)
        yield store


def spend_series(evaluation: Evaluation) -> dict[tuple[str, str, str], tuple[float, float]]:
    return {(u.tenant, u.user, u.window): (u.spend_usd, u.limit_usd) for u in evaluation.users}


def test_100k_users_export_only_the_ones_near_or_over_budget(users: Store) -> None:
    evaluator = BudgetEvaluator(users, parse_budgets(CONFIG), now=lambda: NOW)
    evaluation = evaluator.evaluate()
    assert len(OVER) == 50 and len(WARN) == 20 and 7 not in OVER + WARN
    want = expected()
    exceeded = {key for key, (spent, limit) in want.items() if spent >= limit}
    assert len({(t, u) for t, u, _ in exceeded}) == 50
    assert spend_series(evaluation).keys() == want.keys()
    for key, (spent, limit) in spend_series(evaluation).items():
        assert spent == pytest.approx(want[key][0], abs=1e-9) and limit == want[key][1]
    assert evaluation.users_evaluated == USERS
    assert evaluation.users_over_warning == evaluation.users_exported == 50 + len(WARN)
    assert len(evaluation.users) == len(want)  # 86 series each of spend and limit, for 100k users
    tenant_spend = {(t.tenant, t.window): t.spend_usd for t in evaluation.tenants}
    month = sum(base_today(i) + base_earlier(i) for i in range(0, USERS, 4))
    month += sum(a + b for i, (a, b) in extra_spend().items() if i % 4 == 0)
    assert tenant_spend[("t-0", "month")] == pytest.approx(float(month), rel=1e-12)
    assert evaluation.seconds < 10, f"one evaluation of {USERS} users took {evaluation.seconds:.2f}s"


@dataclass
class Stack:
    prometheus: Prometheus
    alertmanager: Alertmanager
    webhook: Webhook
    metrics_url: str


def fast_alertmanager_config(hook: Webhook) -> dict[str, Any]:
    """alertmanager/alertmanager.yml as it is, but with the webhooks pointed at `hook` and 1 s group
    timings (its real ones are 10 s to 1 h)."""
    config: dict[str, Any] = yaml.safe_load((ALERTMANAGER_DIR / "alertmanager.yml").read_text())

    def fast(route: dict[str, Any]) -> None:
        route.update(group_wait="1s", group_interval="1s")
        for child in route.get("routes", []):
            fast(child)

    fast(config["route"])
    for receiver in config["receivers"]:
        for webhook in receiver.get("webhook_configs", []):
            webhook["url"] = webhook["url"].replace("http://127.0.0.1:5001", hook.url)
    return config


@pytest.fixture(scope="module")
def stack(users: Store, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("alerting")
    evaluator = BudgetEvaluator(users, parse_budgets(CONFIG), now=lambda: NOW)
    with (
        webhook_receiver() as hook,
        running_alertmanager(fast_alertmanager_config(hook), workdir / "alertmanager") as am,
        evaluator.serving(("127.0.0.1", 0), interval=60) as metrics_url,
    ):
        target = metrics_url.removeprefix("http://").removesuffix("/metrics")
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(PROMETHEUS_DIR / "rules" / "*.yml")],
            "alerting": {
                "alertmanagers": [{"static_configs": [{"targets": [am.url.removeprefix("http://")]}]}]
            },
            "scrape_configs": [{"job_name": n.JOB_BUDGETS, "static_configs": [{"targets": [target]}]}],
        }
        with running_prometheus(config, workdir / "prometheus") as prometheus:
            yield Stack(prometheus, am, hook, metrics_url)


def firing(prometheus: Prometheus, alertname: str) -> set[tuple[str, str, str]]:
    result = prometheus.query(f'ALERTS{{alertname="{alertname}", alertstate="firing"}}')
    return {(r["metric"]["tenant"], r["metric"]["user"], r["metric"]["window"]) for r in result}


def test_prometheus_fires_for_exactly_the_users_over_budget(stack: Stack) -> None:
    want = expected()
    exceeded = {key for key, (spent, limit) in want.items() if spent >= limit}
    warned = want.keys() - exceeded
    got = wait_for(
        "SpendScopeUserBudgetExceeded to fire",
        lambda: (alerts := firing(stack.prometheus, "SpendScopeUserBudgetExceeded")) == exceeded and alerts,
        30,
        stack.prometheus.log,
    )
    assert len({(t, u) for t, u, _ in got}) == 50
    # the warning rule may be evaluated a moment later on a loaded machine: wait for it too
    wait_for(
        "SpendScopeUserBudgetWarning to fire",
        lambda: firing(stack.prometheus, "SpendScopeUserBudgetWarning") == warned or None,
        30,
        stack.prometheus.log,
    )
    samples = stack.prometheus.query(f'scrape_samples_scraped{{job="{n.JOB_BUDGETS}"}}')
    assert int(samples[0]["value"][1]) < 2 * len(want) + 20  # bounded: 100k users, ~190 samples


def test_alerts_reach_the_webhook_and_a_collector_outage_holds_them_back(stack: Stack) -> None:
    want = expected()
    over_users = {(t, u) for (t, u, w), (spent, limit) in want.items() if spent >= limit}

    def delivered() -> set[tuple[str, str]]:
        return {
            (a["labels"]["tenant"], a["labels"]["user"])
            for a in stack.webhook.alerts("/alerts/finops")
            if a["labels"]["alertname"] == "SpendScopeUserBudgetExceeded" and a["status"] == "firing"
        }

    wait_for(
        "the 50 users' alerts at the finops webhook",
        lambda: delivered() == over_users,
        30,
        stack.alertmanager.log,
    )
    alert = next(
        a
        for a in stack.webhook.alerts("/alerts/finops")
        if a["labels"]["alertname"] == "SpendScopeUserBudgetExceeded"
    )
    assert alert["annotations"]["runbook_url"].endswith("runbook.md#spendscopeuserbudgetexceeded")
    assert {"severity": "warning", "component": "cost", "job": n.JOB_BUDGETS}.items() <= alert[
        "labels"
    ].items()
    assert not stack.webhook.alerts("/alerts/pager")  # nothing critical

    # The collector goes down: the cost alerts it makes stale are inhibited, its own alert is not.
    post_json(
        f"{stack.alertmanager.url}/api/v2/alerts",
        [
            {
                "labels": {
                    "alertname": "SpendScopeCollectorDown",
                    "severity": "critical",
                    "component": "pipeline",
                    "job": n.JOB_COLLECTOR,
                    "instance": "127.0.0.1:4318",
                },
                "annotations": {"summary": "SpendScope collector 127.0.0.1:4318 is down"},
            }
        ],
    )

    def inhibited() -> bool:
        budget = stack.alertmanager.alerts(alertname="SpendScopeUserBudgetExceeded")
        return len(budget) == len([k for k, (s, lim) in want.items() if s >= lim]) and all(
            a["status"]["state"] == "suppressed" and a["status"]["inhibitedBy"] for a in budget
        )

    wait_for("the budget alerts to be inhibited", inhibited, 15, stack.alertmanager.log)
    [down] = stack.alertmanager.alerts(alertname="SpendScopeCollectorDown")
    assert down["status"]["state"] == "active"
    wait_for(
        "the collector-down page", lambda: stack.webhook.alerts("/alerts/pager"), 15, stack.alertmanager.log
    )
