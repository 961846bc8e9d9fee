"""The settings models (spendscope/settings/): explicit argument > environment > default, the field
types every component shares, one error format, and the CLI options and the reference made from them."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter
from typer.main import get_command
from typer.testing import CliRunner

from spendscope.cli import app
from spendscope.settings import ConfigurationError
from spendscope.settings._base import Settings
from spendscope.settings._types import Listen, Seconds
from spendscope.settings.app import AppSettings
from spendscope.settings.budgets import BudgetSettings
from spendscope.settings.collector import CollectorConfig
from spendscope.settings.reconcile import ReconcileSettings
from spendscope.settings.reference import MODELS, table
from spendscope.settings.store import StoreSettings

ROOT = Path(__file__).resolve().parents[1]


def test_the_reference_is_made_from_the_models() -> None:
    assert (ROOT / "docs" / "settings.md").read_text() == table(), (
        "run: python -m spendscope.settings.reference > docs/settings.md"
    )


def test_a_variable_is_one_setting_and_every_setting_says_what_it_is() -> None:
    seen: dict[str, tuple[str, Any]] = {}
    for _, model, _ in MODELS:
        for name, field in model.model_fields.items():
            env = model.env(name)
            assert field.description, f"{model.__name__}.{name}"
            assert seen.setdefault(env, (name, field.annotation)) == (name, field.annotation), env


BAD = [
    (AppSettings, "prometheus_port", "70000", "must be between 0 and 65535"),
    (AppSettings, "inject_stream_usage", "maybe", "must be true or false"),
    (StoreSettings, "store_raw_retention_days", "-1", "must be at least 0"),
    (CollectorConfig, "listen", "4318", "must be HOST:PORT, such as 127.0.0.1:4318"),
    (CollectorConfig, "spool", " ", "must not be empty"),
    (CollectorConfig, "queue_spans", "lots", "must be a whole number"),
    (ReconcileSettings, "usage_settle", "soon", "must be a duration such as 0.5, 90s, 30m, 1h or 1d"),
    (ReconcileSettings, "min_coverage", "most", "must be a ratio such as 0.95 or a percentage such as 95%"),
    (ReconcileSettings, "bucket_width", "2h", "must be '1h' or '1d'"),
    (BudgetSettings, "interval", "2h", "must be between 1 and 3600"),
]


@pytest.mark.parametrize(("model", "name", "bad", "reason"), BAD)
def test_one_error_format_wherever_the_value_comes_from(
    monkeypatch: pytest.MonkeyPatch, model: type[Settings], name: str, bad: str, reason: str
) -> None:
    env = model.env(name)
    monkeypatch.setenv(env, bad)
    with pytest.raises(ConfigurationError) as info:
        model.resolve()
    assert (
        str(info.value) == f"{model.component} setting {name} (environment variable {env}={bad!r}): {reason}"
    )
    monkeypatch.delenv(env)
    with pytest.raises(ConfigurationError) as info:
        model.resolve(**{name: bad})
    assert str(info.value) == f"{model.component} setting {name} (argument {name}={bad!r}): {reason}"
    flag = name.replace("_", "-")
    with pytest.raises(ConfigurationError) as info:
        model.resolve(given="option", **{name: bad})
    assert str(info.value) == f"{model.component} setting {name} (option --{flag}={bad!r}): {reason}"


def test_argument_then_environment_then_default(monkeypatch: pytest.MonkeyPatch) -> None:
    assert BudgetSettings.resolve().interval == 60.0
    monkeypatch.setenv("SPENDSCOPE_BUDGETS_INTERVAL", "5m")
    assert BudgetSettings.resolve().interval == 300.0
    assert BudgetSettings.resolve(interval=None).interval == 300.0  # None: not given
    assert BudgetSettings.resolve(interval="90s").interval == 90.0
    monkeypatch.setenv("SPENDSCOPE_BUDGETS_INTERVAL", "")  # empty: unset
    assert BudgetSettings.resolve().interval == 60.0
    with pytest.raises(TypeError, match="unknown budgets settings: intervl"):
        BudgetSettings.resolve(intervl="5m")


@pytest.mark.parametrize(
    ("given", "seconds"),
    [
        ("0.5", 0.5),
        ("90", 90.0),
        ("90s", 90.0),
        ("1.5m", 90.0),
        ("2H", 7200.0),
        ("1d", 86400.0),
        (30, 30.0),
        (timedelta(minutes=2), 120.0),
    ],
)
def test_durations(given: object, seconds: float) -> None:
    assert TypeAdapter(Seconds).validate_python(given) == seconds
    assert ReconcileSettings.resolve(usage_settle=given).usage_settle == timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("given", "address"),
    [
        ("0.0.0.0:9999", ("0.0.0.0", 9999)),
        (":9465", ("127.0.0.1", 9465)),
        ("[::1]:0", ("::1", 0)),
        (("localhost", 80), ("localhost", 80)),
    ],
)
def test_listen(given: object, address: tuple[str, int]) -> None:
    assert TypeAdapter(Listen).validate_python(given) == address


def test_whole_numbers_booleans_and_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    assert CollectorConfig.resolve(queue_spans="200_000").queue_spans == 200_000
    for text, value in (("on", True), ("yes", True), ("1", True), ("off", False), ("false", False)):
        monkeypatch.setenv("SPENDSCOPE_STORE_TRUST_CLIENT_COSTS", text)
        assert StoreSettings.resolve().store_trust_client_costs is value
    assert AppSettings.resolve(metrics_exporter=" OTLP ,prometheus").metrics_exporter == (
        "otlp",
        "prometheus",
    )


def test_the_cli_options_are_made_from_the_fields() -> None:
    commands = get_command(app).commands  # type: ignore[attr-defined]
    collector = {p.name: p for p in commands["collector"].params}
    assert collector["queue_spans"].help == (
        "spans held in memory before answering 503 (env SPENDSCOPE_COLLECTOR_QUEUE_SPANS; default 150000)"
    )
    assert (collector["listen"].metavar, collector["queue_spans"].metavar) == ("HOST:PORT", "INTEGER")
    assert collector["listen"].default is None  # the model decides: option > environment > default
    reconcile = {p.name: p for p in commands["reconcile"].params}
    assert reconcile["bucket_width"].metavar == "1h|1d"
    assert reconcile["usage_settle"].help.endswith("(env SPENDSCOPE_RECONCILE_USAGE_SETTLE; default 1h)")


def test_the_cli_says_a_bad_variable_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPENDSCOPE_BUDGETS_LISTEN", "nowhere")
    done = CliRunner().invoke(app, ["budgets", "--once", "--store", "/nonexistent/store"])
    assert done.exit_code == 1
    assert done.stderr == (
        "error: budgets setting listen (environment variable SPENDSCOPE_BUDGETS_LISTEN='nowhere'): "
        "must be HOST:PORT, such as 127.0.0.1:4318\n"
    )
