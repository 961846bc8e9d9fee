"""`spendscope demo --collector URL [--every D]`: the demo workload sent to a collector that is already
running (docker compose's `demo` profile). The collector runs here in-process on the test's store; the
demo runs as a user runs it, in a subprocess, with the token the way compose passes it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from decimal import Decimal
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from spendscope.collector import Collector, CollectorConfig
from spendscope.store import Store
from tests.monitoring import wait_for

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "t0ken-for-the-demo"
CALLS_PER_ROUND = 55  # the workload's calls with seed 7 (tests/test_demo.py checks them one by one)


def demo(url: str, *args: str, headers: str | None) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "OTEL_EXPORTER_OTLP_HEADERS"}
    if headers is not None:
        env["OTEL_EXPORTER_OTLP_HEADERS"] = headers
    return subprocess.Popen(
        [sys.executable, "-m", "spendscope", "demo", "--collector", url, *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def stored(store: Store) -> tuple[int, Decimal]:
    calls, cost = store.query("SELECT count(), sum(ifNull(cost_usd, 0)) FROM llm_usage FINAL").rows[0]
    return int(calls), Decimal(str(cost))


def cost_series(url: str) -> dict[tuple[str, str], float]:
    """spendscope_cost_usd_total summed per (job, instance) as the collector exposes it to Prometheus."""
    request = urllib.request.Request(f"{url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        text = response.read().decode()
    totals: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "spendscope_cost_usd_total":
                key = (sample.labels["job"], sample.labels["instance"])
                totals[key] = totals.get(key, 0.0) + sample.value
    return totals


def test_demo_sends_rounds_to_a_running_collector_until_stopped(
    tmp_path: Path, store_dsn: str, store: Store
) -> None:
    config = CollectorConfig.resolve(
        listen="127.0.0.1:0", store=store_dsn, spool=str(tmp_path / "spool"), token=TOKEN
    )
    with Collector(config, store=store) as collector:
        # exactly the header compose sets: Authorization=Bearer ${SPENDSCOPE_COLLECTOR_TOKEN}
        process = demo(collector.url, "--every", "3s", headers=f"Authorization=Bearer {TOKEN}")
        try:
            wait_for("two rounds in ClickHouse", lambda: stored(store)[0] >= 2 * CALLS_PER_ROUND, 120)
        finally:
            process.send_signal(signal.SIGTERM)  # what `docker stop` sends
            out, err = process.communicate(timeout=60)
        assert process.returncode == 0, err
        rounds = [int(n) for n in re.findall(r"^round \d+: (\d+) calls \(2 failed\) sent to ", out, re.M)]
        assert len(rounds) >= 2 and rounds[0] == CALLS_PER_ROUND, out  # seed 7, then 8, 9, ...
        sent = sum(rounds)
        assert out.splitlines()[-1].startswith(f"{sent} calls sent to {collector.url}")
        wait_for("every call stored once", lambda: stored(store)[0] == sent, 30)
        time.sleep(0.5)  # a call more would show now
        calls, cost = stored(store)
        assert calls == sent
        series = cost_series(collector.url)
        # one process per service across rounds: its counters grow, so Prometheus sees the increase
        assert sorted(job for job, _ in series) == ["homework-helper", "hr-platform"]
        assert cost > 0 and sum(series.values()) == pytest.approx(float(cost), rel=1e-9)


def test_demo_refuses_a_collector_it_cannot_send_to(tmp_path: Path, store_dsn: str, store: Store) -> None:
    config = CollectorConfig.resolve(
        listen="127.0.0.1:0", store=store_dsn, spool=str(tmp_path / "spool"), token=TOKEN
    )
    with Collector(config, store=store) as collector:
        refused = demo(collector.url, headers=None)
        out, err = refused.communicate(timeout=60)
    assert refused.returncode == 1
    assert "answered 401 (OTEL_EXPORTER_OTLP_HEADERS=Authorization=Bearer%20<token>)" in err, err
    assert out == "" and stored(store)[0] == 0
    closed = demo("http://127.0.0.1:9", headers=None)
    _, err = closed.communicate(timeout=60)
    assert closed.returncode == 1 and err.startswith("error: no collector at http://127.0.0.1:9"), err


def test_a_bad_price_file_stops_the_demo_before_it_sends(tmp_path: Path) -> None:
    prices = tmp_path / "prices.toml"
    prices.write_text('[[models]]\nmatch = "acme-llm-1"\n')
    done = subprocess.run(
        [sys.executable, "-m", "spendscope", "demo", "--collector", "http://127.0.0.1:9"],
        env={**os.environ, "SPENDSCOPE_PRICE_FILE": str(prices)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stderr) == (
        1,
        f"error: price file {prices}: rule 'acme-llm-1' sets no price\n",
    )
