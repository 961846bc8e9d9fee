"""A real collector process killed with SIGKILL at random moments under a steady load from stock OTLP
exporters, and started again each time: after the last restart, every acknowledged call is counted
exactly once on every surface that reads the store (llm_usage, each rollup grain, reports, invoices,
exports, budgets, reconciliation, Grafana panel queries: tests/test_store_dedup.py `surfaces`).

The senders do what an exporter's queue does: a batch whose export fails (the collector is down) is
sent again until it is acknowledged, so at the end every span was acknowledged at least once. The
collector flushes its queue every second: at a kill, acknowledged spans are in its write-ahead log and
not yet in the store, and the next start must write them."""

from __future__ import annotations

import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult

from spendscope.store import open_store
from spendscope.store.rollups import build_rollups
from tests.monitoring import free_port
from tests.test_collector import wait_for
from tests.test_store_dedup import DAY, assert_counted_once, sdk_spans

BATCH = 50
SENDERS = 4
RATE = 1000  # spans per second, all senders together
RECOVERED = "acknowledged (from"  # the collector's log line when it spools what its log held


class Collector:
    """`spendscope collector` on a fixed port (the exporters reconnect to it after each restart)."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.store = str(tmp_path / "data")  # a local store: the collector starts its server
        self.runs = 0
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.runs += 1
        log = (self.tmp_path / f"collector-{self.runs}.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "spendscope", "collector", "--listen", f"127.0.0.1:{self.port}",
             "--store", self.store, "--spool", str(self.tmp_path / "spool"), "--flush-interval", "1"],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "SPENDSCOPE_COLLECTOR_TOKEN": ""},
        )  # fmt: skip
        log.close()
        wait_for(self._healthy, timeout=60)

    def _healthy(self) -> bool:
        assert self.process is not None and self.process.poll() is None, self.logs()
        try:
            with urllib.request.urlopen(self.url + "/healthz", timeout=2) as answer:
                return bool(answer.status == 200)
        except OSError:
            return False

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            assert self.process.wait(60) == 0, self.logs()

    def logs(self) -> str:
        return "".join(p.read_text(errors="replace") for p in sorted(self.tmp_path.glob("collector-*.log")))


def send_all(url: str, spans: list[ReadableSpan], done: threading.Event) -> list[str]:
    """Send `spans` in batches at RATE from SENDERS threads, each batch again until acknowledged.
    Returns the senders' errors (none expected)."""
    batches: queue.Queue[list[ReadableSpan]] = queue.Queue()
    for start in range(0, len(spans), BATCH):
        batches.put(spans[start : start + BATCH])
    errors: list[str] = []
    interval = BATCH * SENDERS / RATE

    def sender() -> None:
        exporter = OTLPSpanExporter(endpoint=url + "/v1/traces", timeout=10)
        try:
            while True:
                try:
                    batch = batches.get_nowait()
                except queue.Empty:
                    return
                started = time.monotonic()
                deadline = started + 120
                while exporter.export(batch) is not SpanExportResult.SUCCESS:
                    if time.monotonic() > deadline:
                        errors.append("a batch was not acknowledged within 120 s")
                        return
                    time.sleep(0.1)  # down: sent again, as an exporter's queue does
                time.sleep(max(0.0, interval - (time.monotonic() - started)))
        except Exception as exc:  # reported, not swallowed
            errors.append(repr(exc))
        finally:
            exporter.shutdown()

    threads = [threading.Thread(target=sender) for _ in range(SENDERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    done.set()
    return errors


def run_with_kills(tmp_path: Path, kills: int, count: int) -> None:
    # within the two days the surfaces' budget window covers: 30 calls a step, 47 minutes apart, the
    # steps spread over the first 23 hours
    steps = count // 30
    spans = [
        span
        for step in range(steps)
        for span in sdk_spans(30, start=DAY + timedelta(seconds=23 * 3600 * step // steps), seed=step % 7)
    ]
    collector = Collector(tmp_path)
    collector.start()
    done = threading.Event()
    errors: list[str] = []
    sending = threading.Thread(target=lambda: errors.extend(send_all(collector.url, spans, done)))
    sending.start()
    killed = 0
    try:
        rng = random.Random(os.getpid())
        while killed < kills and not done.is_set():
            time.sleep(rng.uniform(0.3, 1.5))  # at a random moment of steady load
            if done.is_set():
                break
            collector.kill()
            killed += 1
            collector.start()
        sending.join(600)
        assert not sending.is_alive() and errors == []
    finally:
        collector.stop()
    assert killed == kills, f"the load ended after {killed} kills: make it longer"
    recovered = collector.logs().count(RECOVERED)
    assert recovered >= 1, "no kill left acknowledged spans in the log: the test did not test it"

    with open_store(collector.store) as store:
        build_rollups(store, lag=timedelta(0))
        [[distinct]] = store.query("SELECT uniqExact(TraceId, SpanId) FROM otel_traces").rows
        assert distinct == len(spans)  # every acknowledged span is there: none lost
        assert_counted_once(store, spans)  # and each counted once on every surface: none doubled


def test_a_collector_killed_under_load_loses_and_doubles_no_acknowledged_call(tmp_path: Path) -> None:
    run_with_kills(tmp_path, kills=3, count=6400)


@pytest.mark.slow
def test_a_collector_killed_again_and_again_loses_and_doubles_nothing(tmp_path: Path) -> None:
    run_with_kills(tmp_path, kills=12, count=24000)
