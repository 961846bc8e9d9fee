"""spendscope budgets: budgets.yaml validation, limits joined in SQL against the real rollups,
what is exported, failures, and the CLI."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner

from spendscope import names as n
from spendscope.budgets import (
    BudgetConfig,
    BudgetConfigError,
    BudgetEvaluator,
    BudgetSettings,
    load_budgets,
    parse_budgets,
)
from spendscope.cli import app
from spendscope.settings import ConfigurationError
from spendscope.store import Store
from tests.store_fixtures import llm_record, priced_at

NOW = datetime(2026, 3, 18, 12, 0, tzinfo=UTC)

CONFIG: dict[str, Any] = {
    "warning_percent": 80,
    "per_user": {"daily_usd": 5, "monthly_usd": 50},
    "tenants": {
        "acme": {"per_user": {"daily_usd": 20}, "total": {"daily_usd": 50, "monthly_usd": 100}},
    },
    "users": {"u-vip": {"daily_usd": 100}, "u-free": {"daily_usd": None}},
}


def series(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Samples of metric `name` in an exposition: sorted labels -> value."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                out[tuple(sorted(sample.labels.items()))] = sample.value
    return out


def user_series(text: str, name: str) -> dict[tuple[str, str, str], float]:
    return {
        (labels["tenant"], labels["user"], labels["window"]): value
        for labels, value in ((dict(k), v) for k, v in series(text, name).items())
    }


def test_exported_names() -> None:
    import spendscope.budgets

    assert sorted(spendscope.budgets.__all__) == [
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


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"per_user": {"daily_usd": -5}},
            "b.yaml: per_user.daily_usd: Input should be greater than 0 (got -5)",
        ),
        (
            {"per_user": {"daily_usd": "inf"}},
            "b.yaml: per_user.daily_usd: Input should be a finite number (got 'inf')",
        ),
        (
            {"users": {"u-1": {"dayly_usd": 3}}},
            "b.yaml: users.u-1.dayly_usd: Extra inputs are not permitted (got 3)",
        ),
        (
            {"warning_percent": 120},
            "b.yaml: warning_percent: Input should be less than or equal to 100 (got 120)",
        ),
        (
            {"tenants": {"acme": {"per_user": {"monthly_usd": "lots"}}}},
            "b.yaml: tenants.acme.per_user.monthly_usd: Input should be a valid decimal (got 'lots')",
        ),
        (
            {"max_listed_users": 0},
            "b.yaml: max_listed_users: Input should be greater than or equal to 1 (got 0)",
        ),
        ([1, 2], "b.yaml: must be a mapping of settings, not list"),
    ],
)
def test_bad_budgets_are_named_precisely(data: Any, message: str) -> None:
    with pytest.raises(BudgetConfigError) as caught:
        parse_budgets(data, "b.yaml")
    assert str(caught.value) == message


def test_budget_file_errors(tmp_path: Path) -> None:
    with pytest.raises(BudgetConfigError, match=r"cannot read the budgets file .*missing.yaml"):
        load_budgets(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("per_user: [unclosed\n")
    with pytest.raises(BudgetConfigError, match=r"bad.yaml: not valid YAML"):
        load_budgets(bad)
    numeric = tmp_path / "numeric.yaml"
    numeric.write_text("users:\n  42: {daily_usd: 1.5}\n")
    assert load_budgets(numeric).users["42"].daily_usd is not None  # numeric ids are ids


def test_limits_left_out_are_inherited_and_null_is_no_limit() -> None:
    params = parse_budgets(CONFIG).query_params(NOW.date())
    inf = float("inf")
    assert params == {
        "today": NOW.date(),
        "warning_percent": 80.0,
        "default_day": 5.0,
        "default_month": 50.0,
        "tenants": ["acme"],
        "tenant_day": [20.0],
        "tenant_month": [None],  # inherited
        "users": ["u-free", "u-vip"],
        "user_day": [inf, 100.0],  # null: no limit
        "user_month": [None, None],
        "max_users": 10_000,
    }
    assert BudgetConfig().query_params(NOW.date())["default_day"] == inf  # no budgets: nobody listed


def test_settings() -> None:
    settings = BudgetSettings.resolve(config="b.yaml", listen="127.0.0.1:0", interval="5m")
    assert (settings.listen, settings.interval) == (("127.0.0.1", 0), 300.0)
    assert settings.config == Path("b.yaml").absolute()
    with pytest.raises(
        ConfigurationError,
        match=r"^budgets setting interval \(argument interval='0s'\): must be between 1 and 3600$",
    ):
        BudgetSettings.resolve(interval="0s")
    with pytest.raises(
        ConfigurationError, match=r"^budgets setting listen \(option --listen='nowhere'\): must be HOST:PORT"
    ):
        BudgetSettings.resolve(given="option", listen="nowhere")


def at(day: int, hour: int = 10, month: int = 3) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=UTC)


@pytest.fixture
def spend(store: Store) -> Store:
    store.insert_spans(
        [
            llm_record(at(18), tenant="beta", user="u-1", **priced_at("4.0")),  # exactly 80% of 5: listed
            llm_record(at(18), tenant="beta", user="u-2", **priced_at("5.0")),  # exactly the limit: exceeded
            llm_record(at(18), tenant="beta", user="u-3", **priced_at("3.99")),  # under 80%
            llm_record(at(18), tenant="acme", user="u-1", **priced_at("6.0")),  # acme's users: 20 a day
            llm_record(
                at(18), tenant="acme", user="u-vip", **priced_at("90")
            ),  # 90% of 100; month: 180% of 50
            llm_record(
                at(18), tenant="beta", user="u-free", **priced_at("1000")
            ),  # no daily limit; month over
            llm_record(at(28, month=2), tenant="beta", user="u-old", **priced_at("1000")),  # last month
            llm_record(at(18), tenant="beta", user="u-old", **priced_at("0.1")),
            llm_record(
                at(2), tenant="beta", user="u-month", **priced_at("45")
            ),  # month warning, nothing today
            llm_record(
                at(18), tenant="gamma", user="u-2", **priced_at("1.0")
            ),  # another tenant: its own budget
            llm_record(at(18), tenant="beta", user="u-3", model="acme-llm-1", cost=None),  # unpriced: a user
        ],
    )
    return store


EXPECTED_SPEND = {
    ("beta", "u-1", "day"): 4.0,
    ("beta", "u-2", "day"): 5.0,
    ("acme", "u-vip", "day"): 90.0,
    ("acme", "u-vip", "month"): 90.0,
    ("beta", "u-free", "month"): 1000.0,
    ("beta", "u-month", "month"): 45.0,
}
EXPECTED_LIMIT = {
    ("beta", "u-1", "day"): 5.0,
    ("beta", "u-2", "day"): 5.0,
    ("acme", "u-vip", "day"): 100.0,
    ("acme", "u-vip", "month"): 50.0,
    ("beta", "u-free", "month"): 50.0,
    ("beta", "u-month", "month"): 50.0,
}


def test_only_users_at_or_above_warning_are_exported(spend: Store) -> None:
    evaluator = BudgetEvaluator(spend, parse_budgets(CONFIG), now=lambda: NOW)
    evaluation = evaluator.evaluate()
    assert (evaluation.users_evaluated, evaluation.users_over_warning, evaluation.users_exported) == (9, 5, 5)
    text = evaluator.exposition()
    assert user_series(text, n.PROM_BUDGET_SPEND) == EXPECTED_SPEND
    assert user_series(text, n.PROM_BUDGET_LIMIT) == EXPECTED_LIMIT
    assert series(text, n.PROM_BUDGET_TENANT_SPEND) == {
        (("tenant", "acme"), ("window", "day")): 96.0,
        (("tenant", "acme"), ("window", "month")): 96.0,
    }
    assert series(text, n.PROM_BUDGET_TENANT_LIMIT) == {
        (("tenant", "acme"), ("window", "day")): 50.0,
        (("tenant", "acme"), ("window", "month")): 100.0,
    }
    health = {name: series(text, name)[()] for name in (
        n.PROM_BUDGET_USERS_EVALUATED, n.PROM_BUDGET_USERS_OVER_WARNING, n.PROM_BUDGET_USERS_EXPORTED,
        n.PROM_BUDGET_LAST_EVALUATION,
    )}  # fmt: skip
    assert health == {
        n.PROM_BUDGET_USERS_EVALUATED: 9,
        n.PROM_BUDGET_USERS_OVER_WARNING: 5,
        n.PROM_BUDGET_USERS_EXPORTED: 5,
        n.PROM_BUDGET_LAST_EVALUATION: NOW.timestamp(),
    }
    assert series(text, n.PROM_BUDGET_EVALUATIONS + "_total") == {
        (("status", "ok"),): 1.0,
        (("status", "failed"),): 0.0,
    }


def test_unpriced_usage_is_counted_as_tokens_per_tenant_user_and_window(spend: Store) -> None:
    """An unpriced call's cost is unknown, not $0: the spend series leave it out, and its tokens are
    exported per tenant and per user (listed after the users near their limits), for each window."""
    spend.insert_spans(
        [
            llm_record(at(2), tenant="beta", user="u-3", model="acme-llm-1", cost=None, input_tokens=1000),
            llm_record(at(18), tenant="gamma", user="u-9", model="acme-llm-1", cost=None, output_tokens=7),
        ]
    )
    evaluator = BudgetEvaluator(spend, parse_budgets(CONFIG), now=lambda: NOW)
    evaluation = evaluator.evaluate()
    assert (evaluation.users_over_warning, evaluation.users_exported) == (5, 5)  # as before
    text = evaluator.exposition()
    assert user_series(text, n.PROM_BUDGET_SPEND) == EXPECTED_SPEND  # unchanged: priced calls only
    # u-3: 120 tokens today (100 in, 20 out), 1,140 this month; u-9: 107 today
    assert user_series(text, n.PROM_BUDGET_UNPRICED_TOKENS) == {
        ("beta", "u-3", "day"): 120.0,
        ("beta", "u-3", "month"): 1140.0,
        ("gamma", "u-9", "day"): 107.0,
        ("gamma", "u-9", "month"): 107.0,
    }
    assert series(text, n.PROM_BUDGET_TENANT_UNPRICED_TOKENS) == {
        (("tenant", "beta"), ("window", "day")): 120.0,
        (("tenant", "beta"), ("window", "month")): 1140.0,
        (("tenant", "gamma"), ("window", "day")): 107.0,
        (("tenant", "gamma"), ("window", "month")): 107.0,
    }
    # the users near or over their limits come first: with room for two, the unpriced ones drop out,
    # and the tenants' tokens stay
    narrow = BudgetEvaluator(spend, parse_budgets({**CONFIG, "max_listed_users": 2}), now=lambda: NOW)
    narrow.evaluate()
    assert user_series(narrow.exposition(), n.PROM_BUDGET_UNPRICED_TOKENS) == {}
    assert len(series(narrow.exposition(), n.PROM_BUDGET_TENANT_UNPRICED_TOKENS)) == 4
    # a new month: nothing unpriced, no series
    later = BudgetEvaluator(spend, parse_budgets(CONFIG), now=lambda: datetime(2026, 4, 2, tzinfo=UTC))
    later.evaluate()
    assert series(later.exposition(), n.PROM_BUDGET_TENANT_UNPRICED_TOKENS) == {}


def test_max_listed_users_keeps_the_furthest_over(spend: Store) -> None:
    evaluator = BudgetEvaluator(spend, parse_budgets({**CONFIG, "max_listed_users": 2}), now=lambda: NOW)
    evaluation = evaluator.evaluate()
    assert (evaluation.users_over_warning, evaluation.users_exported) == (5, 2)
    assert set(user_series(evaluator.exposition(), n.PROM_BUDGET_SPEND)) == {
        ("beta", "u-free", "month"),  # 20x its limit
        ("acme", "u-vip", "day"),  # 1.8x (month) ...
        ("acme", "u-vip", "month"),  # ... both of its windows
    }


def test_a_new_day_drops_the_day_series(spend: Store) -> None:
    clock = [NOW]
    evaluator = BudgetEvaluator(spend, parse_budgets(CONFIG), now=lambda: clock[0])
    evaluator.evaluate()
    clock[0] = NOW.replace(day=19)
    evaluator.evaluate()
    assert set(user_series(evaluator.exposition(), n.PROM_BUDGET_SPEND)) == {
        ("acme", "u-vip", "month"),
        ("beta", "u-free", "month"),
        ("beta", "u-month", "month"),
    }
    clock[0] = datetime(2026, 4, 1, 0, 0, 1, tzinfo=UTC)  # a new month: nobody
    evaluation = evaluator.evaluate()
    assert (evaluation.users_evaluated, evaluation.users) == (0, ())


def test_a_failed_evaluation_keeps_the_last_and_counts(spend: Store) -> None:
    from spendscope.store.errors import StoreError

    evaluator = BudgetEvaluator(spend, parse_budgets(CONFIG), now=lambda: NOW)
    evaluator.evaluate()
    spend.command("DROP TABLE llm_usage_rollup")
    with pytest.raises(StoreError, match="llm_usage_rollup"):
        evaluator.evaluate()
    text = evaluator.exposition()
    assert user_series(text, n.PROM_BUDGET_SPEND) == EXPECTED_SPEND
    assert series(text, n.PROM_BUDGET_LAST_EVALUATION)[()] == NOW.timestamp()
    assert series(text, n.PROM_BUDGET_EVALUATIONS + "_total")[(("status", "failed"),)] == 1.0


def test_cli_once_prints_the_metrics(store: Store, store_dsn: str, tmp_path: Path) -> None:
    config = tmp_path / "budgets.yaml"
    config.write_text("per_user: {daily_usd: 1, monthly_usd: 2}\n")
    for _ in range(2):  # once more if the UTC day turned between the insert and the evaluation
        now = datetime.now(UTC)
        store.insert_spans([llm_record(now, tenant="t", user=f"u-{now:%H%M%S%f}", **priced_at("3"))])
        done = CliRunner().invoke(app, ["budgets", "--once", "--store", store_dsn, "--config", str(config)])
        if datetime.now(UTC).date() == now.date():
            break
    assert done.exit_code == 0, done.output
    exported = user_series(done.stdout, n.PROM_BUDGET_SPEND)
    assert exported[("t", f"u-{now:%H%M%S%f}", "day")] == 3.0
    assert exported[("t", f"u-{now:%H%M%S%f}", "month")] == 3.0


def test_cli_bad_config_is_one_line(store_dsn: str, tmp_path: Path) -> None:
    config = tmp_path / "budgets.yaml"
    config.write_text("per_user: {daily_usd: 0}\n")
    done = CliRunner().invoke(app, ["budgets", "--once", "--store", store_dsn, "--config", str(config)])
    assert done.exit_code == 1
    assert done.stderr == f"error: {config}: per_user.daily_usd: Input should be greater than 0 (got 0)\n"
    done = CliRunner().invoke(app, ["budgets", "--once", "--store", store_dsn, "--interval", "soon"])
    assert done.exit_code == 1
    assert done.stderr == (
        "error: budgets setting interval (option --interval='soon'): "
        "must be a duration such as 0.5, 90s, 30m, 1h or 1d\n"
    )


def test_cli_serves_metrics_until_sigterm(tmp_path: Path, store_dsn: str) -> None:
    """The real process: /metrics, SIGTERM."""
    import os
    import signal
    import subprocess
    import sys
    import urllib.request

    from tests.monitoring import free_port, wait_for

    dsn = store_dsn
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPENDSCOPE_BUDGETS_")}
    config = tmp_path / "budgets.yaml"
    config.write_text("per_user: {daily_usd: 5}\n")
    port = free_port()
    log = tmp_path / "budgets.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "spendscope", "budgets", "--store", dsn, "--config", str(config),
             "--listen", f"127.0.0.1:{port}", "--interval", "1s"],
            env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:

        def scrape() -> str | None:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
                text: str = response.read().decode()
            return (
                text if series(text, n.PROM_BUDGET_EVALUATIONS + "_total")[(("status", "ok"),)] >= 2 else None
            )

        text = wait_for("two evaluations served", scrape, 20, log)
        assert series(text, n.PROM_BUDGET_USERS_EVALUATED)[()] == 0
        assert series(text, n.PROM_BUDGET_LAST_EVALUATION)[()] > 0
        process.send_signal(signal.SIGTERM)
        assert process.wait(15) == 0, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    assert f"serving http://127.0.0.1:{port}/metrics" in log.read_text()
