"""The collector's memory under overload and under hostile requests: `python bench/memory.py`.

A `spendscope collector` process on a fresh local store (its server started by the collector, stopped
at the end), with the settings given as SPENDSCOPE_COLLECTOR_* in the environment (default: the
defaults). Its RSS is sampled from /proc/<pid>/status (VmHWM for a phase's peak, reset at its start):

- baseline: once started and warmed up (one small request of each kind, then 3 s idle);
- overload: `--posters` threads send OTLP/protobuf requests of `--mib` MiB (LLM spans, 23 attributes,
  new ids in every request) as fast as the collector answers, for `--seconds`; the offered load is
  every span sent, the accepted load those answered 200, and their ratio is printed;
- fuzz: the fuzz test's hypothesis strategies (tests/test_collector_fuzz.py: trace and metric
  requests as protobuf and JSON, random bytes and JSON) and the hostile shapes of
  bench/request_memory.py at `--mib` MiB, sent `--rounds` times by `--posters` threads;
- after each: once the queue and the spool are empty and the process idle for `--idle` s, its RSS.

With `--malloc-stats`, the collector runs through bench/collector_stats.py and, at the baseline and
after each phase, reports what its allocators hold: Python's small-object allocator (arenas of 1 MiB,
the bytes of their blocks in use, their wholly free pools of 16 KiB) and glibc's (`mallinfo2`: bytes
in use and free in its heaps).

Also, in this process: what the rows of 4 MiB requests of several shapes take (tracemalloc) over the
memory decoding estimated for them, which the queue counts.

Prints the figures beside the bound the settings give (spendscope/collector/_memory.py) and writes
them to `--out` (JSON). `--code other/checkout` runs that checkout's collector instead (its bound is
computed with this one's formula).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest  # noqa: E402
from request_memory import SHAPES, body, free_port, template  # noqa: E402

from spendscope.collector import CollectorConfig  # noqa: E402
from spendscope.collector._memory import peak_bound  # noqa: E402
from spendscope.store import server  # noqa: E402

MiB = 1024 * 1024
PROTOBUF = "application/x-protobuf"
JSON = "application/json"
MARK = b"\xab\xcd\xef\x01\x23\x45\x67\x89"  # the first half of every trace id in an overload body


class Sampler:
    """VmRSS of a process every 50 ms, in a thread."""

    def __init__(self, pid: int) -> None:
        self.path = Path(f"/proc/{pid}/status")
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def status(self) -> dict[str, int]:
        out = {}
        for line in self.path.read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                out[name] = int(value.split()[0]) * 1024
        return out

    def reset_peak(self) -> None:
        """Start VmHWM again from the current RSS (Linux's clear_refs)."""
        self.path.with_name("clear_refs").write_text("5")
        self.peak = 0

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            try:
                self.peak = max(self.peak, self.status()["VmRSS"])
            except (OSError, KeyError):
                return

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


@dataclass
class Tally:
    offered: int = 0  # spans sent
    accepted: int = 0  # spans answered 200
    statuses: Counter[int] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, spans: int, status: int) -> None:
        with self.lock:
            self.offered += spans
            self.statuses[status] += 1
            if status == 200:
                self.accepted += spans


def post(connection: http.client.HTTPConnection, path: str, data: bytes, kind: str) -> int:
    try:
        connection.request("POST", path, data, {"Content-Type": kind})
        answer = connection.getresponse()
        answer.read()
        if answer.getheader("Connection", "").lower() == "close":
            connection.close()
        return answer.status
    except (OSError, http.client.HTTPException):
        connection.close()  # the collector closed it (a 503 before the body was read): open anew
        return 0


def overload_body(mib: float) -> tuple[bytes, int]:
    one = template("LLM spans, 23 attributes")
    count = int(mib * MiB) // (one.ByteSize() + 4)
    message = ExportTraceServiceRequest()
    spans = message.resource_spans.add().scope_spans.add().spans
    for i in range(count):
        span = spans.add()
        span.CopyFrom(one)
        span.trace_id = MARK + i.to_bytes(8, "big")
        span.span_id = (i + 1).to_bytes(8, "big")
    return message.SerializeToString(), count


