"""The collector in-process, on the session's store server (a fresh database per test): the stock OTLP
exporters in, ClickHouse rows and Prometheus text out, and every way a request can go wrong."""

from __future__ import annotations

import csv
import gzip
import http.client
import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from google.rpc import status_pb2  # type: ignore[import-untyped]
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from spendscope import names as n
from spendscope.collector import Collector, CollectorConfig, CollectorError
from spendscope.collector._collector import WAL_DIR
from spendscope.collector._spool import Spool
from spendscope.collector._wal import Wal
from spendscope.store import Store, formatting, reports
from tests.store_fixtures import llm_record, priced_at, span_record

PROTOBUF = "application/x-protobuf"


# --- helpers ----------------------------------------------------------------------------------------------
def wait_for(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def rows(store: Store) -> int:
    """Raw spans stored (a span sent again is stored again: the calls count it once)."""
    return int(store.query("SELECT count() FROM otel_traces").rows[0][0])


def calls(store: Store) -> int:
    """Calls the store counts: one per span however often it arrived."""
    return int(store.query("SELECT count() FROM llm_usage FINAL").rows[0][0])


def make_spans(count: int, *, service: str = "hr-app", genai: bool = True) -> list[ReadableSpan]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("spendscope", "0.1.0")
    for i in range(count):
        with tracer.start_as_current_span("chat gpt-4o-mini", kind=SpanKind.CLIENT) as span:
            if genai:
                span.set_attributes(
                    {
                        n.OPERATION_NAME: n.OP_CHAT,
                        n.PROVIDER_NAME: n.PROVIDER_OPENAI,
                        n.REQUEST_MODEL: "gpt-4o-mini",
                        n.RESPONSE_MODEL: "gpt-4o-mini-2024-07-18",
                        n.USAGE_INPUT_TOKENS: 100 + i,
                        n.USAGE_OUTPUT_TOKENS: 20,
                        n.COST_USD: 0.000027,
                        n.USER_ID: f"u-{i % 3}",
                        n.USAGE_STATE: n.USAGE_STATE_REPORTED,
                    }
                )
    provider.shutdown()
    return list(exporter.get_finished_spans())


def payload(spans: Sequence[ReadableSpan]) -> bytes:
    data: bytes = encode_spans(spans).SerializeToString()
    return data


def request(
    url: str, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def raw_request(url: str, head: str) -> tuple[int, bytes]:
    """Headers only, no body: answers that must come before the body is read."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head.replace("\n", "\r\n").encode() + b"\r\n")
        data = b""
        while chunk := sock.recv(65536):  # the server closes the connection: the body is unread
            data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, data


def status_message(body: bytes, kind: str = PROTOBUF) -> str:
    if kind == PROTOBUF:
        status = status_pb2.Status()
        status.ParseFromString(body)
        return str(status.message)
    return str(json.loads(body)["message"])


def config(tmp_path: Path, store_dsn: str, **changes: Any) -> CollectorConfig:
    base = CollectorConfig(
        listen=("127.0.0.1", 0),
        store=store_dsn,
        spool=tmp_path / "spool",
        flush_interval=0.05,
        batch_spans=1000,
        queue_spans=10_000,
    )
    return base.with_(**changes)


@pytest.fixture
def collector(tmp_path: Path, store_dsn: str, store: Store) -> Iterator[Collector]:
    with Collector(config(tmp_path, store_dsn), store=store) as running:
        yield running


def metric(collector: Collector, name: str, **labels: str) -> float:
    value = collector.registry.get_sample_value(name, labels or None)
    return 0.0 if value is None else value


# --- spans in -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("compression", [Compression.NoCompression, Compression.Gzip])
def test_stock_exporter_spans_land_in_the_store_as_the_contrib_exporter_writes_them(
    collector: Collector, store: Store, compression: Compression
) -> None:
    spans = make_spans(5) + make_spans(2, service="batch-job", genai=False)  # non-GenAI spans are kept raw
    exporter = OTLPSpanExporter(endpoint=collector.url + "/v1/traces", compression=compression)
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    exporter.shutdown()
    wait_for(lambda: rows(store) == 7)
    stored = store.query(
        "SELECT SpanId, SpanName, SpanKind, ServiceName, SpanAttributes, ResourceAttributes, Duration,"
        " StatusCode, ScopeName FROM otel_traces ORDER BY SpanId"
    ).rows
    expected = sorted((span_record(s) for s in spans), key=lambda r: r.span_id)
    assert stored == [
        [
            r.span_id,
            r.span_name,
            r.span_kind,
            r.service_name,
            r.span_attributes,
            r.resource_attributes,
            r.duration_ns,
            r.status_code,
            r.scope_name,
        ]
        for r in expected
    ]
    # the rows show before the insert's answer reaches the collector, which then counts them
    wait_for(lambda: metric(collector, "spendscope_collector_written_spans_total") == 7)
    usage = store.query("SELECT count() FROM llm_usage").rows[0][0]
    assert usage == 5  # only the GenAI spans are costed


def test_json_and_compressed_bodies_over_plain_http(collector: Collector, store: Store) -> None:
    document = {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "curl"}}]},
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": "5B8EFFF798038103D269B633813FC60C",
                                "spanId": "EEE19B7EC3C1B174",
                                "name": "by hand",
                                "kind": 3,
                                "startTimeUnixNano": "1544712660000000000",
                                "endTimeUnixNano": "1544712661000000000",
                                "attributes": [{"key": "n", "value": {"intValue": "3"}}],
                            }
                        ]
                    }
                ],
            }
        ]
    }
    body = gzip.compress(json.dumps(document).encode())
    status, headers, answer = request(
        collector.url,
        "POST",
        "/v1/traces",
        body,
        {"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert (status, headers["content-type"], json.loads(answer)) == (200, "application/json", {})
    deflated = zlib.compress(payload(make_spans(2)))
    status, headers, answer = request(
        collector.url,
        "POST",
        "/v1/traces",
        deflated,
        {"Content-Type": PROTOBUF, "Content-Encoding": "deflate"},
    )
    assert (status, headers["content-type"], answer) == (200, PROTOBUF, b"")
    wait_for(lambda: rows(store) == 3)
    assert store.query(
        "SELECT SpanKind, SpanAttributes FROM otel_traces WHERE TraceId = {t:String}",
        {"t": "5b8efff798038103d269b633813fc60c"},
    ).rows == [["Client", {"n": "3"}]]


def test_invalid_spans_are_a_partial_success(collector: Collector, store: Store) -> None:
    data = encode_spans(make_spans(3))
    data.resource_spans[0].scope_spans[0].spans[1].trace_id = b"\x01\x02"
    status, _, answer = request(
        collector.url, "POST", "/v1/traces", data.SerializeToString(), {"Content-Type": PROTOBUF}
    )
    response = ExportTraceServiceResponse()
    response.ParseFromString(answer)
    assert status == 200 and response.partial_success.rejected_spans == 1
    assert "16-byte trace_id" in response.partial_success.error_message
    wait_for(lambda: rows(store) == 2)


def test_bad_requests_get_clear_statuses_and_the_collector_keeps_serving(
    collector: Collector, store: Store
) -> None:
    url = collector.url
    limit = collector.config.max_body_bytes
    cases: list[tuple[str, str, bytes, dict[str, str], int, str]] = [
        ("POST", "/v1/traces", b"\x0a\x05\x12", {"Content-Type": PROTOBUF}, 400, "malformed protobuf"),
        ("POST", "/v1/traces", b"{oops", {"Content-Type": "application/json"}, 400, "malformed JSON"),
        ("POST", "/v1/metrics", b"\xff\xff", {"Content-Type": PROTOBUF}, 400, "malformed protobuf"),
        ("POST", "/v1/traces", b"hello", {"Content-Type": "text/plain"}, 415, "unsupported Content-Type"),
        (
            "POST",
            "/v1/traces",
            b"junk",
            {"Content-Type": PROTOBUF, "Content-Encoding": "gzip"},
            400,
            "bad gzip body",
        ),
        (
            "POST",
            "/v1/traces",
            gzip.compress(b"\0" * (limit + 1)),
            {"Content-Type": PROTOBUF, "Content-Encoding": "gzip"},
            413,
            "once decompressed",
        ),
        (
            "POST",
            "/v1/traces",
            b"",
            {"Content-Type": PROTOBUF, "Content-Encoding": "br"},
            415,
            "Content-Encoding",
        ),
        ("GET", "/v1/traces", b"", {}, 405, "takes POST"),
        ("POST", "/metrics", b"", {}, 405, "takes GET"),
    ]
    for method, path, body, headers, expected, message in cases:
        status, got_headers, answer = request(url, method, path, body, headers)
        kind = PROTOBUF if headers.get("Content-Type") == PROTOBUF else "application/json"
        assert status == expected and message in status_message(answer, kind), (path, headers, answer)
        assert got_headers["content-type"] == kind
    status, answer = raw_request(
        url, f"POST /v1/traces HTTP/1.1\nHost: x\nContent-Type: {PROTOBUF}\nContent-Length: {limit + 1}\n"
    )
    assert status == 413 and b"over the limit" in answer  # refused before reading a byte of the body
    status, answer = raw_request(
        url,
        f"POST /v1/traces HTTP/1.1\nHost: x\nContent-Type: {PROTOBUF}\nExpect: 100-continue\n"
        f"Content-Length: {limit + 1}\n",
    )
    assert status == 413  # not "100 Continue": the client need not send the body at all
    status, answer = raw_request(url, f"POST /v1/traces HTTP/1.1\nHost: x\nContent-Type: {PROTOBUF}\n")
    assert status == 411
    status, _, answer = request(url, "GET", "/nowhere")
    assert status == 404 and "no such endpoint" in json.loads(answer)["message"]
    # still serving
    status, _, _ = request(url, "POST", "/v1/traces", payload(make_spans(1)), {"Content-Type": PROTOBUF})
    assert status == 200
    wait_for(lambda: rows(store) == 1)
    assert metric(collector, "spendscope_collector_requests_total", path="/v1/traces", code="400") == 3


def test_bearer_token_guards_every_endpoint(tmp_path: Path, store_dsn: str, store: Store) -> None:
    with Collector(config(tmp_path, store_dsn, token="s3cret"), store=store) as guarded:
        for method, path in [
            ("POST", "/v1/traces"),
            ("POST", "/v1/metrics"),
            ("GET", "/metrics"),
            ("GET", "/healthz"),
            ("GET", "/api/usage/report?by=user"),
            ("GET", "/nowhere"),
        ]:
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
                status, got, _ = request(
                    guarded.url, method, path, b"", {"Content-Type": PROTOBUF, **headers}
                )
                assert status == 401 and got["www-authenticate"].startswith("Bearer"), (path, headers)
        exporter = OTLPSpanExporter(
            endpoint=guarded.url + "/v1/traces", headers={"Authorization": "Bearer s3cret"}
        )
        assert exporter.export(make_spans(2)) is SpanExportResult.SUCCESS
        wait_for(lambda: rows(store) == 2)
        status, _, _ = request(guarded.url, "GET", "/metrics", headers={"Authorization": "Bearer s3cret"})
        assert status == 200


# --- exactly once ---------------------------------------------------------------------------------------
def test_a_retried_export_is_counted_once(collector: Collector, store: Store) -> None:
    spans = make_spans(20)
    body = payload(spans)
    for _ in range(3):
        status, _, _ = request(collector.url, "POST", "/v1/traces", body, {"Content-Type": PROTOBUF})
        assert status == 200
    exporter = OTLPSpanExporter(endpoint=collector.url + "/v1/traces")
    assert exporter.export(spans[5:15] + make_spans(1)) is SpanExportResult.SUCCESS  # overlapping batch
    wait_for(lambda: metric(collector, "spendscope_collector_written_spans_total") == 3 * 20 + 11)
    time.sleep(0.2)
    assert (rows(store), calls(store)) == (71, 21)  # every copy of the raw spans; each call once
    window = "since = '1970-01-01 00:00:00', until = '2100-01-01 00:00:00'"
    assert store.query(f"SELECT sum(calls) FROM usage(grain = 'hour', {window})").rows == [[21]]


def test_duplicates_in_and_across_requests_are_stored_once(collector: Collector, store: Store) -> None:
    message = encode_spans(make_spans(40))
    spans = message.resource_spans[0].scope_spans[0].spans
    twice = ExportTraceServiceRequest()
    twice.CopyFrom(message)
    twice.resource_spans[0].scope_spans[0].spans.append(spans[0])  # a span twice in one request
    post = {"Content-Type": PROTOBUF}
    assert request(collector.url, "POST", "/v1/traces", twice.SerializeToString(), post)[0] == 200
    assert (
        request(collector.url, "POST", "/v1/traces", message.SerializeToString(), post)[0] == 200
    )  # a retry
    del message.resource_spans[0].scope_spans[0].spans[20:]
    message.resource_spans[0].scope_spans[0].spans[0].span_id = b"\x09" * 8
    assert (
        request(collector.url, "POST", "/v1/traces", message.SerializeToString(), post)[0] == 200
    )  # 1 new of 20
    # the collector writes every copy it is sent; the store counts each span once
    wait_for(lambda: metric(collector, "spendscope_collector_written_spans_total") == 41 + 40 + 20)
    assert store.query("SELECT count(), uniqExact(SpanId) FROM otel_traces").rows == [[101, 41]]
    assert store.query("SELECT count() FROM llm_usage FINAL").rows == [[41]]
    window = "since = '1970-01-01 00:00:00', until = '2100-01-01 00:00:00'"
    assert store.query(f"SELECT sum(calls) FROM usage(grain = 'hour', {window})").rows == [[41]]


def test_concurrent_exporters_all_land_exactly_once(collector: Collector, store: Store) -> None:
    batches = [make_spans(40, service=f"app-{i % 3}") for i in range(12)]

    def send(mine: list[list[ReadableSpan]]) -> None:
        exporter = OTLPSpanExporter(endpoint=collector.url + "/v1/traces")
        for batch in mine:
            assert exporter.export(batch) is SpanExportResult.SUCCESS
        exporter.shutdown()

    threads = [threading.Thread(target=send, args=(batches[i::4],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wait_for(lambda: rows(store) == 480)
    time.sleep(0.2)
    assert store.query("SELECT count(), uniqExact(SpanId) FROM otel_traces").rows == [[480, 480]]


# --- backpressure ---------------------------------------------------------------------------------------
def test_a_full_queue_answers_503_with_retry_after_and_the_exporter_retries(
    tmp_path: Path, store_dsn: str, store: Store
) -> None:
    settings = config(tmp_path, store_dsn, queue_spans=10, batch_spans=10, flush_interval=3600)
    with Collector(settings, store=store) as small:
        status, _, _ = request(
            small.url, "POST", "/v1/traces", payload(make_spans(6)), {"Content-Type": PROTOBUF}
        )
        assert status == 200
        status, headers, answer = request(
            small.url, "POST", "/v1/traces", payload(make_spans(6)), {"Content-Type": PROTOBUF}
        )
        assert status == 503 and headers["retry-after"] == "1" and "queue full" in status_message(answer)
        assert metric(small, "spendscope_collector_rejected_spans_total", reason="queue_full") == 6
        assert metric(small, "spendscope_collector_queue_spans") == 6
    assert rows(store) == 6  # stopping flushed the queue

    settings = config(tmp_path, store_dsn, queue_spans=10, batch_spans=10, flush_interval=0.3)
    with Collector(settings, store=store) as small:
        status, _, _ = request(
            small.url, "POST", "/v1/traces", payload(make_spans(6)), {"Content-Type": PROTOBUF}
        )
        assert status == 200
        started = time.monotonic()
        exporter = OTLPSpanExporter(endpoint=small.url + "/v1/traces")
        assert exporter.export(make_spans(6)) is SpanExportResult.SUCCESS  # 503, waits Retry-After, then 200
        assert time.monotonic() - started >= 0.9
        assert metric(small, "spendscope_collector_rejected_spans_total", reason="queue_full") == 6
    assert rows(store) == 18


# --- spool ----------------------------------------------------------------------------------------------
def test_a_spool_left_by_an_earlier_run_is_replayed_once(
    tmp_path: Path, store_dsn: str, store: Store
) -> None:
    at = datetime.now(UTC) - timedelta(hours=1)
    first = [llm_record(at, user="u-1") for _ in range(30)]
    second = [llm_record(at, user="u-2") for _ in range(5)]
    spool = Spool(tmp_path / "spool")
    spool.write(first)
    store.insert_spans(first)  # it had reached the store before the crash
    spool.write(first)  # and was spooled twice
    spool.write(second)
    with Collector(config(tmp_path, store_dsn), store=store) as restarted:
        wait_for(lambda: restarted.spool.files == 0)
        assert metric(restarted, "spendscope_collector_replayed_spans_total") == 65
    assert (rows(store), calls(store)) == (30 + 65, 35)  # the raw spans keep every copy


def test_requests_a_killed_run_logged_are_written_once_at_the_next_start(
    tmp_path: Path, store_dsn: str, store: Store
) -> None:
    """What a run killed after answering 200 left in its write-ahead log: some of it already in the
    store, some not, and a last frame cut short (a request never answered)."""
    written, unwritten = make_spans(4), make_spans(6)
    wal = Wal(tmp_path / "spool" / WAL_DIR)
    wal.open()
    for spans in (written, unwritten):
        wal.append(payload(spans), PROTOBUF, spans=len(spans))
    store.insert_spans([span_record(span) for span in written])
    [segment] = wal.directory.glob("*.wal")
    with segment.open("ab") as log:
        log.write(b"\x10\x00\x00")  # the start of a frame: the process died in the middle of it
    with Collector(config(tmp_path, store_dsn), store=store) as restarted:
        wait_for(lambda: restarted.spool.files == 0 and calls(store) == 10)
        assert metric(restarted, "spendscope_collector_replayed_spans_total") == 10
    assert list(wal.directory.glob("*.wal")) == []  # spooled, written, and a clean stop leaves nothing


def test_a_clean_stop_leaves_an_empty_write_ahead_log(collector: Collector, store: Store) -> None:
    exporter = OTLPSpanExporter(endpoint=collector.url + "/v1/traces")
    assert exporter.export(make_spans(25)) is SpanExportResult.SUCCESS
    exporter.shutdown()
    wait_for(lambda: calls(store) == 25 and collector.wal.pending_spans == 0)
    collector.stop()
    assert list(collector.wal.directory.glob("*.wal")) == []


def test_only_the_spans_the_store_refuses_are_set_aside_and_requeue_puts_them_back(
    tmp_path: Path, store_dsn: str, store: Store
) -> None:
    at = datetime.now(UTC) - timedelta(hours=1)
    good = [llm_record(at) for _ in range(7)]
    bad = [replace(llm_record(at), timestamp_ns=2**64) for _ in range(2)]  # no DateTime64(9) holds it
    spool = Spool(tmp_path / "spool")
    spool.write([*good[:3], bad[0], *good[3:6], bad[1]])
    spool.write(good[6:])
    with Collector(config(tmp_path, store_dsn), store=store) as running:
        wait_for(lambda: running.spool.files == 0)
        [reason] = running.spool.refused()
        assert metric(running, "spendscope_collector_refused_spans_total", reason=reason) == 2
        assert metric(running, "spendscope_collector_replayed_spans_total") == 7
        assert running.pipeline.store_up
        _, _, body = request(running.url, "GET", "/healthz")
        health = json.loads(body)
        assert (health["status"], health["refused_spans"]) == ("degraded", {reason: 2})
    assert rows(store) == 7 and calls(store) == 7
    [aside] = (tmp_path / "spool" / "refused").glob("*.batch")
    assert json.loads(aside.read_bytes().split(b"\n", 1)[0])["reason"] == reason
    assert sorted(r.span_id for r in Spool(tmp_path / "spool").read(aside).records) == sorted(
        r.span_id for r in bad
    )

    done = subprocess.run(
        [sys.executable, "-m", "spendscope", "spool", "requeue", "--spool", str(tmp_path / "spool")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "1 refused file(s) put back" in done.stdout
    assert len(Spool(tmp_path / "spool").paths()) == 1 and not list(aside.parent.glob("*.batch"))
    with Collector(config(tmp_path, store_dsn), store=store) as again:  # still refused: set aside again
        wait_for(lambda: again.spool.files == 0)
        assert sum(again.spool.refused().values()) == 2
    assert calls(store) == 7


# --- reports --------------------------------------------------------------------------------------------
def test_reports_api_answers_what_the_store_reports(
    collector: Collector, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPENDSCOPE_MARGIN_PERCENT", "10")  # for the tenants without a margin of their own
    now = datetime.now(UTC)
    at = now - timedelta(hours=2)
    records = [llm_record(at, user="u-1", tenant="acme", endpoint="cv") for _ in range(3)]
    records += [llm_record(at, user="u/2 é", tenant="globex", endpoint="chat", **priced_at("0.5"))]
    store.insert_spans(records)
    since, until = now - timedelta(days=1), now + timedelta(minutes=1)

    def get(path: str) -> tuple[int, Any]:
        status, headers, body = request(collector.url, "GET", path)
        return status, (json.loads(body) if headers["content-type"] == "application/json" else body.decode())

    expected = reports.report(store, by="user", since=since, until=until).to_json()
    query = (
        f"since={since.isoformat().replace('+00:00', 'Z')}&until={until.isoformat().replace('+00:00', 'Z')}"
    )
    assert get(f"/api/usage/report?by=user&{query}&format=json") == (200, expected)
    as_csv = formatting.to_csv(reports.report(store, by="user", since=since, until=until))
    assert get(f"/api/usage/report?by=user&{query}&format=csv") == (200, as_csv)
    acme = reports.report(store, by="endpoint", since=since, until=until, where={"tenant": "acme"}).to_json()
    assert get(f"/api/usage/endpoints?{query}&where=tenant=acme") == (200, acme)
    status, summary = get(f"/api/usage/summary?{query}")
    assert status == 200 and summary["total"]["calls"] == 4 and summary["total"]["cost_usd"] == "0.500081"
    status, user = get(f"/api/usage/users/u%2F2%20%C3%A9?month={at:%Y-%m}")
    assert status == 200 and user["user"] == "u/2 é" and user["rows"][0][1] == 1
    status, daily = get(f"/api/usage/daily?{query}&by=tenant")
    assert status == 200 and {row[1] for row in daily["rows"]} == {"acme", "globex"}
    status, csv_text = get(f"/api/usage/export.csv?{query}")
    exported = io.BytesIO()
    reports.write_calls_csv(store, exported, since=since, until=until, default_margin=Decimal(10))
    assert status == 200 and csv_text == exported.getvalue().decode()
    calls = list(csv.DictReader(io.StringIO(csv_text)))
    assert len(calls) == 4 and {(c["cost_usd"], c["billed_usd"]) for c in calls} == {
        ("0.000027", "0.0000297"),
        ("0.5", "0.55"),
    }
    for bad, message in [
        ("/api/usage/report?since=30d", "by is required"),
        ("/api/usage/report?by=colour", "unknown --by 'colour'"),
        ("/api/usage/report?by=user&since=yesterday", "bad --since 'yesterday'"),
        ("/api/usage/report?by=user&where=tenant", "bad --where 'tenant'"),
        ("/api/usage/report?by=user&format=xml", "bad format"),
        ("/api/usage/daily?colour=red", "unknown parameter(s) colour"),
        ("/api/usage/users/u-1?month=2026-13", "bad month"),
    ]:
        status, answer = get(bad)
        assert status == 400 and message in answer["error"], (bad, answer)


def test_a_collector_claims_its_spool_and_a_second_one_is_refused(
    tmp_path: Path, store_dsn: str, store: Store
) -> None:
    """Two collectors on one spool would replay, and delete, the same files; any number may write to
    one store."""
    running = Collector(config(tmp_path, store_dsn), store=store).start()
    try:
        health = json.loads(urllib.request.urlopen(running.url + "/healthz", timeout=5).read())
        assert health["store"] == "up" and health["spool_batches"] == 0
        with pytest.raises(CollectorError) as refused:
            Collector(config(tmp_path, store_dsn)).start()
        assert str(refused.value) == (
            f"another spendscope collector (pid {os.getpid()}) uses the spool {tmp_path / 'spool'}: stop it, "
            "or give this one a spool of its own (--spool)"
        )
        with Collector(config(tmp_path, store_dsn, spool=tmp_path / "other")) as second:
            assert exported(second, 2) and exported(running, 3)
            wait_for(lambda: rows(store) == 5)
    finally:
        running.stop()
    with Collector(config(tmp_path, store_dsn), store=store):  # let go on stop
        pass


def exported(collector: Collector, count: int) -> bool:
    exporter = OTLPSpanExporter(endpoint=collector.url + "/v1/traces")
    try:
        return exporter.export(make_spans(count)) is SpanExportResult.SUCCESS
    finally:
        exporter.shutdown()
