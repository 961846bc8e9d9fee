"""The fast path (ClickHouse decodes OTLP, spendscope/collector/_otlp_sql.py) against the Python
decoder: the same otel_traces rows, byte for byte (every column: doubles, bools, bytes, arrays and
maps as JSON, events, links, kind and status names, empty parent ids), the same llm_usage and usage
by hour and day; what SQL refuses goes to Python request by request; the scan agrees with the decoder;
the spool keeps raw requests; a span sent again is counted once."""

from __future__ import annotations

import random
import struct
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from spendscope import names as n
from spendscope.collector import Collector
from spendscope.collector._rawwrite import RawWritten, frame, write_requests
from spendscope.collector._scan import scan_spans
from spendscope.collector._spans import DecodeError, decode_spans
from spendscope.collector._spool import Spool, SpoolError, decode_requests, encode_requests
from spendscope.collector.bench import llm_request
from spendscope.store import Store
from spendscope.store.dsn import parse_dsn
from tests import test_collector_fast_corpus as fast_corpus
from tests.store_fixtures import fresh_store
from tests.test_collector import config, metric, request, rows, wait_for

PROTOBUF = "application/x-protobuf"
# Each table as a whole, ordered; FINAL so that background merges cannot make two sides differ.
EVER = "since = '1970-01-01 00:00:00', until = '2100-01-01 00:00:00'"
TABLES = {
    "otel_traces": "SELECT * FROM otel_traces ORDER BY TraceId, SpanId, Timestamp",
    "llm_usage": "SELECT * EXCEPT (inserted_at) FROM llm_usage FINAL ORDER BY trace_id, span_id",
    "usage by hour": f"SELECT * FROM usage(grain = 'hour', {EVER}) ORDER BY ALL",
    "usage by day": f"SELECT * FROM usage(grain = 'day', {EVER}) ORDER BY ALL",
}
CALLS = ("llm_usage", "usage by hour", "usage by day")


@pytest.fixture
def python_store(chdb_dsn: str, _chdb_admin: Store) -> Iterator[Store]:
    """A second fresh database, for the Python decoder's rows."""
    with fresh_store(chdb_dsn, _chdb_admin) as opened:
        yield opened


def dump(store: Store, table: str = "otel_traces") -> bytes:
    data: bytes = store.client.raw_query(TABLES[table] + " FORMAT TabSeparated")
    return data


def scanned(requests: Sequence[bytes]) -> tuple[list[bytes], list[int], list[bytes]]:
    """(requests with the SQL suffix, their span counts) and the requests the scan leaves to Python."""
    raw: list[bytes] = []
    spans: list[int] = []
    python: list[bytes] = []
    for data in requests:
        scan = scan_spans(data)
        decoded = decode_spans(data)
        assert (scan.keys, scan.rejected, scan.rejected_reason) == (
            decoded.keys,
            decoded.rejected,
            decoded.rejected_reason,
        )
        if scan.suffix is None:
            python.append(data)
        else:
            raw.append(data + scan.suffix)
            spans.append(len(scan.keys))
    return raw, spans, python


def by_python(store: Store, requests: Sequence[bytes]) -> None:
    records = [r for data in requests for r in decode_spans(data).records]
    store.insert_spans(records)


def by_sql(store: Store, requests: Sequence[bytes]) -> RawWritten:
    raw, spans, python = scanned(requests)
    if python:
        by_python(store, python)
    return write_requests(store, raw, spans)


def assert_same(sql: Store, python: Store, tables: Sequence[str] = ("otel_traces",)) -> None:
    for table in tables:
        assert dump(sql, table) == dump(python, table), table


def corpus(seed: int, count: int) -> list[bytes]:
    rnd = random.Random(seed)
    return [fast_corpus.request(rnd).SerializeToString() for _ in range(count)]


# --- the same rows ----------------------------------------------------------------------------------------
def test_sql_writes_the_python_decoders_rows_for_random_requests(store: Store, python_store: Store) -> None:
    requests = corpus(20261122, 60)
    written = by_sql(store, requests)
    by_python(python_store, requests)
    assert written == RawWritten()  # all of it decoded by ClickHouse
    assert_same(store, python_store)
    assert rows(store) > 250


