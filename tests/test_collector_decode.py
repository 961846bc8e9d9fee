"""The collector's pure parts: OTLP requests to rows (random requests against a reference
conversion, SDK spans against the store's idea of a stored SDK span, values as pcommon renders
them, spans the store cannot hold), OTLP/JSON and compression, the spool format, settings."""

from __future__ import annotations

import base64
import contextlib
import gzip
import json
import random
import zlib
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1 import trace_pb2
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from spendscope import names as n
from spendscope.collector import CollectorConfig
from spendscope.collector._otlp import BadRequest, decompress, media_type, metrics_request, traces_request
from spendscope.collector._spans import decode_spans, request_spans
from spendscope.collector._spool import Spool, SpoolError, decode, encode
from spendscope.collector._values import format_double
from spendscope.settings import ConfigurationError
from spendscope.store.records import SpanEvent, SpanLink, SpanRecord
from tests.store_fixtures import exporter_string, span_record

KINDS = ("Unspecified", "Internal", "Server", "Client", "Producer", "Consumer")
CODES = ("Unset", "Ok", "Error")


# --- a reference conversion, field by field ---------------------------------------------------------------
def _raw(v: AnyValue) -> Any:
    which = v.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [_raw(x) for x in v.array_value.values]
    if which == "kvlist_value":
        return {kv.key: _raw(kv.value) for kv in v.kvlist_value.values}
    if which == "bytes_value":
        return base64.b64encode(v.bytes_value).decode()
    return getattr(v, which)


