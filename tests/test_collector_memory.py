"""The collector's memory is bounded by its settings (spendscope/collector/_memory.py): a real
collector process on the real store, overloaded by many exporters at once, stays under the bound its
settings give, returns near its baseline once the queue has drained, and loses no span it
acknowledged. Small limits keep it quick; bench/memory.py measures the defaults."""

from __future__ import annotations

import http.client
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from spendscope import names as n
from spendscope.collector import CollectorConfig
from spendscope.collector._memory import peak_bound
from spendscope.store import Store, server
from tests.test_collector import wait_for
from tests.test_collector_process import Running

MiB = 1024 * 1024
SETTINGS = {
    "SPENDSCOPE_COLLECTOR_MAX_BODY_BYTES": str(2 * MiB),
    "SPENDSCOPE_COLLECTOR_MAX_DECODED_BYTES": str(16 * MiB),
    "SPENDSCOPE_COLLECTOR_DECODERS": "1",
    "SPENDSCOPE_COLLECTOR_QUEUE_BYTES": str(24 * MiB),
    "SPENDSCOPE_COLLECTOR_QUEUE_SPANS": "1000000",
    "SPENDSCOPE_COLLECTOR_BATCH_SPANS": "5000",
}
MARK = b"\xab\xcd\xef\x01\x23\x45\x67\x89"  # the first half of every trace id, replaced per request
POSTERS = 12
SECONDS = 12.0
AFTER_DRAIN = 0.25  # of the bound: what the process may keep above its baseline once drained


def llm_body(size: int) -> tuple[bytes, int]:
    """An ExportTraceServiceRequest of about `size` bytes of LLM spans (trace ids MARK + i)."""
    one = Span(
        name="chat gpt-4o-mini", kind=Span.SPAN_KIND_CLIENT, start_time_unix_nano=1_790_000_000 * 10**9
    )
    one.end_time_unix_nano = one.start_time_unix_nano + 10**9
    for key, value in (
        (n.OPERATION_NAME, n.OP_CHAT),
        (n.PROVIDER_NAME, n.PROVIDER_OPENAI),
        (n.REQUEST_MODEL, "gpt-4o-mini"),
        (n.RESPONSE_MODEL, "gpt-4o-mini-2024-07-18"),
        (n.USAGE_INPUT_TOKENS, 1234),
        (n.USAGE_OUTPUT_TOKENS, 56),
        (n.USER_ID, "u-12345"),
        (n.TENANT, "acme"),
        ("gen_ai.response.id", "chatcmpl-AbCdEfGhIjKlMnOpQrStUvWxYz"),
    ):
        v = AnyValue(int_value=value) if isinstance(value, int) else AnyValue(string_value=value)
        one.attributes.append(KeyValue(key=key, value=v))
    count = size // (one.ByteSize() + 40)  # the ids and the span's own tag and length
    message = ExportTraceServiceRequest()
    spans = message.resource_spans.add().scope_spans.add().spans
    for i in range(count):
        span = spans.add()
        span.CopyFrom(one)
        span.trace_id = MARK + i.to_bytes(8, "big")
        span.span_id = (i + 1).to_bytes(8, "big")
    data = message.SerializeToString()
    assert len(data) < size
    return data, count


class Memory:
    """The process's RSS and peak RSS (/proc/<pid>/status), in bytes."""

    def __init__(self, pid: int) -> None:
        self.path = Path(f"/proc/{pid}")

    def status(self, name: str) -> int:
        line = next(x for x in (self.path / "status").read_text().splitlines() if x.startswith(name + ":"))
        return int(line.split()[1]) * 1024

    def reset_peak(self) -> None:
        (self.path / "clear_refs").write_text("5")  # VmHWM starts again from VmRSS