def test_sql_writes_the_python_decoders_rows_for_sdk_and_llm_spans(store: Store, python_store: Store) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(
        resource=Resource.create({"service.name": "hr-app", "service.instance.id": "i-1"})
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("spendscope", "0.1.0", schema_url=n.SEMCONV_SCHEMA_URL)
    with (
        tracer.start_as_current_span("parent") as parent,
        tracer.start_as_current_span(
            "chat gpt-4o-mini",
            kind=SpanKind.CLIENT,
            links=[Link(parent.get_span_context(), {"why": "retry"})],
        ) as span,
    ):
        span.set_attributes(
            {
                n.OPERATION_NAME: n.OP_CHAT,
                n.REQUEST_MODEL: "gpt-4o-mini",
                n.USAGE_INPUT_TOKENS: 1234,
                n.USAGE_OUTPUT_TOKENS: 56,
                n.COST_USD: 0.000123,
                n.USER_ID: "u-<1>&",
                "tiny": 1.5e-7,
                "huge": 2.5e21,
                "whole": 100.0,
                n.REQUEST_STREAM: True,
                "gen_ai.response.finish_reasons": ("stop", "length\n"),
                "counts": (1, 2),
                "flags": (True, False),
                "ratios": (0.5, 1e-9),
            }
        )
        span.add_event("gen_ai.choice", {"index": 0, "finish": "stop"})
        span.set_status(Status(StatusCode.ERROR, "rate limited"))
    provider.shutdown()
    requests = [encode_spans(exporter.get_finished_spans()).SerializeToString(), bytes(llm_request(50)[0])]
    assert by_sql(store, requests) == RawWritten()
    by_python(python_store, requests)
    assert_same(store, python_store, list(TABLES))
    [[usage]] = store.query("SELECT count() FROM llm_usage").rows
    assert usage == 51


def test_doubles_render_as_the_python_decoder_has_them(store: Store, python_store: Store) -> None:
    rnd = random.Random(7)
    doubles = list(fast_corpus.SPECIAL_DOUBLES)
    doubles += [struct.unpack("<d", rnd.randbytes(8))[0] for _ in range(1500)]
    doubles += [rnd.uniform(-1, 1) * 10 ** rnd.randint(-30, 30) for _ in range(1500)]
    doubles += [float(f"{rnd.randint(1, 999)}e{e}") for e in range(-9, 25) for _ in range(3)]
    doubles += [float(x) for x in (1e-6, 9.999999999999999e-7, 1e21, 9.999999999999999e20)]
    message = ExportTraceServiceRequest()
    scope = message.resource_spans.add().scope_spans.add()
    for start in range(0, len(doubles), 500):
        span = scope.spans.add(trace_id=rnd.randbytes(16), span_id=rnd.randbytes(8))
        span.start_time_unix_nano = fast_corpus.BASE_NS
        for i, d in enumerate(doubles[start : start + 500]):
            span.attributes.append(KeyValue(key=f"d{i}", value=AnyValue(double_value=d)))
        array = AnyValue()
        array.array_value.values.extend(AnyValue(double_value=d) for d in doubles[start : start + 200])
        span.attributes.append(KeyValue(key="array", value=array))
    requests = [message.SerializeToString()]
    assert by_sql(store, requests) == RawWritten()
    by_python(python_store, requests)
    assert_same(store, python_store)


def varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def field(number: int, payload: bytes, wire_type: int = 2) -> bytes:
    tag = varint(number << 3 | wire_type)
    return tag + (varint(len(payload)) + payload if wire_type == 2 else payload)


def one_span(
    rnd: random.Random, *, fields: bytes = b"", attributes: bytes = b"", scope: bytes = b""
) -> bytes:
    """A request of one span: ids, name and times, then `fields`, `attributes` (encoded KeyValues)."""
    times = field(7, struct.pack("<Q", fast_corpus.BASE_NS), 1) + field(
        8, struct.pack("<Q", fast_corpus.BASE_NS + 5), 1
    )
    span = field(1, rnd.randbytes(16)) + field(2, rnd.randbytes(8)) + field(5, b"name") + times
    for kv in attributes.split(b"|") if attributes else []:
        span += field(9, kv)
    span += fields
    scope_spans = (field(1, scope) if scope else b"") + field(2, span)
    return field(1, field(1, b"") + field(2, scope_spans))


def kv(key: bytes, *values: bytes) -> bytes:
    return field(1, key) + b"".join(field(2, v) for v in values)


STRING, INT = field(1, b"x"), field(3, varint(5), 0)


# Spellings that ClickHouse reads otherwise than the Python decoder (a field twice, another wire
# type, an unknown field), values SQL does not render, and the malformed: all must end as Python has them.
SPELLINGS = {
    "name twice": {"fields": field(5, b"last")},
    "trace id twice": {"fields": field(1, b"\x07" * 16)},
    "status twice": {"fields": field(15, field(3, varint(2), 0)) + field(15, field(2, b"msg"))},
    "status message twice": {"fields": field(15, field(2, b"a") + field(2, b"b"))},
    "event name twice": {"fields": field(11, field(2, b"e1") + field(2, b"e2"))},
    "link id twice": {"fields": field(13, field(1, b"\x01" * 16) + field(1, b"\x02" * 16))},
    "scope name twice": {"scope": field(1, b"s1") + field(1, b"s2")},
    "kind as bytes": {"fields": field(6, b"\x02")},
    "key twice": {"attributes": field(1, b"k1") + field(1, b"k2") + field(2, STRING)},
    "value twice": {"attributes": kv(b"k", STRING, field(1, b"y"))},
    "value twice, two types": {"attributes": kv(b"k", STRING, INT)},
    "two oneof fields": {"attributes": kv(b"k", STRING + INT)},
    "string of another wire type": {"attributes": kv(b"k", field(1, b"abcd", 5))},
    "key of another wire type": {"attributes": field(1, varint(5), 0) + field(2, STRING)},
    "unknown field in a KeyValue": {"attributes": kv(b"k", STRING) + field(9, varint(1), 0)},
    "unknown field in a value": {"attributes": kv(b"k", STRING + field(20, b"abcd", 5))},
    "long varint": {"attributes": kv(b"k", field(3, b"\x85\x80\x00", 0))},
    "empty string spelled out": {"attributes": field(1, b"") + field(2, STRING)},
    "array twice": {"attributes": kv(b"k", field(5, field(1, STRING)) + field(5, field(1, INT)))},
    "duplicate keys": {"attributes": kv(b"k", STRING) + b"|" + kv(b"k", INT)},
    "array in an array": {"attributes": kv(b"k", field(5, field(1, field(5, field(1, STRING)))))},
    "map in a map": {"attributes": kv(b"k", field(6, field(1, kv(b"m", field(6, b"")))))},
    "map key twice": {"attributes": kv(b"k", field(6, field(1, kv(b"a", STRING)) + field(1, kv(b"a", INT))))},
    "control character in an array": {"attributes": kv(b"k", field(5, field(1, field(1, b"a\x01b"))))},
    "line separator in a map key": {
        "attributes": kv(b"k", field(6, field(1, kv("\u2028".encode(), STRING))))
    },
}


def test_what_sql_reads_otherwise_goes_to_python_request_by_request(
    store: Store, python_store: Store
) -> None:
    rnd = random.Random(3)
    good = corpus(11, 3)
    odd = [one_span(rnd, **parts) for parts in SPELLINGS.values()]  # type: ignore[arg-type]
    requests = good[:1] + odd + good[1:]
    raw, spans, python = scanned(requests)
    assert len(python) == 8  # the span, event, link, status and scope spellings: seen by the scan
    written = write_requests(store, raw, spans)
    assert written == RawWritten(python_requests=len(SPELLINGS) - 8)  # the others: refused by SQL
    by_python(store, python)
    by_python(python_store, requests)
    assert_same(store, python_store)
    # the good requests went through SQL on their own
    assert dump(store).count(b"\n") == rows(python_store)


def test_a_request_python_cannot_decode_is_dropped_and_counted(store: Store) -> None:
    rnd = random.Random(5)
    bad = one_span(rnd, attributes=kv(b"k", field(1, b"\xff\xfe")))  # not UTF-8: Python answers 400
    with pytest.raises(DecodeError):
        decode_spans(bad)
    good = corpus(12, 1)
    raw, spans, _ = scanned(good)
    bad_scan = scan_spans(bad)
    assert bad_scan.suffix is not None and len(bad_scan.keys) == 1  # the scan does not read values
    written = write_requests(store, [bad + bad_scan.suffix, *raw], [1, *spans])
    assert written == RawWritten(python_requests=0, dropped_requests=1, dropped_spans=1)
    assert rows(store) == sum(spans)


def test_a_replayed_batch_is_counted_once(store: Store) -> None:
    requests = [bytes(llm_request(300, seed=s)[0]) for s in (1, 2)]
    raw, spans, _ = scanned(requests)
    write_requests(store, raw, spans)
    before = {table: dump(store, table) for table in CALLS}
    write_requests(store, raw, spans)  # a replay
    write_requests(store, raw[1:], spans[1:])  # part of it again
    assert {table: dump(store, table) for table in CALLS} == before
    assert store.query(f"SELECT sum(calls) FROM usage(grain = 'day', {EVER})").rows == [[600]]
    assert rows(store) == 1500  # the raw spans keep every copy


# --- the scan ---------------------------------------------------------------------------------------------
def test_the_scan_agrees_with_the_decoder() -> None:
    from tests.test_collector_decode import random_request

    rnd = random.Random(99)
    for _ in range(150):
        scanned([random_request(rnd).SerializeToString(), fast_corpus.request(rnd).SerializeToString()])
    valid = fast_corpus.request(random.Random(8), spans=10).SerializeToString()
    for cut in range(1, len(valid), max(len(valid) // 200, 1)):
        try:
            decode_spans(valid[:cut])
        except DecodeError:
            continue
        assert scan_spans(valid[:cut]).keys == decode_spans(valid[:cut]).keys
    for body in (b"\x0a\x05\x12\x03", b"\x0b"):
        with pytest.raises(DecodeError):
            scan_spans(body)


# --- the collector ----------------------------------------------------------------------------------------
@pytest.fixture
def collector(tmp_path: Path, store_dsn: str, store: Store) -> Iterator[Collector]:
    """A collector that sends even small batches through SQL."""
    with Collector(config(tmp_path, store_dsn, sql_min_spans=0), store=store) as running:
        yield running


def post(collector: Collector, body: bytes) -> int:
    status, _, _ = request(collector.url, "POST", "/v1/traces", body, {"Content-Type": PROTOBUF})
    return status


def test_duplicates_in_and_across_requests_are_stored_once(collector: Collector, store: Store) -> None:
    data, _ = llm_request(40, seed=4)
    message = ExportTraceServiceRequest()
    message.ParseFromString(bytes(data))
    spans = message.resource_spans[0].scope_spans[0].spans
    twice = ExportTraceServiceRequest()
    twice.CopyFrom(message)
    twice.resource_spans[0].scope_spans[0].spans.append(spans[0])  # a span twice in one request
    assert post(collector, twice.SerializeToString()) == 200
    assert post(collector, message.SerializeToString()) == 200  # a retry: all duplicates
    del message.resource_spans[0].scope_spans[0].spans[20:]
    fresh = ExportTraceServiceRequest()
    fresh.CopyFrom(message)
    fresh.resource_spans[0].scope_spans[0].spans[0].span_id = b"\x09" * 8
    assert post(collector, fresh.SerializeToString()) == 200  # 1 new span among 19 seen
    wait_for(lambda: metric(collector, "spendscope_collector_written_spans_total") == 41 + 40 + 20)
    assert store.query("SELECT count(), uniqExact(SpanId) FROM otel_traces").rows == [[101, 41]]
    assert store.query("SELECT count() FROM llm_usage FINAL").rows == [[41]]
    assert store.query(f"SELECT sum(calls) FROM usage(grain = 'hour', {EVER})").rows == [[41]]
    assert metric(collector, "spendscope_collector_python_decoded_requests_total") == 0


def test_raw_batches_spool_as_requests_and_replay_counted_once(
    tmp_path: Path, store_dsn: str, store: Store
) -> None:
    requests = [bytes(llm_request(30, seed=s)[0]) for s in (5, 6)]
    raw, spans, _ = scanned(requests)
    spool = Spool(tmp_path / "spool")
    spool.write_requests(raw, spans)
    write_requests(store, raw, spans)  # it had reached the store before the crash
    spool.write_requests(raw, spans)  # and was spooled twice
    with Collector(config(tmp_path, store_dsn, sql_min_spans=0), store=store) as restarted:
        wait_for(lambda: restarted.spool.files == 0)
        assert metric(restarted, "spendscope_collector_replayed_spans_total") == 120
        assert metric(restarted, "spendscope_collector_python_decoded_requests_total") == 0
    assert rows(store) == 180  # raw spans: every copy
    assert store.query("SELECT count() FROM llm_usage FINAL").rows == [[60]]
    assert store.query(f"SELECT sum(calls) FROM usage(grain = 'day', {EVER})").rows == [[60]]


def test_spool_format_two_round_trip_and_damage(tmp_path: Path) -> None:
    raw, spans, _ = scanned(corpus(21, 3))
    assert decode_requests(encode_requests(raw, spans)) == (raw, spans)
    spool = Spool(tmp_path / "spool")
    path = spool.write_requests(raw, spans)
    batch = spool.read(path)
    assert (batch.requests, batch.spans, batch.span_count) == (raw, spans, sum(spans))
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(SpoolError, match="checksum"):
        spool.read(path)
    assert (tmp_path / "spool" / "corrupt" / path.name).exists()


def test_small_batches_are_decoded_in_python_when_written(
    tmp_path: Path, store_dsn: str, store: Store
) -> None:
    with Collector(config(tmp_path, store_dsn, sql_min_spans=100), store=store) as running:
        assert post(running, bytes(llm_request(25)[0])) == 200
        wait_for(lambda: rows(store) == 25)
        assert metric(running, "spendscope_collector_python_decoded_requests_total") == 1
        assert post(running, bytes(llm_request(150, seed=2)[0])) == 200
        wait_for(lambda: rows(store) == 175)
        assert metric(running, "spendscope_collector_python_decoded_requests_total") == 1


def test_the_python_path_stays_available(tmp_path: Path, store_dsn: str, store: Store) -> None:
    settings = config(tmp_path, store_dsn, sql_decode=False, writers=1)
    with Collector(settings, store=store) as running:
        assert post(running, bytes(llm_request(25)[0])) == 200
        wait_for(lambda: rows(store) == 25)
    assert not list((tmp_path / "spool").glob("*.batch"))


# --- a server DSN -----------------------------------------------------------------------------------------
class RecordingClient:
    server_version = "26.9.2"

    def __init__(self) -> None:
        self.commands: list[tuple[str, Any]] = []

    def command(self, sql: str, data: Any = None) -> None:
        self.commands.append((sql, data))


def test_on_a_server_the_requests_are_the_body_of_an_insert_select_from_input() -> None:
    client = RecordingClient()
    store = Store(parse_dsn("http://u:p@ch:8123/spendscope"), client)  # type: ignore[arg-type]
    raw, spans, _ = scanned(corpus(22, 2))
    write_requests(store, raw, spans)
    [(sql, data)] = client.commands
    assert data == frame(raw)
    assert sql.startswith("INSERT INTO otel_traces (`Timestamp`, `TraceId`")
    assert "insert_deduplication_token" not in sql and "format_schema_source = 'string'" in sql
    assert "FROM input('resource_spans Array(" in sql and sql.endswith(" FORMAT Protobuf")