def _string(v: AnyValue) -> str:
    raw = _raw(v)
    if raw is None:
        return ""
    if isinstance(raw, list | dict):
        return json.dumps(raw, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    return exporter_string(raw)


def _attrs(kvs: Any) -> dict[str, str]:
    return {kv.key: _string(kv.value) for kv in kvs}


def _hex(b: bytes) -> str:
    return b.hex() if any(b) else ""


def reference(request: ExportTraceServiceRequest) -> tuple[list[SpanRecord], int]:
    records: list[SpanRecord] = []
    rejected = 0
    for rs in request.resource_spans:
        resource = _attrs(rs.resource.attributes)
        for ss in rs.scope_spans:
            for s in ss.spans:
                bad_ids = (
                    len(s.trace_id) != 16 or len(s.span_id) != 8 or not any(s.trace_id) or not any(s.span_id)
                )
                times = [s.start_time_unix_nano, s.end_time_unix_nano, *(e.time_unix_nano for e in s.events)]
                if bad_ids or max(times) >= 2**63 or (s.parent_span_id and len(s.parent_span_id) != 8):
                    rejected += 1
                    continue
                records.append(
                    SpanRecord(
                        timestamp_ns=s.start_time_unix_nano,
                        trace_id=s.trace_id.hex(),
                        span_id=s.span_id.hex(),
                        parent_span_id=_hex(s.parent_span_id),
                        trace_state=s.trace_state,
                        span_name=s.name,
                        span_kind=KINDS[s.kind] if 0 <= s.kind < 6 else "",
                        service_name=resource.get("service.name", ""),
                        resource_attributes=resource,
                        scope_name=ss.scope.name,
                        scope_version=ss.scope.version,
                        span_attributes=_attrs(s.attributes),
                        duration_ns=max(s.end_time_unix_nano - s.start_time_unix_nano, 0),
                        status_code=CODES[s.status.code] if 0 <= s.status.code < 3 else "",
                        status_message=s.status.message,
                        events=[SpanEvent(e.time_unix_nano, e.name, _attrs(e.attributes)) for e in s.events],
                        links=[
                            SpanLink(
                                _hex(lk.trace_id), _hex(lk.span_id), lk.trace_state, _attrs(lk.attributes)
                            )
                            for lk in s.links
                        ],
                    )
                )
    return records, rejected


def _value(rnd: random.Random, depth: int = 0) -> AnyValue:
    kind = rnd.choice(
        ["s", "s", "s", "i", "i", "d", "b", "bytes", "arr", "kv", "empty"][: 11 if depth < 2 else 8]
    )
    if kind == "s":
        return AnyValue(
            string_value=rnd.choice(["", "chat", "gpt-4o-mini", "ünïcødé ✓", "a" * rnd.randint(1, 300)])
        )
    if kind == "i":
        return AnyValue(
            int_value=rnd.choice([0, 1, -1, 443, 2**63 - 1, -(2**63), rnd.randint(-(10**12), 10**12)])
        )
    if kind == "d":
        return AnyValue(double_value=rnd.choice([0.0, -0.0, 1.5, 0.000123, 1e-7, 2.5e21, 1e16, rnd.random()]))
    if kind == "b":
        return AnyValue(bool_value=rnd.random() < 0.5)
    if kind == "bytes":
        return AnyValue(bytes_value=rnd.randbytes(rnd.randint(0, 20)))
    if kind == "arr":
        value = AnyValue()
        value.array_value.values.extend(
            AnyValue(string_value=rnd.choice(["stop", "length"]))
            if rnd.random() < 0.7
            else AnyValue(int_value=7)
            for _ in range(rnd.randint(0, 3))
        )
        return value
    if kind == "kv":
        value = AnyValue()
        value.kvlist_value.values.extend(
            KeyValue(key=f"k{i}", value=AnyValue(string_value="v")) for i in range(rnd.randint(0, 3))
        )
        return value
    return AnyValue()


def _kvs(rnd: random.Random, count: int) -> list[KeyValue]:
    return [KeyValue(key=f"attr.{rnd.randint(0, 30)}", value=_value(rnd)) for _ in range(count)]


def _span_id(rnd: random.Random, size: int) -> bytes:
    roll = rnd.random()
    if roll < 0.03:
        return b""
    if roll < 0.05:
        return bytes(size)
    if roll < 0.07:
        return rnd.randbytes(size + 1)
    return rnd.randbytes(size)


def random_request(rnd: random.Random) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    for _ in range(rnd.randint(1, 3)):
        rs = request.resource_spans.add()
        rs.resource.attributes.extend(_kvs(rnd, rnd.randint(0, 4)))
        if rnd.random() < 0.8:
            rs.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value="svc")))
        for _ in range(rnd.randint(1, 3)):
            ss = rs.scope_spans.add()
            ss.scope.name = rnd.choice(["", "spendscope", "other"])
            ss.scope.version = rnd.choice(["", "1.0"])
            ss.scope.attributes.extend(_kvs(rnd, rnd.randint(0, 2)))
            for _ in range(rnd.randint(0, 6)):
                s = trace_pb2.Span(
                    trace_id=_span_id(rnd, 16),
                    span_id=_span_id(rnd, 8),
                    parent_span_id=rnd.choice([b"", rnd.randbytes(8), bytes(8)]),
                    trace_state=rnd.choice(["", "a=b,c=d"]),
                    name=rnd.choice(["chat gpt-4o", "", "ünï"]),
                    kind=rnd.randint(0, 5),
                    start_time_unix_nano=rnd.randint(0, 2**63),
                    end_time_unix_nano=rnd.randint(0, 2**63),
                    flags=rnd.randint(0, 2**32 - 1),
                )
                s.attributes.extend(_kvs(rnd, rnd.randint(0, 25)))
                s.status.code = rnd.randint(0, 2)
                s.status.message = rnd.choice(["", "boom"])
                for _ in range(rnd.randint(0, 2)):
                    event = s.events.add(time_unix_nano=rnd.randint(0, 2**63), name="ev")
                    event.attributes.extend(_kvs(rnd, rnd.randint(0, 3)))
                for _ in range(rnd.randint(0, 2)):
                    link = s.links.add(
                        trace_id=rnd.randbytes(16), span_id=rnd.randbytes(8), trace_state="x=1"
                    )
                    link.attributes.extend(_kvs(rnd, rnd.randint(0, 2)))
                extra = b""
                if rnd.random() < 0.2:  # an unknown field and a repeated scalar (the last one wins)
                    extra = b"\xf8\x06\x01" + b"\x2a\x04last"
                parsed = trace_pb2.Span()
                parsed.ParseFromString(s.SerializeToString() + extra)
                ss.spans.append(parsed)
    return request


