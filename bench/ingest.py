"""Ingest benchmark: `python bench/ingest.py [--seconds 20] [--senders 2] [--spans 2000] [--writers 2]
[--batch-spans N] [--queue-spans N] [--queue-mib N] [--trace-indexes auto|text|bloom_filter]` (the
collector's defaults where not given).

Starts `spendscope collector` as its own process on a fresh local store (a directory): the collector
starts the store's server (spendscope/store/server.py) and writes to it over HTTP, as it does by
default. Then posts OTLP protobuf requests of LLM spans (23 attributes each, as SpendScope's
instrumentation writes them; every span id unique) from sender threads as fast as the collector takes
them (503s are retried after their Retry-After), for a fixed time. Reports spans/s accepted, spans/s
written to the store (counted until the queue has drained), 503s, the inserts, the CPU time of the
collector and of the store server (in all, per span, and by thread) and their RSS over the run.

The machine's other load counts: compare runs made one after the other, and look at the CPU per
span (counted from the first request on, so the collector's start and migrations are left out) and
at the capacity it implies: the spans per second with every core to the collector and the store.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from spendscope import names as n
from spendscope.settings.store import StoreSettings
from spendscope.store import server


def _kv(key: str, value: object) -> KeyValue:
    v = AnyValue()
    if isinstance(value, bool):
        v.bool_value = value
    elif isinstance(value, int):
        v.int_value = value
    elif isinstance(value, float):
        v.double_value = value
    elif isinstance(value, list):
        v.array_value.values.extend(AnyValue(string_value=str(x)) for x in value)
    else:
        v.string_value = str(value)
    return KeyValue(key=key, value=v)


def llm_request(count: int, seed: int = 0) -> tuple[bytearray, list[int]]:
    """An ExportTraceServiceRequest of `count` LLM spans, and the offset of each span's trace id."""
    rnd = random.Random(seed)
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    resource = {
        "service.name": "hr-app",
        "service.instance.id": "bench-1",
        "telemetry.sdk.name": "opentelemetry",
        "telemetry.sdk.language": "python",
        "telemetry.sdk.version": "1.45.2",
    }
    rs.resource.attributes.extend(_kv(k, v) for k, v in resource.items())
    scope = rs.scope_spans.add()
    scope.scope.name = "spendscope"
    scope.scope.version = "0.1.0"
    now = time.time_ns()
    ids: list[bytes] = []
    for i in range(count):
        span = scope.spans.add()
        span.trace_id = rnd.randbytes(16)
        span.span_id = rnd.randbytes(8)
        ids.append(span.trace_id)
        span.name = "chat gpt-4o-mini"
        span.kind = 3
        span.start_time_unix_nano = now + i
        span.end_time_unix_nano = now + i + rnd.randint(200_000_000, 3_000_000_000)
        attributes = {
            n.OPERATION_NAME: n.OP_CHAT,
            n.PROVIDER_NAME: n.PROVIDER_OPENAI,
            n.REQUEST_MODEL: "gpt-4o-mini",
            n.RESPONSE_MODEL: "gpt-4o-mini-2024-07-18",
            n.RESPONSE_ID: f"chatcmpl-{rnd.getrandbits(64):016x}",
            n.USAGE_INPUT_TOKENS: rnd.randint(10, 5000),
            n.USAGE_OUTPUT_TOKENS: rnd.randint(1, 900),
            n.USAGE_CACHE_READ_INPUT_TOKENS: 0,
            n.USAGE_REASONING_OUTPUT_TOKENS: 0,
            n.OPENAI_API_TYPE: "chat_completions",
            n.OPENAI_RESPONSE_SERVICE_TIER: "default",
            n.SERVER_ADDRESS: "api.openai.com",
            n.SERVER_PORT: 443,
            n.USER_ID: f"user-{rnd.randint(1, 1000)}",
            n.ENDPOINT: rnd.choice(["/interview", "/cv-parsing", "/homework"]),
            n.TENANT: rnd.choice(["acme", "globex", "initech"]),
            n.COST_USD: rnd.random() / 100,
            n.PRICE_VERSION: "2026-01-01",
            n.USAGE_STATE: n.USAGE_STATE_REPORTED,
            n.OPENAI_PROJECT: "proj_bench",
            n.OPENAI_API_KEY_REDACTED: "sk-...wxyz",
            "gen_ai.response.finish_reasons": ["stop"],
            n.REQUEST_STREAM: False,
        }
        span.attributes.extend(_kv(k, v) for k, v in attributes.items())
    data = bytearray(request.SerializeToString())
    offsets: list[int] = []
    start = 0
    for trace_id in ids:
        start = data.index(trace_id, start)
        offsets.append(start)
    return data, offsets


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (its threads included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _cpu_by_thread(pid: int) -> dict[str, float]:
    """CPU seconds of a process's threads, by thread name (ClickHouse names its pools)."""
    out: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            comm = (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        name = comm.rstrip("0123456789-_ ") or comm
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return out


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _rss_summary(samples: list[int]) -> str:
    """RSS in MiB, min-max per minute (per run, for runs under two minutes)."""
    if len(samples) < 120:
        return f"{min(samples)}-{max(samples)} MiB (one sample a second: {samples})"
    minutes = [samples[i : i + 60] for i in range(0, len(samples), 60)]
    return ", ".join(f"min {i + 1}: {min(m)}-{max(m)}" for i, m in enumerate(minutes)) + " MiB"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--senders", type=int, default=2)
    parser.add_argument("--spans", type=int, default=2000, help="spans per request")
    parser.add_argument("--batch-spans", help="spans per insert (default: the collector's)")
    parser.add_argument("--queue-spans", help="queue limit in spans (default: the collector's)")
    parser.add_argument("--queue-mib", type=int, help="queue limit in encoded MiB (default: the collector's)")
    indexes = ("auto", "text", "bloom_filter")
    parser.add_argument("--trace-indexes", choices=indexes, help="otel_traces index set (store setting)")
    parser.add_argument("--writers", type=int, default=2, help="batches inserted at once")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="spendscope-bench-"))
    data_dir = workdir / "store"
    collector: subprocess.Popen[bytes] | None = None
    try:
        listen = f"127.0.0.1:{_free_port()}"
        collector = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "spendscope",
                "collector",
                "--listen",
                listen,
                "--store",
                str(data_dir),
                "--spool",
                str(workdir / "spool"),
                *(["--batch-spans", args.batch_spans] if args.batch_spans else []),
                *(["--queue-spans", args.queue_spans] if args.queue_spans else []),
            ],
            stdout=subprocess.DEVNULL,
            stderr=(workdir / "collector.log").open("w"),
            env={
                **os.environ,
                "SPENDSCOPE_COLLECTOR_WRITERS": str(args.writers),
                **({"SPENDSCOPE_COLLECTOR_QUEUE_BYTES": str(args.queue_mib << 20)} if args.queue_mib else {}),
                **(
                    {StoreSettings.env("store_trace_indexes"): args.trace_indexes}
                    if args.trace_indexes
                    else {}
                ),
            },
        )
        url = ""
        while not url:
            if collector.poll() is not None:
                raise SystemExit((workdir / "collector.log").read_text())
            url = _listening(listen)
            time.sleep(0.1)
        state = server.running(data_dir)  # the collector has started it
        if state is None:
            raise SystemExit(f"no store server runs for {data_dir}")
        _run(args, url, collector.pid, state.pid)
    finally:
        if collector is not None:
            collector.terminate()
            collector.wait(60)
        if data_dir.is_dir():
            server.stop(data_dir)
        shutil.rmtree(workdir, ignore_errors=True)