def overload(port: int, posters: int, seconds: float, mib: float) -> Tally:
    data, count = overload_body(mib)
    tally = Tally()
    deadline = time.monotonic() + seconds
    numbers = iter(range(1, 1 << 62))
    lock = threading.Lock()

    def run() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        while time.monotonic() < deadline:
            with lock:
                number = next(numbers)
            fresh = data.replace(MARK, number.to_bytes(8, "big"))  # new trace ids: every span is new
            tally.add(count, post(connection, "/v1/traces", fresh, PROTOBUF))
        connection.close()

    threads = [threading.Thread(target=run) for _ in range(posters)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return tally


def fuzz_corpus(mib: float, examples: int) -> list[tuple[str, bytes, str]]:
    """(path, body, media type): the fuzz test's strategies' examples, then the hostile shapes."""
    from hypothesis import strategies as st
    from hypothesis.errors import NonInteractiveExampleWarning

    from tests.test_collector_fuzz import as_json, json_values, metric_requests, trace_requests

    corpus: list[tuple[str, bytes, str]] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NonInteractiveExampleWarning)
        for _ in range(examples):
            traces, metrics = trace_requests().example(), metric_requests().example()
            corpus += [
                ("/v1/traces", traces.SerializeToString(), PROTOBUF),
                ("/v1/traces", as_json(traces), JSON),
                ("/v1/traces", st.binary(max_size=400).example(), PROTOBUF),
                ("/v1/traces", json.dumps(json_values.example()).encode(), JSON),
                ("/v1/metrics", metrics.SerializeToString(), PROTOBUF),
                ("/v1/metrics", as_json(metrics), JSON),
            ]
    for shape in SHAPES:
        corpus.append(("/v1/traces", body(shape, int(mib * MiB)), JSON if "JSON" in shape else PROTOBUF))
    return corpus


def replay(port: int, corpus: list[tuple[str, bytes, str]], posters: int, rounds: int) -> Tally:
    tally = Tally()
    work = [item for _ in range(rounds) for item in corpus]
    work.sort(key=lambda item: -len(item[1]))  # the large ones first, side by side
    lock = threading.Lock()

    def run() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        while True:
            with lock:
                if not work:
                    break
                path, data, kind = work.pop(0)
            tally.add(0, post(connection, path, data, kind))
        connection.close()

    threads = [threading.Thread(target=run) for _ in range(posters)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return tally


def estimate_accuracy(mib: float) -> dict[str, float]:
    """For each shape of bench/request_memory.py, what its rows take (tracemalloc, in this process)
    over what decoding estimated (`DecodedSpans.nbytes`, which the queue counts)."""
    import gc
    import tracemalloc

    from spendscope.collector._limits import Limits
    from spendscope.collector._spans import decode

    ratios = {}
    for shape in (
        "LLM spans, 23 attributes",
        "empty spans",
        "128 small attributes a span",
        "128 empty events a span",
    ):
        data = body(shape, int(mib * MiB))
        gc.collect()
        tracemalloc.start()
        rows = decode(data, PROTOBUF, Limits(decoded_bytes=1 << 40))
        held = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        ratios[shape] = round(held / rows.nbytes, 3)
    return ratios


def health(port: int) -> dict[str, Any]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", "/healthz")
        return dict(json.loads(connection.getresponse().read()))
    finally:
        connection.close()


def drained(port: int, sampler: Sampler, idle: float) -> int:
    """RSS once the queue and the spool are empty and `idle` seconds have passed."""
    deadline = time.monotonic() + 600
    while True:
        state = health(port)
        if state["queue_spans"] == 0 and state["spool_batches"] == 0:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"not drained in 600 s: {state}")
        time.sleep(0.5)
    time.sleep(idle)
    return sampler.status()["VmRSS"]