def test_random_requests_become_the_rows_the_exporter_writes() -> None:
    rnd = random.Random(20261122)
    total = 0
    for _ in range(150):
        request = random_request(rnd)
        decoded = decode_spans(request.SerializeToString())
        expected, rejected = reference(request)
        assert decoded.records == expected
        assert decoded.rejected == rejected
        assert decoded.keys == [bytes.fromhex(r.trace_id + r.span_id) for r in expected]
        total += len(expected)
    assert total > 500


def test_decoder_writes_what_the_store_expects_for_sdk_spans() -> None:
    """SDK spans (all attribute types, events, links, status) through the stock OTLP encoder."""
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
                n.USAGE_INPUT_TOKENS: 1234,
                n.COST_USD: 0.000123,
                "tiny": 1.5e-7,
                "huge": 2.5e21,
                "whole": 100.0,
                n.REQUEST_STREAM: True,
                "gen_ai.response.finish_reasons": ("stop", "length"),
                "counts": (1, 2),
                "flags": (True, False),
            }
        )
        span.add_event("gen_ai.choice", {"index": 0})
        span.set_status(Status(StatusCode.ERROR, "rate limited"))
    provider.shutdown()
    spans = exporter.get_finished_spans()
    decoded = decode_spans(encode_spans(spans).SerializeToString())
    assert decoded.rejected == 0
    assert sorted(decoded.records, key=lambda r: r.span_id) == sorted(
        (span_record(s) for s in spans), key=lambda r: r.span_id
    )
    chat = next(r for r in decoded.records if r.span_name.startswith("chat"))
    assert chat.span_kind == "Client" and chat.status_code == "Error"
    assert chat.span_attributes["tiny"] == "1.5e-7" and chat.span_attributes["whole"] == "100"


def test_nested_values_render_as_go_json() -> None:
    def one(value: AnyValue) -> str:
        request = ExportTraceServiceRequest()
        span = (
            request.resource_spans.add()
            .scope_spans.add()
            .spans.add(trace_id=b"\x01" * 16, span_id=b"\x02" * 8)
        )
        span.attributes.append(KeyValue(key="v", value=value))
        return decode_spans(request.SerializeToString()).records[0].span_attributes["v"]

    array = AnyValue()
    array.array_value.values.extend([AnyValue(double_value=1e-7), AnyValue(double_value=2.0), AnyValue()])
    assert one(array) == "[1e-7,2,null]"
    kv = AnyValue()
    kv.kvlist_value.values.extend(
        [
            KeyValue(key="z", value=AnyValue(string_value="<a&b>")),
            KeyValue(key="a", value=AnyValue(bytes_value=b"\x00")),
        ]
    )
    assert one(kv) == '{"a":"AA==","z":"\\u003ca\\u0026b\\u003e"}'
    assert one(AnyValue(bytes_value=b"hi")) == "aGk="
    assert one(AnyValue()) == ""


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.0, "0"),
        (-0.0, "-0"),
        (1.0, "1"),
        (0.1, "0.1"),
        (1e-6, "0.000001"),
        (1.2345e-5, "0.000012345"),
        (1.5e-7, "1.5e-7"),
        (1e-10, "1e-10"),
        (1e16, "10000000000000000"),
        (123456789012345680000.0, "123456789012345680000"),
        (1e21, "1e+21"),
        (-2.5e-10, "-2.5e-10"),
        (5e-324, "5e-324"),
        (float("inf"), "json: unsupported value: +Inf"),
        (float("nan"), "json: unsupported value: NaN"),
    ],
)
def test_doubles_render_like_pcommon(value: float, text: str) -> None:
    assert format_double(value) == text


