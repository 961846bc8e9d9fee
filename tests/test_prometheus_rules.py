"""prometheus/ and alertmanager/: promtool and amtool accept them, every alert is unit-tested firing and
not firing, follows the style (severity, summary, description, runbook), and every metric a rule reads
is one SpendScope emits (names from spendscope/names.py and the collector's health metrics)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from spendscope import names as n
from tests.monitoring import ALERTMANAGER_DIR, PROMETHEUS_DIR, known_metrics, run_tool

RULE_FILES = sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))
TEST_FILES = sorted((PROMETHEUS_DIR / "tests").glob("*.yml"))
RUNBOOK = PROMETHEUS_DIR / "runbook.md"
RUNBOOK_URL = "https://github.com/spendscope/spendscope/blob/main/prometheus/runbook.md#"


def _rules() -> list[dict[str, Any]]:
    return [
        rule
        for f in RULE_FILES
        for group in yaml.safe_load(f.read_text())["groups"]
        for rule in group["rules"]
    ]


ALERTS = [rule for rule in _rules() if "alert" in rule]
RECORDS = [rule for rule in _rules() if "record" in rule]


def test_promtool_checks_config_and_rules() -> None:
    out = run_tool("promtool", "check", "config", str(PROMETHEUS_DIR / "prometheus.yml")).stdout
    assert f"{len(RULE_FILES)} rule files found" in out
    run_tool("promtool", "check", "rules", *map(str, RULE_FILES))


def test_promtool_unit_tests_pass() -> None:
    out = run_tool("promtool", "test", "rules", *(f.name for f in TEST_FILES), cwd=PROMETHEUS_DIR / "tests")
    assert out.stdout.count("SUCCESS") == len(TEST_FILES), out.stdout


def test_every_alert_has_a_firing_and_a_quiet_unit_test() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for f in TEST_FILES:
        for case in yaml.safe_load(f.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in ALERTS}
    assert names - firing == set(), "alerts never tested firing"
    assert names - quiet == set(), "alerts never tested quiet"
    assert len(names) == len(ALERTS), "alert names must be unique"


@pytest.mark.parametrize("rule", ALERTS, ids=lambda r: r["alert"])
def test_alert_style(rule: dict[str, Any]) -> None:
    assert re.fullmatch(r"SpendScope[A-Z][A-Za-z]+", rule["alert"])
    assert rule["labels"]["severity"] in ("critical", "warning", "info")
    assert rule["labels"]["component"] in ("cost", "pipeline", "reconciliation")
    assert {"summary", "description", "runbook_url"} <= set(rule["annotations"])
    assert rule["annotations"]["runbook_url"] == RUNBOOK_URL + rule["alert"].lower()


def test_runbook_has_a_section_per_alert() -> None:
    sections = set(re.findall(r"^### (\S+)$", RUNBOOK.read_text(), re.MULTILINE))
    assert sections == {rule["alert"] for rule in ALERTS}


def test_recording_rules_are_named_level_metric_operations() -> None:
    for rule in RECORDS:
        assert re.fullmatch(r"[a-z_]+:[a-z_]+:[a-z0-9_]+", rule["record"]), rule["record"]


def test_rules_read_only_metrics_spendscope_emits() -> None:
    known = known_metrics()
    recorded = {rule["record"] for rule in RECORDS}
    checked = 0
    for rule in _rules():
        name = rule.get("alert") or rule.get("record")
        # drop label matchers, strings and ranges; what is left that looks like a series name is one
        expr = re.sub(r"\{[^}]*\}|\"[^\"]*\"|\[[^\]]*\]", " ", rule["expr"])
        for token in re.findall(r"(?<![\w.])[a-zA-Z_:][\w:]*", expr):
            if ":" in token:
                assert token in recorded, f"{name}: {token} is not a recording rule"
            elif token.startswith(("spendscope_", "gen_ai_")) or token == "up":
                assert token in known, f"{name}: unknown metric {token}"
            else:
                continue
            checked += 1
    assert checked > 50


def test_jobs_are_the_ones_the_rules_select() -> None:
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    assert jobs == {n.JOB_COLLECTOR, n.JOB_APPS, n.JOB_BUDGETS, n.JOB_RECONCILER}
    selected = set()
    for rule in ALERTS:
        selected |= set(re.findall(r'job="([^"]+)"', rule["expr"]))
    assert selected <= jobs and selected


def test_amtool_checks_alertmanager_config() -> None:
    out = run_tool("amtool", "check-config", str(ALERTMANAGER_DIR / "alertmanager.yml")).stdout
    assert "SUCCESS" in out


@pytest.mark.parametrize(
    ("labels", "receivers"),
    [
        (
            {"alertname": "SpendScopeCollectorDown", "severity": "critical", "component": "pipeline"},
            "oncall-pager",
        ),
        (
            {
                "alertname": "SpendScopeTenantBudgetBurnFast",
                "severity": "critical",
                "component": "cost",
                "tenant": "acme",
            },
            "oncall-pager,acme-finance",
        ),
        (
            {
                "alertname": "SpendScopeUserBudgetExceeded",
                "severity": "warning",
                "component": "cost",
                "tenant": "t-1",
                "user": "u-1",
                "window": "day",
            },
            "finops",
        ),
        (
            {
                "alertname": "SpendScopeUserBudgetExceeded",
                "severity": "warning",
                "component": "cost",
                "tenant": "acme",
                "user": "u-1",
                "window": "day",
            },
            "acme-finance,finops",
        ),
        (
            {
                "alertname": "SpendScopeUserBudgetWarning",
                "severity": "info",
                "component": "cost",
                "tenant": "t-1",
            },
            "finops",
        ),
        (
            {"alertname": "SpendScopeCollectorSpoolGrowing", "severity": "warning", "component": "pipeline"},
            "sre",
        ),
        (
            {
                "alertname": "SpendScopeReconciliationStale",
                "severity": "warning",
                "component": "reconciliation",
            },
            "sre",
        ),
    ],
)
def test_alertmanager_routes(labels: dict[str, str], receivers: str) -> None:
    config = str(ALERTMANAGER_DIR / "alertmanager.yml")
    args = [f"{k}={v}" for k, v in labels.items()]
    out = run_tool("amtool", "config", "routes", "test", f"--config.file={config}", *args).stdout
    assert out.strip() == receivers


def test_budgets_example_is_valid() -> None:
    from spendscope.budgets import load_budgets

    config = load_budgets(PROMETHEUS_DIR / "budgets.yaml")
    assert config.tenant_totals() == {"acme": (2000.0, 40000.0), "globex": (None, 10000.0)}


def test_rule_files_are_the_ones_prometheus_loads() -> None:
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    loaded = {p for pattern in config["rule_files"] for p in PROMETHEUS_DIR.glob(pattern)}
    assert loaded == set(RULE_FILES)
    assert all(Path(f).suffix == ".yml" for f in TEST_FILES)
