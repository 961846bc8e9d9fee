"""`python -m spendscope collector` as a real process: on a local store it starts the store server
(which keeps running after it), spools while the server is stopped and lands every span exactly once
when it runs again; with `--budgets` and `--reconcile` it runs those too; a collector that cannot start
says why in one line."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult
from prometheus_client.parser import text_string_to_metric_families

from spendscope import names as n
from spendscope.demo.fake_openai.admin import ADMIN_KEY, FakeAdminAPI
from spendscope.store import open_store, server
from tests.monitoring import free_port
from tests.reconcile_helpers import use
from tests.test_collector import make_spans, wait_for


class Running:
    """The collector in a process of its own, on `store` (default: a local store under `tmp_path`)."""

    def __init__(
        self,
        tmp_path: Path,
        name: str,
        *extra: str,
        store: str | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.data = tmp_path / "store"
        self.url = f"http://127.0.0.1:{free_port()}"
        self.log_path = tmp_path / f"{name}.log"
        self.log = self.log_path.open("w")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "spendscope",
                "collector",
                "--listen",
                self.url.removeprefix("http://"),
                "--store",
                store or str(self.data),
                "--spool",
                str(tmp_path / "spool"),
                "--flush-interval",
                "0.1",
                *extra,
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "SPENDSCOPE_COLLECTOR_TOKEN": "", **(env or {})},
        )

        def ready() -> bool:
            assert self.process.poll() is None, self.log_path.read_text()
            try:
                self.get("/healthz")
            except OSError:
                return False
            return True

        wait_for(ready, timeout=30)

    def get(self, path: str) -> Any:
        return json.loads(urllib.request.urlopen(self.url + path, timeout=10).read())

    def export(self, count: int) -> list[Any]:
        spans = make_spans(count)
        exporter = OTLPSpanExporter(endpoint=self.url + "/v1/traces")
        assert exporter.export(spans) is SpanExportResult.SUCCESS
        exporter.shutdown()
        return list(spans)

    def calls(self) -> int:
        report = self.get("/api/usage/report?by=service&since=1d")
        return sum(row[1] for row in report["rows"])

    def terminate(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        assert self.process.wait(30) == 0, self.log_path.read_text()
        self.log.close()


def test_a_stopped_store_server_is_spooled_for_and_every_span_lands_once_it_runs_again(
    tmp_path: Path,
) -> None:
    """The collector starts the local store's server; `spendscope store stop` stops it (the collector
    spools, across its own restart too, and does not start it again itself); once
    `spendscope store start` has, the spool is replayed and every span counted once."""
    first = Running(tmp_path, "first")
    state = server.running(first.data)
    assert state is not None and first.get("/healthz")["store"] == "up"
    first.export(5)
    wait_for(lambda: first.calls() == 5, timeout=20)
    stopped = cli("store", "stop", "--store", str(first.data))
    assert stopped.stdout == f"stopped the store server for {first.data} (pid {state.pid}, {state.url})\n"
    spans = first.export(30)
    exporter = OTLPSpanExporter(endpoint=first.url + "/v1/traces")
    assert exporter.export(spans) is SpanExportResult.SUCCESS  # a retried export
    wait_for(lambda: first.get("/healthz")["store"] == "down", timeout=20)
    wait_for(lambda: first.get("/healthz")["queue_spans"] == 0)
    assert first.get("/healthz")["spool_batches"] >= 1
    assert server.running(first.data) is None  # stopped on purpose: not started again
    first.terminate()  # SIGTERM: flushes the queue into the spool and exits 0
    assert list((tmp_path / "spool").glob("*.batch"))

    second = Running(tmp_path, "second")  # restarted with a non-empty spool: it starts the server
    wait_for(lambda: second.get("/healthz")["spool_batches"] == 0, timeout=30)
    assert second.calls() == 35
    second.export(8)
    wait_for(lambda: second.calls() == 43, timeout=10)
    second.terminate()
    assert not list((tmp_path / "spool").glob("*.batch"))
    assert server.running(first.data) is not None  # it keeps running after the collector


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "spendscope", *args], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done


def test_the_collector_evaluates_budgets_on_its_store(tmp_path: Path, store_dsn: str) -> None:
    """`--budgets`: the collector runs the budget evaluator itself (one process fewer) and serves
    `spendscope budgets`' metrics at `spendscope budgets`' address."""
    budgets = tmp_path / "budgets.yaml"
    budgets.write_text("warning_percent: 50\nper_user: {daily_usd: 0.0001, monthly_usd: 1}\n")
    listen = f"127.0.0.1:{free_port()}"
    env = {"SPENDSCOPE_BUDGETS_LISTEN": listen, "SPENDSCOPE_BUDGETS_INTERVAL": "1s"}
    collector = Running(tmp_path, "collector", "--budgets", str(budgets), store=store_dsn, env=env)
    try:
        # users u-0 (4 calls), u-1 and u-2 (3 each); call i costs (100 + i) x $0.15/M in + 20 x $0.60/M out
        collector.export(10)
        wait_for(lambda: collector.calls() == 10, timeout=30)

        found: dict[tuple[str, str], float] = {}

        def spend() -> bool:
            text = urllib.request.urlopen(f"http://{listen}/metrics", timeout=10).read().decode()
            found.clear()
            found.update(
                ((s.labels["user"], s.labels["window"]), s.value)
                for family in text_string_to_metric_families(text)
                for s in family.samples
                if s.name == n.PROM_BUDGET_SPEND
            )
            return len(found) == 3

        wait_for(spend, timeout=30)
        assert found == pytest.approx(
            {("u-0", "day"): 0.0001107, ("u-1", "day"): 0.0000828, ("u-2", "day"): 0.00008325}
        )
    finally:
        collector.terminate()


def test_a_bad_budgets_file_stops_the_collector_with_one_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "spendscope",
            "collector",
            "--store",
            str(tmp_path / "store"),
            "--budgets",
            str(tmp_path / "missing.yaml"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert f"cannot read the budgets file {tmp_path / 'missing.yaml'}" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_collector_reconciles_its_store(tmp_path: Path, store_dsn: str) -> None:
    """`--reconcile`: `spendscope reconcile --watch` inside the collector, on its store, serving the
    reconciler's metrics at the reconciler's address."""
    two_days_ago = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=2)
    with FakeAdminAPI() as admin:
        use(admin, two_days_ago, input_tokens=1000, output_tokens=200, requests=3)
        listen = f"127.0.0.1:{free_port()}"
        env = {
            "OPENAI_ADMIN_KEY": ADMIN_KEY,
            "OPENAI_BASE_URL": admin.base_url,
            "SPENDSCOPE_RECONCILE_METRICS_LISTEN": listen,
        }
        collector = Running(tmp_path, "collector", "--reconcile", store=store_dsn, env=env)
        try:
            found: dict[str, float] = {}

            def reconciled() -> bool:
                try:  # served once the collector has started
                    text = urllib.request.urlopen(f"http://{listen}/metrics", timeout=10).read().decode()
                except urllib.error.URLError:
                    return False
                found.clear()
                found.update(
                    (f"{s.name}{sorted(s.labels.items())}", s.value)
                    for family in text_string_to_metric_families(text)
                    for s in family.samples
                )
                return found.get("spendscope_reconciliation_runs_total[('status', 'complete')]", 0) >= 1

            wait_for(reconciled, timeout=60)
        finally:
            collector.terminate()
    # OpenAI's side as the fake reported it; nothing tracked (no spans were sent)
    assert found["spendscope_reconciliation_reported_tokens[('type', 'input')]"] == 1000
    assert found["spendscope_reconciliation_reported_tokens[('type', 'output')]"] == 200
    assert found["spendscope_reconciliation_tracked_tokens[('type', 'input')]"] == 0


def test_reconcile_without_an_admin_key_stops_the_collector_with_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_ADMIN_KEY"}
    done = subprocess.run(
        [sys.executable, "-m", "spendscope", "collector", "--store", str(tmp_path / 'store'), "--reconcile"],
        capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert done.returncode != 0
    assert "no admin key" in done.stderr
    assert "Traceback" not in done.stderr


# --- a collector that cannot start says why in one line ------------------------------------------------
def run_collector(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "spendscope", "collector", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "SPENDSCOPE_COLLECTOR_TOKEN": "", **(env or {})},
    )


def one_line_error(done: subprocess.CompletedProcess[str]) -> str:
    """The only line on stderr, after checking the exit status."""
    assert done.returncode == 1, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


def test_a_port_in_use_stops_the_collector_with_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_collector("--listen", f"127.0.0.1:{port}", "--store", str(tmp_path / "store"))
    assert one_line_error(done) == f"error: cannot listen on 127.0.0.1:{port}: Address already in use"


def test_an_address_it_cannot_bind_stops_the_collector_with_one_line(tmp_path: Path) -> None:
    # 203.0.113.0/24 is TEST-NET-3 (RFC 5737): never an address of this machine
    done = run_collector("--listen", "203.0.113.5:4318", "--store", str(tmp_path / "store"))
    assert one_line_error(done) == "error: cannot listen on 203.0.113.5:4318: Cannot assign requested address"


def test_a_spool_another_collector_uses_stops_the_collector_with_one_line(
    tmp_path: Path, store_dsn: str
) -> None:
    first = Running(tmp_path, "first", store=store_dsn)
    try:
        spool = str(tmp_path / "spool")
        done = run_collector("--listen", "127.0.0.1:0", "--store", store_dsn, "--spool", spool)
    finally:
        first.terminate()
    assert one_line_error(done) == (
        f"error: another spendscope collector (pid {first.process.pid}) uses the spool {spool}: stop it, "
        "or give this one a spool of its own (--spool)"
    )


def test_a_store_directory_it_cannot_create_stops_the_collector_with_one_line(tmp_path: Path) -> None:
    """Its parent is a regular file: mkdir fails with ENOTDIR for root too (a mode such as 0o555 does
    not stop root, who runs these tests in containers)."""
    (tmp_path / "file").write_text("not a directory\n")
    store = tmp_path / "file" / "store"
    done = run_collector("--listen", "127.0.0.1:0", "--store", str(store), "--spool", str(tmp_path / "spool"))
    assert one_line_error(done) == f"error: cannot create the store directory {store}: Not a directory"


def _mount_namespaces() -> bool:
    try:
        return subprocess.run(["unshare", "-rm", "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.mark.skipif(not _mount_namespaces(), reason="needs unshare -rm (a mount namespace) to mount a tmpfs")
def test_a_store_directory_it_cannot_write_stops_the_collector_with_one_line(tmp_path: Path) -> None:
    """On a read-only tmpfs, mounted in a mount namespace of its own: unwritable for root too."""
    mount = tmp_path / "ro"
    mount.mkdir()
    store = mount / "store"
    script = 'mount -t tmpfs none "$1" && mkdir "$1/store" && mount -o remount,ro "$1" && shift && exec "$@"'
    done = subprocess.run(
        ["unshare", "-rm", "sh", "-c", script, "sh", str(mount), sys.executable, "-m", "spendscope",
         "collector", "--listen", "127.0.0.1:0", "--store", str(store), "--spool", str(tmp_path / "spool")],
        capture_output=True, text=True, timeout=60, env={**os.environ, "SPENDSCOPE_COLLECTOR_TOKEN": ""},
    )  # fmt: skip
    assert (
        one_line_error(done) == f"error: cannot write to the store directory {store}: Read-only file system"
    )


# --- the price file -----------------------------------------------------------------------------------
MODEL_PRICES = (
    "SELECT model, toString(per_input[1] * 1000000), toString(per_output[1] * 1000000), price_version "
    "FROM model_prices_current WHERE model = 'acme-llm-1' AND service_tier = 'default' AND NOT batch"
)


def test_the_collector_loads_its_price_file_into_model_prices(tmp_path: Path, store_dsn: str) -> None:
    prices = tmp_path / "prices.toml"
    prices.write_text('[[models]]\nmatch = "acme-llm-1"\ninput_mtok = 2\noutput_mtok = 8\n')
    collector = Running(tmp_path, "priced", "--price-file", str(prices), store=store_dsn)
    collector.terminate()
    with open_store(store_dsn) as store:
        [[model, input_mtok, output_mtok, source]] = store.query(MODEL_PRICES).rows
    assert (model, Decimal(input_mtok), Decimal(output_mtok)) == ("acme-llm-1", 2, 8)  # USD per million
    assert source.startswith("file:prices.toml#")


def test_a_bad_price_file_stops_the_collector_with_one_line(tmp_path: Path) -> None:
    prices = tmp_path / "prices.toml"
    prices.write_text('[[models]]\nmatch = "acme-llm-1"\n')
    done = run_collector(
        "--listen",
        "127.0.0.1:0",
        "--store",
        str(tmp_path / "store"),
        env={"SPENDSCOPE_PRICE_FILE": str(prices)},
    )
    assert one_line_error(done) == f"error: price file {prices}: rule 'acme-llm-1' sets no price"
    missing = run_collector(
        "--listen",
        "127.0.0.1:0",
        "--store",
        str(tmp_path / "store"),
        "--price-file",
        str(tmp_path / "nope.toml"),
    )
    assert one_line_error(missing) == (
        f"error: collector setting price_file (option --price-file={str(tmp_path / 'nope.toml')!r}): "
        f"no such file: {tmp_path / 'nope.toml'}"
    )