def test_malformed_protobuf_is_a_400_never_a_crash() -> None:
    valid = random_request(random.Random(7)).SerializeToString()
    for cut in range(1, len(valid), max(len(valid) // 300, 1)):
        with contextlib.suppress(BadRequest):
            decode_spans(valid[:cut])
    rnd = random.Random(3)
    for _ in range(300):
        with contextlib.suppress(BadRequest):
            decode_spans(rnd.randbytes(rnd.randint(1, 200)))
    for body in (
        b"\x0a\x05\x12\x03",  # a length running past the end
        b"\x0b",  # a group wire type
        b"\x0a\x0b\x12\x09\x12\x07\x4a\x05\x0a\x03\xff\xfe\x00",  # an attribute key that is not UTF-8
    ):
        with pytest.raises(BadRequest) as info:
            decode_spans(body)
        assert info.value.status == 400 and "malformed protobuf" in info.value.message


# --- OTLP/JSON, content types, compression ----------------------------------------------------------------
def test_json_spans_decode_like_protobuf() -> None:
    document = {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "hr-app"}}]},
                "scopeSpans": [
                    {
                        "scope": {"name": "spendscope", "version": "0.1.0"},
                        "spans": [
                            {
                                "traceId": "5B8EFFF798038103D269B633813FC60C",
                                "spanId": "EEE19B7EC3C1B174",
                                "parentSpanId": "",
                                "name": "chat gpt-4o-mini",
                                "kind": 3,
                                "startTimeUnixNano": "1544712660000000000",
                                "endTimeUnixNano": 1544712661000000000,
                                "attributes": [
                                    {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "12"}},
                                    {"key": "spendscope.cost.usd", "value": {"doubleValue": 0.0001}},
                                ],
                                "status": {"code": 2, "message": "x"},
                                "futureField": {"ignored": True},
                            }
                        ],
                    }
                ],
            }
        ]
    }
    decoded = request_spans(traces_request(json.dumps(document).encode(), "application/json"))
    (record,) = decoded.records
    assert record.trace_id == "5b8efff798038103d269b633813fc60c" and record.span_id == "eee19b7ec3c1b174"
    assert (record.span_kind, record.status_code, record.duration_ns) == ("Client", "Error", 1_000_000_000)
    assert record.span_attributes == {"gen_ai.usage.input_tokens": "12", "spendscope.cost.usd": "0.0001"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "malformed JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz"}]}]}]}', "is not hex"),
        (b'{"resourceSpans": "nope"}', "malformed OTLP/JSON"),
    ],
)
def test_bad_json_is_a_400_with_the_reason(body: bytes, message: str) -> None:
    with pytest.raises(BadRequest) as info:
        traces_request(body, "application/json")
    assert info.value.status == 400 and message in info.value.message


def test_json_metrics_parse() -> None:
    body = {
        "resourceMetrics": [
            {"scopeMetrics": [{"metrics": [{"name": "m", "gauge": {"dataPoints": [{"asInt": "5"}]}}]}]}
        ]
    }
    request = metrics_request(json.dumps(body).encode(), "application/json")
    assert request.resource_metrics[0].scope_metrics[0].metrics[0].gauge.data_points[0].as_int == 5


def test_content_types() -> None:
    assert media_type("application/x-protobuf") == "application/x-protobuf"
    assert media_type("Application/JSON; charset=utf-8") == "application/json"
    for bad in (None, "text/plain", "application/grpc"):
        with pytest.raises(BadRequest) as info:
            media_type(bad)
        assert info.value.status == 415


def test_decompression_with_limits() -> None:
    data = b"x" * 10_000
    assert decompress(gzip.compress(data), "gzip", 20_000) == data
    assert decompress(zlib.compress(data), "deflate", 20_000) == data
    assert decompress(gzip.compress(data[:10]) + gzip.compress(data[10:]), "gzip", 20_000) == data
    assert decompress(data, None, 20_000) == data
    cases = [
        (gzip.compress(b"\0" * 10_000_000), "gzip", 413),  # a bomb stops at the limit
        (b"not gzip at all", "gzip", 400),
        (gzip.compress(data)[:-12], "gzip", 400),  # truncated
        (data, "br", 415),
    ]
    for body, encoding, status in cases:
        with pytest.raises(BadRequest) as info:
            decompress(body, encoding, 20_000)
        assert info.value.status == status