def malloc_stats(pid: int, stats: Path, n: int) -> dict[str, int]:
    """The collector's allocator statistics, its `n`th dump (bench/collector_stats.py)."""
    os.kill(pid, signal.SIGUSR1)
    path = stats.with_name(f"{stats.name}.{n}")
    deadline = time.monotonic() + 60
    while not path.exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"no allocator statistics in {path}")
        time.sleep(0.1)
    text = path.read_text()

    def number(pattern: str) -> int:
        found = re.search(pattern, text, re.MULTILINE)
        if found is None:
            raise RuntimeError(f"{pattern!r} not in {path}")
        return int(found.group(1).replace(",", ""))

    return {
        "pymalloc_arenas": number(r"^# arenas allocated current\s+=\s+([\d,]+)"),
        "pymalloc_blocks_bytes": number(r"^# bytes in allocated blocks\s+=\s+([\d,]+)"),
        "pymalloc_free_pools_bytes": number(r"^\d+ unused pools \* \d+ bytes\s+=\s+([\d,]+)"),
        "glibc_used_bytes": number(r"^# mallinfo2 uordblks = (\d+)"),
        "glibc_free_bytes": number(r"^# mallinfo2 fordblks = (\d+)"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posters", type=int, default=16, help="concurrent senders")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the overload")
    parser.add_argument("--mib", type=float, default=19.0, help="size of the overload's and hostile requests")
    parser.add_argument("--examples", type=int, default=200, help="examples drawn from each fuzz strategy")
    parser.add_argument("--rounds", type=int, default=3, help="times the fuzz corpus is sent")
    parser.add_argument("--idle", type=float, default=10.0, help="seconds idle before RSS after drain")
    parser.add_argument("--out", type=Path, help="write the figures here (JSON)")
    parser.add_argument("--code", type=Path, help="run the collector of this checkout")
    parser.add_argument(
        "--malloc-stats", action="store_true", help="report the collector's allocator statistics"
    )
    args = parser.parse_args()
    accuracy = estimate_accuracy(4.0)
    config = CollectorConfig.resolve()
    bound = peak_bound(config)
    corpus = fuzz_corpus(args.mib, args.examples)
    code = {"PYTHONPATH": str(args.code.resolve())} if args.code else {}
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        port = free_port()
        log = (Path(tmp) / "collector.log").open("w")
        stats = Path(tmp) / "malloc-stats"
        command = [str(ROOT / "bench" / "collector_stats.py")] if args.malloc_stats else ["-m", "spendscope"]
        env = {"SPENDSCOPE_STORE": str(data_dir), "SPENDSCOPE_COLLECTOR_TOKEN": "", **code}
        if args.malloc_stats:
            env["SPENDSCOPE_BENCH_STATS"] = str(stats)
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [code.get("PYTHONPATH"), str(ROOT)]))
        allocators: dict[str, dict[str, int]] = {}
        process = subprocess.Popen(
            [sys.executable, *command, "collector", "--listen", f"127.0.0.1:{port}"],
            env={**os.environ, **env},
            cwd=tmp,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    health(port)
                    break
                except OSError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError((Path(tmp) / "collector.log").read_text()) from None
                    time.sleep(0.2)
            sampler = Sampler(process.pid)
            replay(port, [item for item in corpus[:6]], 1, 1)  # warm up: one request of each kind
            baseline = drained(port, sampler, 3.0)
            if args.malloc_stats:
                allocators["baseline"] = malloc_stats(process.pid, stats, 1)
                baseline = sampler.status()["VmRSS"]
            sampler.reset_peak()
            started = time.monotonic()
            load = overload(port, args.posters, args.seconds, args.mib)
            took = time.monotonic() - started
            overload_peak = sampler.status()["VmHWM"]
            after_overload = drained(port, sampler, args.idle)
            if args.malloc_stats:
                allocators["after_overload"] = malloc_stats(process.pid, stats, 2)
            sampler.reset_peak()
            fuzz = replay(port, corpus, args.posters, args.rounds)
            fuzz_peak = sampler.status()["VmHWM"]
            after_fuzz = drained(port, sampler, args.idle)
            if args.malloc_stats:
                allocators["after_fuzz"] = malloc_stats(process.pid, stats, 3)
            sampler.stop()
        finally:
            process.terminate()
            process.wait(60)
            log.close()
            server.stop(data_dir)
    figures = {
        "code": str(args.code or ROOT),
        "settings": {
            name: getattr(config, name)
            for name in ("max_body_bytes", "max_decoded_bytes", "decoders", "queue_bytes", "writers")
        },
        "load_average": os.getloadavg(),
        "rows_over_estimate": accuracy,
        "bound_above_baseline_mib": bound / MiB,
        "baseline_mib": baseline / MiB,
        "overload": {
            "seconds": took,
            "offered_spans_per_s": load.offered / took,
            "accepted_spans_per_s": load.accepted / took,
            "offered_over_accepted": load.offered / max(load.accepted, 1),
            "answers": dict(load.statuses),
            "peak_mib": overload_peak / MiB,
            "after_drain_mib": after_overload / MiB,
        },
        "fuzz": {
            "requests": sum(fuzz.statuses.values()),
            "answers": dict(fuzz.statuses),
            "peak_mib": fuzz_peak / MiB,
            "after_drain_mib": after_fuzz / MiB,
        },
    }
    if allocators:
        figures["allocators"] = allocators
    print(json.dumps(figures, indent=2))
    if args.out:
        args.out.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
