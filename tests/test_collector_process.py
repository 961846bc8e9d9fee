"""`python -m spendscope collector` as a real process, on a chdb directory another process holds locked:
spans are accepted into the spool, survive a restart, and land exactly once when the lock goes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult

from tests.test_collector import make_spans, wait_for

HOLD_LOCK = """
import sys
from spendscope.store import open_store
store = open_store(sys.argv[1])
print("locked", flush=True)
sys.stdin.read()
store.close()
"""


@pytest.fixture
def lock_holder(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    data = tmp_path / "chdb"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, f"chdb://{data}"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    yield holder
    if holder.poll() is None:
        holder.kill()
        holder.wait(10)
    for pipe in (holder.stdin, holder.stdout):
        if pipe is not None:
            pipe.close()


class Running:
    def __init__(self, tmp_path: Path, name: str) -> None:
        self.data = tmp_path / "chdb"
        self.log = (tmp_path / f"{name}.log").open("w")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "spendscope",
                "collector",
                "--listen",
                "127.0.0.1:0",
                "--store",
                f"chdb://{self.data}",
                "--spool",
                str(tmp_path / "spool"),
                "--flush-interval",
                "0.1",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "SPENDSCOPE_COLLECTOR_TOKEN": ""},
        )
        discovery = self.data / "collector.json"

        def ready() -> bool:
            assert self.process.poll() is None, (tmp_path / f"{name}.log").read_text()
            return discovery.exists() and json.loads(discovery.read_text())["pid"] == self.process.pid

        wait_for(ready, timeout=30)
        self.url = json.loads(discovery.read_text())["url"]

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
        assert self.process.wait(30) == 0
        self.log.close()
        assert not (self.data / "collector.json").exists()


def test_store_locked_by_another_process_spools_then_lands_exactly_once(
    tmp_path: Path, lock_holder: subprocess.Popen[str]
) -> None:
    first = Running(tmp_path, "first")
    health = first.get("/healthz")
    assert health["store"] == "down" and "Cannot lock file" in health["store_error"]
    spans = first.export(30)
    exporter = OTLPSpanExporter(endpoint=first.url + "/v1/traces")
    assert exporter.export(spans) is SpanExportResult.SUCCESS  # a retried export: dropped, not spooled twice
    wait_for(lambda: first.get("/healthz")["queue_spans"] == 0)
    assert first.get("/healthz")["spool_batches"] >= 1
    first.terminate()  # SIGTERM: flushes the queue into the spool and exits 0
    spooled = list((tmp_path / "spool").glob("*.batch"))
    assert spooled

    second = Running(tmp_path, "second")  # restarted with a non-empty spool, the store still locked
    assert second.get("/healthz")["store"] == "down"
    second.export(12)
    assert lock_holder.stdin is not None
    lock_holder.stdin.close()  # the other process lets go of the directory
    assert lock_holder.wait(20) == 0
    wait_for(lambda: second.get("/healthz")["store"] == "up", timeout=30)
    wait_for(lambda: second.get("/healthz")["spool_batches"] == 0, timeout=30)
    assert second.calls() == 42
    second.export(8)
    wait_for(lambda: second.calls() == 50, timeout=10)
    second.terminate()
    assert not list((tmp_path / "spool").glob("*.batch"))