# --- spool -----------------------------------------------------------------------------------------
def _records(count: int, seed: int = 1) -> list[SpanRecord]:
    request = ExportTraceServiceRequest()
    rnd = random.Random(seed)
    scope = request.resource_spans.add().scope_spans.add()
    for _ in range(count):
        span = scope.spans.add(trace_id=rnd.randbytes(16), span_id=rnd.randbytes(8), name="s")
        span.attributes.extend(_kvs(rnd, 5))
        span.events.add(time_unix_nano=5, name="e").attributes.extend(_kvs(rnd, 1))
        span.links.add(trace_id=rnd.randbytes(16), span_id=rnd.randbytes(8))
    return decode_spans(request.SerializeToString()).records


def test_spool_round_trip_and_damage(tmp_path: Path) -> None:
    records = _records(20)
    assert decode(encode(records)) == records
    spool = Spool(tmp_path / "spool")
    first = spool.write(records[:10])
    spool.write(records[10:])
    assert spool.paths()[0] == first and spool.files == 2 and spool.bytes > 0
    batch = spool.read(first)
    assert batch.records == records[:10]
    assert batch.keys == [bytes.fromhex(r.trace_id + r.span_id) for r in records[:10]]
    spool.remove(first)
    damaged = spool.paths()[0]
    damaged.write_bytes(damaged.read_bytes()[:-5])
    with pytest.raises(SpoolError, match="checksum"):
        spool.read(damaged)
    assert spool.paths() == [] and (tmp_path / "spool" / "corrupt" / damaged.name).exists()
    assert spool.files == 0
    (tmp_path / "spool" / ".tmp-interrupted.batch").write_bytes(b"partial")
    assert Spool(tmp_path / "spool").files == 0  # an interrupted write was never acknowledged


# --- settings ---------------------------------------------------------------------------------------------
def test_settings_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPENDSCOPE_COLLECTOR_QUEUE_SPANS", "500")
    monkeypatch.setenv("SPENDSCOPE_COLLECTOR_LISTEN", "0.0.0.0:9999")
    monkeypatch.setenv("SPENDSCOPE_COLLECTOR_BATCH_SPANS", "")  # empty: as if unset
    config = CollectorConfig.resolve(queue_spans=70_000, store="/tmp/x", writers=None)
    assert (config.queue_spans, config.listen, config.batch_spans) == (70_000, ("0.0.0.0", 9999), 50_000)
    assert config.writers == 2  # None: not given, so the default
    assert config.store_dir == Path("/tmp/x") and config.spool_dir == Path("/tmp/x-spool")
    assert CollectorConfig.resolve(store="http://u:p@ch:8123/db", queue_spans=70_000).store_dir is None


@pytest.mark.parametrize(
    ("env", "explicit", "message"),
    [
        (
            {"SPENDSCOPE_COLLECTOR_LISTEN": "4318"},
            {},
            "listen (environment variable SPENDSCOPE_COLLECTOR_LISTEN='4318'): must be HOST:PORT",
        ),
        (
            {},
            {"listen": "localhost:99999"},
            "collector setting listen (argument listen='localhost:99999'): port must be between 0 and 65535",
        ),
        ({}, {"queue_spans": "lots"}, "queue_spans (argument queue_spans='lots'): must be a whole number"),
        (
            {"SPENDSCOPE_COLLECTOR_FLUSH_INTERVAL": "0"},
            {},
            "flush_interval (environment variable SPENDSCOPE_COLLECTOR_FLUSH_INTERVAL='0'): must be more than 0 and at most 3600",
        ),
        (
            {},
            {"max_body_bytes": "10"},
            "max_body_bytes (argument max_body_bytes='10'): must be at least 1024",
        ),
        ({}, {"store": "ftp://x"}, "store (argument store='ftp://x'): bad store DSN"),
        ({}, {"token": " "}, "token (argument token=' '): must not be empty"),
        (
            {},
            {"flush_interval": "soon"},
            "flush_interval (argument flush_interval='soon'): must be a duration",
        ),
        ({}, {"queue_spans": 10, "batch_spans": 20}, "batch_spans (20) must not exceed queue_spans (10)"),
    ],
)
def test_bad_settings_name_the_setting(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], explicit: dict[str, Any], message: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError) as info:
        CollectorConfig.resolve(**explicit)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_exported_names() -> None:
    import spendscope.collector

    assert sorted(spendscope.collector.__all__) == [
        "Collector",
        "CollectorConfig",
        "CollectorError",
    ]
