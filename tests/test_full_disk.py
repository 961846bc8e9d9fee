"""Full disks, for real: a tmpfs filled to the last byte, in a mount namespace of its own (`unshare -rm`),
under the store's data directory or under the collector's spool, while a real collector process takes
spans. Nothing acknowledged is lost or set aside, and everything lands once when space comes back.

- The store's disk full: inserts fail with the store's own error (NOT_ENOUGH_SPACE, or the insert's
  schema lookup answered empty), which is the store's fault, not the batch's: the batches wait in the spool (none in refused/), while
  /healthz says so, and are written when space returns.
- The spool's disk full (the store stopped, so every batch would go to the spool): the write-ahead log
  cannot take a request, and the answer is 503 (the exporter sends it again), never a 200 for spans
  that are nowhere.

Each scenario runs as one script inside the namespace (the tmpfs exists only there) and prints what
it saw as JSON; the assertions are here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

DRIVER = r"""
import json, os, subprocess, sys, time, urllib.request
from pathlib import Path
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SpanExportResult
from tests.test_collector import make_spans
from tests.monitoring import free_port

scenario, disk, work = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
store = disk / "store" if scenario == "store" else work / "store"
spool = work / "spool" if scenario == "store" else disk / "spool"
port = free_port()
url = f"http://127.0.0.1:{port}"
seen = {}


def health():
    with urllib.request.urlopen(url + "/healthz", timeout=5) as answer:
        return json.loads(answer.read())


def wait(check, timeout=90):
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out; health {health()}")
        time.sleep(0.2)


def fill():
    with open(disk / "filler", "wb") as filler:
        block = b"\0" * (1 << 16)
        try:
            while True:
                filler.write(block)
                filler.flush()
        except OSError:
            pass
    # what is left under a block: written byte by byte
    with open(disk / "filler2", "wb", buffering=0) as filler:
        try:
            while True:
                filler.write(b"\0")
        except OSError:
            pass


def cli(*args):
    return subprocess.run([sys.executable, "-m", "spendscope", *args], capture_output=True, text=True,
                          timeout=120)


def calls():
    done = cli("report", "--by", "service", "--since", "1d", "--format", "json", "--store", str(store))
    if done.returncode != 0:
        return -1
    report = json.loads(done.stdout)
    column = report["columns"].index("calls")
    return sum(row[column] for row in report["rows"])


collector = subprocess.Popen(
    [sys.executable, "-m", "spendscope", "collector", "--listen", f"127.0.0.1:{port}", "--store", str(store),
     "--spool", str(spool), "--flush-interval", "0.2"],
    stdout=open(work / "collector.log", "w"), stderr=subprocess.STDOUT,
    env={**os.environ, "SPENDSCOPE_COLLECTOR_TOKEN": ""},
)
try:
    def ready():
        try:
            return health()["store"] == "up"
        except OSError:
            return False
    wait(ready)
    exporter = OTLPSpanExporter(endpoint=url + "/v1/traces", timeout=5)
    first = make_spans(40)
    seen["before"] = exporter.export(first).name
    wait(lambda: calls() == 40)
    if scenario == "spool":
        assert cli("store", "stop", "--store", str(store)).returncode == 0
    fill()
    spans = make_spans(300)
    answers = [exporter.export(spans[i:i + 100]).name for i in range(0, 300, 100)]
    seen["while_full"] = answers
    time.sleep(2)  # batches tried against the full disk, and tried again
    seen["health_full"] = health()
    (disk / "filler").unlink()
    (disk / "filler2").unlink()
    if scenario == "spool":
        assert cli("store", "start", "--store", str(store)).returncode == 0
    # what was not acknowledged is sent again, as the exporter's queue would
    for i, answer in enumerate(answers):
        if answer != "SUCCESS":
            seen.setdefault("sent_again", []).append(exporter.export(spans[i * 100:(i + 1) * 100]).name)
    wait(lambda: health()["spool_batches"] == 0 and health()["store"] == "up")
    wait(lambda: calls() == 340)
    seen["health_after"] = health()
    seen["calls"] = calls()
    exporter.shutdown()
finally:
    collector.terminate()
    collector.wait(60)
    cli("store", "stop", "--store", str(store))
    seen["log"] = (work / "collector.log").read_text()
print(json.dumps(seen))
"""


def _mount_namespaces() -> bool:
    try:
        return subprocess.run(["unshare", "-rm", "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def run(scenario: str, tmp_path: Path, size: str) -> dict[str, object]:
    disk, work = tmp_path / "disk", tmp_path / "work"
    disk.mkdir()
    work.mkdir()
    script = f'mount -t tmpfs -o size={size} none "$1" && shift && exec "$@"'
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        ["unshare", "-rm", "sh", "-c", script, "sh", str(disk),
         sys.executable, "-c", DRIVER, scenario, str(disk), str(work)],
        capture_output=True, text=True, timeout=600, cwd=root,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    seen: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return seen


pytestmark = pytest.mark.skipif(not _mount_namespaces(), reason="needs unshare -rm to mount a tmpfs")


def test_a_full_store_disk_keeps_every_batch_for_later_and_sets_none_aside(tmp_path: Path) -> None:
    seen = run("store", tmp_path, "256m")
    assert seen["before"] == "SUCCESS"
    assert seen["while_full"] == ["SUCCESS"] * 3, seen["log"]  # the spool's disk has room: acknowledged
    full = seen["health_full"]
    assert isinstance(full, dict)
    assert (full["status"], full["refused_spans"]) == ("degraded", {}), full
    assert full["store"] == "down" or full["spool_batches"] > 0, full
    # the store's error (NOT_ENOUGH_SPACE, or a schema it could not read back) is the store's fault
    assert "store unavailable, spooling" in str(seen["log"]) and "refused" not in str(seen["log"])
    after = seen["health_after"]
    assert isinstance(after, dict)
    assert (after["status"], after["refused_spans"], after["spool_batches"]) == ("ok", {}, 0)
    assert seen["calls"] == 340  # every call once


def test_a_full_spool_disk_answers_503_and_never_acknowledges_what_it_cannot_keep(tmp_path: Path) -> None:
    seen = run("spool", tmp_path, "8m")
    assert seen["before"] == "SUCCESS"
    answers = seen["while_full"]
    assert isinstance(answers, list) and "FAILURE" in answers, seen["log"]  # 503s, retried, then given up
    assert "cannot write the write-ahead log" in str(seen["log"])
    full = seen["health_full"]
    assert isinstance(full, dict) and full["status"] == "degraded", full
    assert str(full["write_ahead_log"]).endswith("No space left on device"), full
    assert seen.get("sent_again", []) == ["SUCCESS"] * answers.count("FAILURE")
    assert seen["calls"] == 340  # what was acknowledged before and after the full disk, once
