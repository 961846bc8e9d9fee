"""What one OTLP request costs the collector in memory: `python bench/request_memory.py [--mib 19]`.

For each shape of request (near the body limit, 20 MiB), a fresh `spendscope collector` process on a
fresh embedded store: its RSS once started and warmed up by one small request, then the peak RSS
(VmHWM) after the request was answered and its spans written. Also the decode alone: a fresh Python
process parses the same body and makes its rows (`request_spans`) and reports its peak growth. Prints
one row per shape: the answer, the decode's growth and the collector's.

Run it with another checkout's code on the path (PYTHONPATH=that/checkout) to compare versions.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from spendscope import names as n

MiB = 1024 * 1024
LLM = {
    n.OPERATION_NAME: n.OP_CHAT,
    n.PROVIDER_NAME: n.PROVIDER_OPENAI,
    n.REQUEST_MODEL: "gpt-4o-mini",
    n.RESPONSE_MODEL: "gpt-4o-mini-2024-07-18",
    n.USAGE_INPUT_TOKENS: 1234,
    n.USAGE_OUTPUT_TOKENS: 56,
    n.USAGE_CACHE_READ_INPUT_TOKENS: 0,
    n.USAGE_STATE: n.USAGE_STATE_REPORTED,
    n.COST_USD: "0.0002187",
    n.USER_ID: "u-12345",
    n.TENANT: "acme",
    n.ENDPOINT: "cv-parsing",
    "server.address": "api.openai.com",
    "server.port": 443,
    "openai.api.type": "chat_completions",
    "openai.response.service_tier": "default",
    "gen_ai.response.id": "chatcmpl-AbCdEfGhIjKlMnOpQrStUvWxYz",
    "gen_ai.response.finish_reasons": "stop",
    "spendscope.price.version": "genai-prices 0.2.5",
    "openai.project": "proj_abc123",
    "openai.api_key.redacted": "sk-proj-...wxyz",
    "spendscope.attr.job_id": "J-42",
    "http.response.status_code": 200,
}


def template(shape: str) -> Span:
    span = Span(
        trace_id=b"\x01" * 16, span_id=b"\x02" * 8, name="s", start_time_unix_nano=1, end_time_unix_nano=2
    )
    if shape == "LLM spans, 23 attributes":
        span.name = "chat gpt-4o-mini"
        span.start_time_unix_nano = 1_790_000_000_000_000_000
        span.end_time_unix_nano = span.start_time_unix_nano + 1_000_000_000
        for key, value in LLM.items():
            v = AnyValue(int_value=value) if isinstance(value, int) else AnyValue(string_value=str(value))
            span.attributes.append(KeyValue(key=key, value=v))
    elif shape == "128 small attributes a span":
        span.attributes.extend(KeyValue(key=f"k{i}", value=AnyValue(int_value=i)) for i in range(128))
    elif shape == "128 empty events a span":
        span.events.extend(Span.Event() for _ in range(128))
    return span


def body(shape: str, size: int) -> bytes:
    if shape == "OTLP/JSON of empty objects":
        count = (size - 40) // 3
        return b'{"resourceSpans": [], "x": [' + b",".join([b"{}"] * count) + b"]}"
    if shape == "spans of 2 bytes (no ids)":
        spans = b"\x12\x00" * ((size - 16) // 2)
        return _field(0x0A, _field(0x12, spans))
    one = template(shape)
    count = size // (one.ByteSize() + 4)
    message = ExportTraceServiceRequest()
    spans = message.resource_spans.add().scope_spans.add().spans
    for i in range(count):
        span = spans.add()
        span.CopyFrom(one)
        span.span_id = (i + 1).to_bytes(8, "big")
    data: bytes = message.SerializeToString()
    return data


def _field(tag: int, payload: bytes) -> bytes:
    n, head = len(payload), bytearray([tag])
    while n > 0x7F:
        head.append((n & 0x7F) | 0x80)
        n >>= 7
    return bytes(head) + bytes([n]) + payload


SHAPES = (
    "LLM spans, 23 attributes",
    "empty spans",
    "spans of 2 bytes (no ids)",
    "128 small attributes a span",
    "128 empty events a span",
    "OTLP/JSON of empty objects",
)

DECODE = """
import sys, gc
from spendscope.collector._otlp import BadRequest
from spendscope.collector._spans import request_spans
from spendscope.collector import _otlp
data = open(sys.argv[1], "rb").read()
kind = sys.argv[2]
def hwm():
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")) // 1024
gc.collect()
before = hwm()
try:
    try:
        from spendscope.collector._spans import decode
        rows = decode(data, kind)
    except ImportError:  # a version with one parse of the whole request
        rows = request_spans(_otlp.traces_request(data, kind))
    status = f"{len(rows.records)} rows"
except BadRequest as exc:
    status = str(exc.status)
print(status, hwm() - before)
"""


def status_of(path: Path) -> dict[str, int]:
    fields = {}
    for line in path.read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) // 1024
    return fields


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def post(url: str, data: bytes, kind: str) -> int:
    req = urllib.request.Request(url + "/v1/traces", data=data, headers={"Content-Type": kind})
    try:
        with urllib.request.urlopen(req, timeout=600) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def collector_growth(data: bytes, kind: str) -> tuple[int, int, int]:
    """(status, MiB of RSS once warmed up, MiB of peak growth) in a fresh collector process."""
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        env = {**os.environ, "SPENDSCOPE_STORE": f"chdb://{tmp}/data"}
        process = subprocess.Popen(
            [sys.executable, "-m", "spendscope", "collector", "--listen", f"127.0.0.1:{port}"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    urllib.request.urlopen(url + "/healthz", timeout=2).read()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
            post(url, body("LLM spans, 23 attributes", 64 * 1024), "application/x-protobuf")  # warm up
            time.sleep(2)
            proc = Path(f"/proc/{process.pid}/status")
            before = status_of(proc)["VmRSS"]
            status = post(url, data, kind)
            for _ in range(600):
                health = json.loads(urllib.request.urlopen(url + "/healthz", timeout=10).read())
                if health["queue_spans"] == 0:
                    break
                time.sleep(0.5)
            return status, before, status_of(proc)["VmHWM"] - before
        finally:
            process.terminate()
            process.wait(60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=float, default=19.0, help="body size of each request")
    parser.add_argument("--only", nargs="*", help="shapes to run (default: all)")
    args = parser.parse_args()
    size = int(args.mib * MiB)
    print(f"{'shape':34} {'body':>9} {'answer':>12} {'decode +MiB':>12} {'collector +MiB':>15}")
    for shape in SHAPES:
        if args.only and shape not in args.only:
            continue
        data = body(shape, size)
        kind = "application/json" if "JSON" in shape else "application/x-protobuf"
        with tempfile.NamedTemporaryFile() as file:
            file.write(data)
            file.flush()
            decoded = subprocess.run(
                [sys.executable, "-c", DECODE, file.name, kind], capture_output=True, text=True, check=True
            ).stdout.split()
        status, _, growth = collector_growth(data, kind)
        rows = " ".join(decoded[:-1])
        print(f"{shape:34} {len(data) / MiB:7.1f} MiB {status:>5} {rows:>14} {decoded[-1]:>8} {growth:>12}")


if __name__ == "__main__":
    main()