def _listening(address: str) -> str:
    """The collector's URL once it answers /healthz, else ""."""
    try:
        urllib.request.urlopen(f"http://{address}/healthz", timeout=1).read()
    except OSError:
        return ""
    return f"http://{address}"


def _run(args: argparse.Namespace, url: str, collector: int, store_server: int) -> None:
    template, offsets = llm_request(args.spans)
    processes = {"collector": collector, "store server": store_server}
    # CPU from here on: the collector's start (imports, migrations) is not ingest
    cpu_start = {name: _cpu_seconds(pid) for name, pid in processes.items()}
    threads_start = {name: _cpu_by_thread(pid) for name, pid in processes.items()}
    own_start = time.process_time()
    counter = iter(range(1, 1 << 62))
    lock = threading.Lock()
    sent = [0]
    refused = [0]
    stop = time.monotonic() + args.seconds
    host, port = url.removeprefix("http://").rsplit(":", 1)

    def sender() -> None:
        connection = http.client.HTTPConnection(host, int(port), timeout=60)
        body = bytearray(template)
        while time.monotonic() < stop:
            with lock:
                first = next(counter)
            for k, offset in enumerate(offsets):  # fresh trace ids: no span is a duplicate
                body[offset : offset + 8] = (first * len(offsets) + k).to_bytes(8, "big")
            while True:
                connection.request(
                    "POST", "/v1/traces", body=bytes(body), headers={"Content-Type": "application/x-protobuf"}
                )
                response = connection.getresponse()
                answer = response.read()
                if response.status == 200:
                    with lock:
                        sent[0] += len(offsets)
                    break
                if response.status != 503:
                    raise SystemExit(f"unexpected {response.status}: {answer[:200]!r}")
                with lock:
                    refused[0] += 1
                if response.getheader("Connection") == "close":
                    connection.close()
                time.sleep(min(float(response.getheader("Retry-After") or "1"), 0.2))
        connection.close()

    started = time.monotonic()
    threads = [threading.Thread(target=sender, daemon=True) for _ in range(args.senders)]
    for thread in threads:
        thread.start()
    rss: dict[str, list[int]] = {name: [] for name in processes}
    while any(t.is_alive() for t in threads):
        for name, pid in processes.items():
            rss[name].append(_rss_kib(pid) // 1024)
        time.sleep(1.0)
    accepted_at = time.monotonic()

    def health() -> dict[str, int]:
        result: dict[str, int] = json.loads(urllib.request.urlopen(url + "/healthz", timeout=30).read())
        return result

    while health()["queue_spans"] > 0:
        time.sleep(0.05)
    drained_at = time.monotonic()
    cpu = {name: _cpu_seconds(pid) - cpu_start[name] for name, pid in processes.items()}
    senders_cpu = time.process_time() - own_start
    metrics = urllib.request.urlopen(url + "/metrics", timeout=30).read().decode()

    def metric(name: str) -> float:
        return next(
            (float(line.split()[-1]) for line in metrics.splitlines() if line.startswith(name + " ")), 0.0
        )

    written = metric("spendscope_collector_written_spans_total")
    spans = max(written, 1)
    print(f"spans per request      {args.spans} ({len(template) / args.spans:.0f} bytes/span protobuf)")
    print("store                  a local store, its server in a process of its own")
    print(
        f"accepted               {sent[0]} spans in {accepted_at - started:.1f} s: "
        f"{sent[0] / (accepted_at - started):,.0f} spans/s"
    )
    print(
        f"written to the store   {written:.0f} spans in {drained_at - started:.1f} s: "
        f"{written / (drained_at - started):,.0f} spans/s sustained"
    )
    print(f"503 (queue full)       {refused[0]}")
    for name, seconds in cpu.items():
        per = seconds / spans * 1e6
        print(f"{name + ' CPU':22} {seconds:.1f} s ({per:.1f} us/span, from the first request on)")
    per_span = sum(cpu.values()) / spans * 1e6
    senders_per_span = senders_cpu / spans * 1e6
    print(f"senders' CPU           {senders_cpu:.1f} s ({senders_per_span:.1f} us/span)")
    cores = os.cpu_count() or 1
    print(
        f"CPU-bound capacity     {cores * 1e6 / per_span:,.0f} spans/s with all {cores} cores "
        f"({cores * 1e6 / (per_span + senders_per_span):,.0f} with these senders beside it)"
    )
    inserts = metric("spendscope_collector_insert_duration_seconds_count")
    insert_seconds = metric("spendscope_collector_insert_duration_seconds_sum")
    print(
        f"inserts                {inserts:.0f} of {written / max(inserts, 1):,.0f} spans, "
        f"{insert_seconds / max(inserts, 1):.2f} s each"
    )
    for name, pid in processes.items():
        print(f"{name + ' RSS':22} {_rss_summary(rss[name])}")
        now = _cpu_by_thread(pid).items()
        spent = ((thread, sec - threads_start[name].get(thread, 0.0)) for thread, sec in now)
        by_thread = sorted(spent, key=lambda kv: -kv[1])
        busy = ", ".join(f"{thread} {sec:.1f}s" for thread, sec in by_thread[:8] if sec >= 0.1)
        print(f"{name + ' CPU by thread':22} {busy}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