@dataclass
class Load:
    acknowledged: dict[int, int] = field(default_factory=dict)  # request number -> its spans
    statuses: dict[int, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


def overload(port: int, data: bytes, count: int, seconds: float, first: int) -> Load:
    """POSTERS exporters sending `data` with new trace ids (numbered from `first`) as fast as the
    collector answers."""
    load = Load()
    numbers = iter(range(first, 1 << 62))
    deadline = time.monotonic() + seconds

    def run() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        while time.monotonic() < deadline:
            with load.lock:
                number = next(numbers)
            try:
                connection.request(
                    "POST",
                    "/v1/traces",
                    data.replace(MARK, number.to_bytes(8, "big")),
                    {"Content-Type": "application/x-protobuf"},
                )
                answer = connection.getresponse()
                answer.read()
                status = answer.status
                if answer.getheader("Connection", "").lower() == "close":
                    connection.close()
            except (OSError, http.client.HTTPException):
                connection.close()  # refused before its body was read (503, connection closed)
                status = 0
            with load.lock:
                load.statuses[status] = load.statuses.get(status, 0) + 1
                if status == 200:
                    load.acknowledged[number] = count
        connection.close()

    threads = [threading.Thread(target=run) for _ in range(POSTERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return load


def maps(pid: int) -> str:
    return Path(f"/proc/{pid}/maps").read_text()


@pytest.mark.parametrize("allocator", ["python", "jemalloc"])
def test_overload_stays_under_the_memory_bound_and_loses_nothing(
    tmp_path: Path, store_dsn: str, store: Store, monkeypatch: pytest.MonkeyPatch, allocator: str
) -> None:
    settings = {**SETTINGS, "SPENDSCOPE_COLLECTOR_ALLOCATOR": allocator}
    for name, value in settings.items():  # the collector's settings, as its process reads them
        monkeypatch.setenv(name, value)
    config = CollectorConfig.resolve(store=store_dsn)
    bound = peak_bound(config)
    data, count = llm_body(config.max_body_bytes)
    warm, warm_count = llm_body(64 * 1024)
    running = Running(tmp_path, "memory", store=store_dsn, env=settings)
    assert ("libjemalloc" in maps(running.process.pid)) == (allocator == "jemalloc")
    port = int(running.url.rsplit(":", 1)[1])
    memory = Memory(running.process.pid)

    def drained() -> bool:
        state = running.get("/healthz")
        return bool(state["queue_spans"] == 0 and state["spool_batches"] == 0)

    try:
        overload(port, warm, warm_count, 1.0, 1 << 40)  # warm up: its threads and connections made
        wait_for(drained, timeout=30)
        time.sleep(2)
        baseline = memory.status("VmRSS")
        memory.reset_peak()

        load = overload(port, data, count, SECONDS, 1)

        peak = memory.status("VmHWM") - baseline
        wait_for(drained, timeout=60)
        time.sleep(3)
        kept = memory.status("VmRSS") - baseline
        figures = (
            f"{load.statuses}; above a baseline of {baseline / MiB:.0f} MiB: peak {peak / MiB:.0f} MiB, "
        )
        figures += f"{kept / MiB:.0f} MiB once drained; bound {bound / MiB:.0f} MiB"
        print(figures)
        assert peak <= bound, figures
        assert kept <= AFTER_DRAIN * bound, figures
        assert load.statuses.get(200, 0) >= 3, figures  # it took requests, and refused 10 times as many:
        assert load.statuses.get(503, 0) + load.statuses.get(0, 0) >= 10 * load.statuses[200], figures
        [[stored]] = store.query(
            "SELECT uniqExact(TraceId, SpanId) FROM otel_traces WHERE substring(TraceId, 1, 16) IN {ids:Array(String)}",
            {"ids": [number.to_bytes(8, "big").hex() for number in load.acknowledged]},
        ).rows
        assert stored == sum(load.acknowledged.values())  # every acknowledged span is in the store
    finally:
        running.terminate()


def test_on_jemalloc_the_collector_starts_the_store_server_on_its_own_allocator(tmp_path: Path) -> None:
    """The collector runs again on jemalloc (the same process: its pid stays); the store's server it
    starts, a ClickHouse engine with an allocator of its own, inherits none of that."""
    running = Running(tmp_path, "jemalloc", env={"SPENDSCOPE_COLLECTOR_ALLOCATOR": "jemalloc"})
    try:
        state = server.running(running.data)
        assert state is not None
        assert "libjemalloc" in maps(running.process.pid)
        assert "libjemalloc" not in maps(state.pid)
        environment = Path(f"/proc/{state.pid}/environ").read_bytes().split(b"\0")
        assert not [
            v for v in environment if v.startswith((b"LD_PRELOAD=", b"PYTHONMALLOC=", b"MALLOC_CONF="))
        ]
        running.export(3)
        wait_for(lambda: running.calls() == 3, timeout=30)
    finally:
        running.terminate()
        server.stop(running.data)
