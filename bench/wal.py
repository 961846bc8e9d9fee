"""What durability costs a request: the collector's write-ahead log append (write + fsync) alone.

    python bench/wal.py [--dir DIR] [--seconds 5]

For each request size and number of concurrent senders, appends for `--seconds` and reports the
median and 99th percentile latency of one append (what a 200 waits for beyond decoding), appends per
second, and fsyncs per append (below 1 when appends share a flush). DIR should be on the disk the
spool will use (default: a temporary directory).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

from spendscope.collector._wal import Wal

SPAN_BYTES = 1500  # an LLM span as OTLP protobuf, about
SIZES = (1, 100, 2000)  # spans per request
SENDERS = (1, 4, 16)


def run(directory: Path, spans: int, senders: int, seconds: float) -> dict[str, float]:
    wal = Wal(directory, segment_bytes=64 * 1024 * 1024)
    wal.open()
    body = os.urandom(spans * SPAN_BYTES)
    latencies: list[list[float]] = [[] for _ in range(senders)]
    fsyncs = 0
    real_fsync = os.fsync

    def counted(fd: int) -> None:
        nonlocal fsyncs
        fsyncs += 1
        real_fsync(fd)

    deadline = time.monotonic() + seconds

    def send(mine: list[float]) -> None:
        while time.monotonic() < deadline:
            started = time.perf_counter()
            segment = wal.append(body, "application/x-protobuf", spans)
            mine.append(time.perf_counter() - started)
            wal.settle(segment, spans)

    os.fsync = counted  # type: ignore[assignment]  # count the log's flushes (the benchmark's process only)
    try:
        threads = [threading.Thread(target=send, args=(mine,)) for mine in latencies]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        os.fsync = real_fsync  # type: ignore[assignment]
    wal.close()
    every = sorted(value for mine in latencies for value in mine)
    return {
        "spans_per_request": spans,
        "senders": senders,
        "appends_per_s": len(every) / seconds,
        "median_us": statistics.median(every) * 1e6,
        "p99_us": every[int(len(every) * 0.99)] * 1e6,
        "fsyncs_per_append": fsyncs / len(every),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dir", type=Path, help="where to write the log (default: a temporary directory)")
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        results = []
        print("| spans/request | senders | appends/s | median µs | p99 µs | fsyncs/append |")
        print("|---:|---:|---:|---:|---:|---:|")
        for spans in SIZES:
            for senders in SENDERS:
                result = run(Path(tmp) / f"{spans}-{senders}", spans, senders, args.seconds)
                results.append(result)
                print(
                    f"| {spans:,} | {senders} | {result['appends_per_s']:,.0f} | "
                    f"{result['median_us']:,.0f} | {result['p99_us']:,.0f} | "
                    f"{result['fsyncs_per_append']:.2f} |",
                    flush=True,
                )
    out = Path(__file__).parent / "results" / "wal.json"
    out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
