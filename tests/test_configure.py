"""configure(): explicit argument > environment > default; bad values fail clearly before anything starts."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import openai
import pytest
from opentelemetry.sdk.trace import TracerProvider

import spendscope
from spendscope import ConfigurationError, configure, uninstrument_openai
from spendscope.demo.fake_openai import FakeOpenAI
from spendscope.pricing import PriceFileError
from spendscope.settings.app import AppSettings, InstrumentationSettings
from tests.conftest import API_KEY


def test_precedence_explicit_then_environment_then_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPENDSCOPE_USER_LABEL_LIMIT", raising=False)
    assert InstrumentationSettings.resolve().user_label_limit == 1000
    monkeypatch.setenv("SPENDSCOPE_USER_LABEL_LIMIT", "50")
    assert InstrumentationSettings.resolve().user_label_limit == 50
    assert InstrumentationSettings.resolve(user_label_limit=7).user_label_limit == 7
    assert AppSettings.resolve(traces_exporter="Console, none").traces_exporter == ("console", "none")
    assert AppSettings.resolve(metrics_exporter=["prometheus"]).metrics_exporter == ("prometheus",)


@pytest.mark.parametrize(
    ("env", "value", "message"),
    [
        (
            "OTEL_METRIC_EXPORT_INTERVAL",
            "soon",
            "metric_export_interval_ms (environment variable OTEL_METRIC_EXPORT_INTERVAL='soon'): must be a whole number",
        ),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "localhost:4318", "must be an http(s) URL"),
        (
            "OTEL_METRICS_EXPORTER",
            "prometheus,statsd",
            "must be a comma-separated list of 'otlp', 'prometheus', 'console' or 'none'",
        ),
        ("OTEL_EXPORTER_PROMETHEUS_PORT", "70000", "must be between 0 and 65535"),
        ("SPENDSCOPE_USER_LABEL_LIMIT", "-1", "must be at least 0"),
        ("SPENDSCOPE_PRICE_FILE", "/nonexistent/prices.toml", "no such file"),
        ("SPENDSCOPE_INJECT_STREAM_USAGE", "maybe", "must be true or false"),
    ],
)
def test_bad_environment_value_names_the_setting(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, message: str
) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(ConfigurationError) as info:
        configure(set_global=False)
    assert env in str(info.value) and message in str(info.value)


def test_a_bad_price_file_is_a_configuration_error(tmp_path: Path) -> None:
    prices = tmp_path / "prices.toml"
    prices.write_text('[[models]]\nmatch = "x"\n')
    with pytest.raises(ConfigurationError) as info:
        configure(price_file=prices, set_global=False)
    assert isinstance(info.value, PriceFileError)
    assert str(info.value) == f"price file {prices}: rule 'x' sets no price"


def test_bad_explicit_value_names_the_argument() -> None:
    with pytest.raises(
        ConfigurationError, match=r"argument prometheus_port='-3'\): must be between 0 and 65535"
    ):
        configure(prometheus_port=-3, set_global=False)


def test_prometheus_endpoint_serves_spendscope_metrics_with_documented_names(tmp_path: Path) -> None:
    """The app serves /metrics itself; names are exactly those the README and rules use."""
    config = configure(
        service_name="hr-app",
        traces_exporter="none",
        metrics_exporter="prometheus",
        prometheus_host="127.0.0.1",
        prometheus_port=0,
        set_global=False,
    )
    try:
        assert isinstance(config.tracer_provider, TracerProvider)
        assert config.prometheus_address is not None
        with FakeOpenAI() as server:
            client = openai.OpenAI(api_key=API_KEY, base_url=server.base_url, max_retries=0)
            with spendscope.attributes(user="u-1", endpoint="cv-parsing", tenant="acme"):
                client.chat.completions.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
                )
            client.close()
        host, port = config.prometheus_address
        text = urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=5).read().decode()
    finally:
        uninstrument_openai()
        config.shutdown()
    lines = [line for line in text.splitlines() if not line.startswith("#")]

    def series(name: str) -> list[str]:
        return [line for line in lines if line.startswith(name + "{")]

    cost = series("spendscope_cost_usd_total")
    assert len(cost) == 1
    for label in (
        'model="gpt-4o-mini-2024-07-18"',
        'operation="chat"',
        'endpoint="cv-parsing"',
        'tenant="acme"',
        'user="u-1"',
        'service="hr-app"',
    ):
        assert label in cost[0]
    assert float(cost[0].rsplit(" ", 1)[1]) > 0
    assert {s.split('type="')[1].split('"')[0] for s in series("spendscope_tokens_total")} >= {
        "input",
        "output",
    }
    assert series("gen_ai_client_token_usage_bucket")
    assert series("gen_ai_client_operation_duration_seconds_bucket")
    assert 'le="81.92"' in "".join(series("gen_ai_client_operation_duration_seconds_bucket"))
    assert 'le="67108864"' in "".join(series("gen_ai_client_token_usage_bucket"))
