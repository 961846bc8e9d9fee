"""What one OTLP request may hold (spendscope/collector/_limits.py): every span is checked when it
arrives, a span over a limit is refused with partial_success and the rest of its request taken, and
nothing acknowledged fails later because of what came with it. The real collector on the real store."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from spendscope import names as n
from spendscope.collector import Collector, CollectorConfig
from spendscope.collector._limits import Limits
from spendscope.collector._spans import request_spans
from spendscope.settings import ConfigurationError
from spendscope.store import Store
from tests.test_collector import PROTOBUF, calls, config, metric, request, rows, status_message, wait_for

JSON = "application/json"


# --- requests made by hand (no SDK would send these) --------------------------------------------------------
def nested(depth: int) -> AnyValue:
    """A string inside `depth` arrays."""
    value = AnyValue(string_value="x")
    for _ in range(depth):
        outer = AnyValue()
        outer.array_value.values.append(value)
        value = outer
    return value


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def field(tag: int, payload: bytes) -> bytes:
    return bytes([tag]) + varint(len(payload)) + payload


def nested_protobuf(depth: int) -> bytes:
    """An ExportTraceServiceRequest of one span whose attribute is a string inside `depth` arrays, as
    bytes (protobuf's Python classes refuse to build one past their own depth)."""
    value = field(0x0A, b"x")  # AnyValue.string_value
    for _ in range(depth):
        value = field(0x2A, field(0x0A, value))  # AnyValue.array_value(ArrayValue.values)
    span = Span(trace_id=b"\x01" * 16, span_id=b"\x02" * 8, name="deep").SerializeToString()
    span += field(0x4A, field(0x0A, b"deep") + field(0x12, value))  # Span.attributes(KeyValue)
    return field(0x0A, field(0x12, field(0x12, span)))  # resource_spans, scope_spans, spans


def nested_json(depth: int) -> str:
    """The same as OTLP/JSON text (deeper than Python's json module writes)."""
    return '{"arrayValue":{"values":[' * depth + '{"stringValue":"x"}' + "]}}" * depth


def llm_span(span: Span, i: int, tenant: str) -> Span:
    span.trace_id = (i + 1).to_bytes(16, "big")
    span.span_id = (i + 1).to_bytes(8, "big")
    span.name = "chat gpt-4o-mini"
    span.kind = Span.SPAN_KIND_CLIENT
    span.start_time_unix_nano = 1_790_000_000_000_000_000 + i
    span.end_time_unix_nano = span.start_time_unix_nano + 1000
    for key, value in (
        (n.OPERATION_NAME, AnyValue(string_value=n.OP_CHAT)),
        (n.PROVIDER_NAME, AnyValue(string_value=n.PROVIDER_OPENAI)),
        (n.REQUEST_MODEL, AnyValue(string_value="gpt-4o-mini")),
        (n.RESPONSE_MODEL, AnyValue(string_value="gpt-4o-mini-2024-07-18")),
        (n.USAGE_INPUT_TOKENS, AnyValue(int_value=100)),
        (n.USAGE_OUTPUT_TOKENS, AnyValue(int_value=20)),
        (n.USAGE_STATE, AnyValue(string_value=n.USAGE_STATE_REPORTED)),
        (n.TENANT, AnyValue(string_value=tenant)),
    ):
        span.attributes.append(KeyValue(key=key, value=value))
    return span


def traces(first: int, count: int, tenant: str, service: str = "hr-app") -> ExportTraceServiceRequest:
    message = ExportTraceServiceRequest()
    rs = message.resource_spans.add()
    rs.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value=service)))
    scope = rs.scope_spans.add()
    scope.scope.name = "spendscope"
    for i in range(first, first + count):
        llm_span(scope.spans.add(), i, tenant)
    return message


def poisoned(i: int, how: str) -> ExportTraceServiceRequest:
    """A request of one GenAI span made hostile in one way (each a limit of _limits.py)."""
    message = traces(i, 1, "evil")
    span = message.resource_spans[0].scope_spans[0].spans[0]
    if how == "nested 40 deep":  # as deep as protobuf itself parses
        span.attributes.append(KeyValue(key="deep", value=nested(40)))
    elif how == "129 attributes":
        span.attributes.extend(KeyValue(key=f"k{j}", value=AnyValue(int_value=j)) for j in range(121))
    elif how == "a value of 65537 characters":
        span.attributes.append(KeyValue(key="prompt", value=AnyValue(string_value="x" * 65_537)))
    elif how == "an empty key":
        span.attributes.append(KeyValue(key="", value=AnyValue(string_value="x")))
    elif how == "129 events":
        span.events.extend(Span.Event(name="e", time_unix_nano=1) for _ in range(129))
    elif how == "a map of 129 entries":
        value = AnyValue()
        value.kvlist_value.values.extend(
            KeyValue(key=f"k{j}", value=AnyValue(int_value=j)) for j in range(129)
        )
        span.attributes.append(KeyValue(key="map", value=value))
    elif how == "a resource over the limits":
        message.resource_spans[0].resource.attributes.append(KeyValue(key="big", value=nested(9)))
    else:
        raise AssertionError(how)
    return message


POISONS = [
    "nested 40 deep",
    "129 attributes",
    "a value of 65537 characters",
    "an empty key",
    "129 events",
    "a map of 129 entries",
    "a resource over the limits",
]


def post(url: str, path: str, body: bytes, kind: str = PROTOBUF) -> tuple[int, bytes]:
    status, _, answer = request(url, "POST", path, body, {"Content-Type": kind})
    return status, answer


def partial(answer: bytes) -> tuple[int, str]:
    response = ExportTraceServiceResponse()
    response.ParseFromString(answer)
    return response.partial_success.rejected_spans, response.partial_success.error_message


@pytest.fixture
def collector(tmp_path: Path, store_dsn: str, store: Store) -> Iterator[Collector]:
    with Collector(config(tmp_path, store_dsn), store=store) as running:
        yield running


# --- poison among valid requests ----------------------------------------------------------------------------
def test_a_poison_request_among_valid_ones_harms_none_of_them(
    collector: Collector, store: Store, tmp_path: Path
) -> None:
    """Four clients send 2,200 valid spans between hostile requests; each hostile span is refused when
    it arrives, every valid one is stored, and no batch is refused or spooled."""
    answers: dict[str, tuple[int, bytes]] = {}
    lock = threading.Lock()

    def client(c: int) -> None:
        for r in range(11):  # 11 requests of 50 spans per client: 4 x 550 = 2,200
            body = traces(c * 10_000 + r * 50, 50, f"tenant-{c}").SerializeToString()
            status, answer = post(collector.url, "/v1/traces", body)
            with lock:
                answers[f"valid {c}/{r}"] = (status, answer)
            if r < len(POISONS):
                how = POISONS[(c + r) % len(POISONS)]
                status, answer = post(
                    collector.url, "/v1/traces", poisoned(90_000 + c * 100 + r, how).SerializeToString()
                )
                with lock:
                    answers[f"{how} {c}/{r}"] = (status, answer)

    threads = [threading.Thread(target=client, args=(c,)) for c in range(4)]
    for thread in threads:
        thread.start()
    # the 400-level nesting of the report that led here, as OTLP/JSON and as protobuf
    span = {"traceId": "0" * 31 + "1", "spanId": "0" * 15 + "1", "name": "deep", "attributes": ["DEEP"]}
    document = json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]})
    document = document.replace('"DEEP"', '{"key": "deep", "value": ' + nested_json(400) + "}")
    deep_json = post(collector.url, "/v1/traces", document.encode(), JSON)
    deep_proto = post(collector.url, "/v1/traces", nested_protobuf(400))
    # as deep as the parsers go: parsed, then refused by the collector's own limit
    not_as_deep = json.loads(document.replace(nested_json(400), nested_json(40)))
    json_40 = post(collector.url, "/v1/traces", json.dumps(not_as_deep).encode(), JSON)
    proto_40 = post(collector.url, "/v1/traces", nested_protobuf(40))
    for thread in threads:
        thread.join()

    assert deep_json == (400, b'{"code": 3, "message": "malformed JSON: nested too deeply"}')
    assert deep_proto[0] == 400 and "malformed protobuf" in status_message(deep_proto[1])
    deeper = "attribute 'deep' nests arrays and maps deeper than the limit of 8"
    assert json_40 == (
        200,
        json.dumps({"partialSuccess": {"rejectedSpans": "1", "errorMessage": deeper}}).encode(),
    )
    assert proto_40[0] == 200 and partial(proto_40[1]) == (1, deeper)
    for name, (status, answer) in answers.items():
        assert status == 200, name
        if name.startswith("valid"):
            assert partial(answer) == (0, ""), name
        else:
            rejected, why = partial(answer)
            assert rejected == 1 and why, name
    assert len(answers) == 44 + 28
    wait_for(lambda: rows(store) == 2200, timeout=30)
    wait_for(lambda: calls(store) == 2200, timeout=30)
    tenants = store.query("SELECT tenant, count() FROM llm_usage FINAL GROUP BY tenant ORDER BY tenant").rows
    assert tenants == [[f"tenant-{c}", 550] for c in range(4)]
    assert metric(collector, "spendscope_collector_written_spans_total") == 2200
    assert metric(collector, "spendscope_collector_rejected_spans_total", reason="invalid") == 30
    assert metric(collector, "spendscope_collector_refused_batches_total") == 0
    assert metric(collector, "spendscope_collector_store_errors_total") == 0
    assert metric(collector, "spendscope_collector_spooled_spans_total") == 0
    assert not list((tmp_path / "spool").rglob("*.batch"))


def test_a_refused_span_leaves_the_rest_of_its_request(collector: Collector, store: Store) -> None:
    message = traces(0, 5, "acme")
    spans = message.resource_spans[0].scope_spans[0].spans
    spans[2].attributes.append(KeyValue(key="deep", value=nested(9)))
    status, answer = post(collector.url, "/v1/traces", message.SerializeToString())
    assert status == 200
    assert partial(answer) == (1, "attribute 'deep' nests arrays and maps deeper than the limit of 8")
    wait_for(lambda: rows(store) == 4)
    stored = {r[0] for r in store.query("SELECT SpanId FROM otel_traces").rows}
    assert stored == {s.span_id.hex() for i, s in enumerate(spans) if i != 2}


# --- each limit, at its edge -------------------------------------------------------------------------------
def one_span(**build: Any) -> ExportTraceServiceRequest:
    message = traces(0, 1, "acme")
    span = message.resource_spans[0].scope_spans[0].spans[0]
    del span.attributes[:]
    for key, value in build.get("attributes", {}).items():
        span.attributes.append(KeyValue(key=key, value=value))
    span.events.extend(Span.Event(name="e", time_unix_nano=1) for _ in range(build.get("events", 0)))
    span.links.extend(
        Span.Link(trace_id=b"\x01" * 16, span_id=b"\x02" * 8) for _ in range(build.get("links", 0))
    )
    if "name" in build:
        span.name = build["name"]
    return message


def ints(count: int) -> dict[str, AnyValue]:
    return {f"k{j}": AnyValue(int_value=j) for j in range(count)}


def array(count: int) -> AnyValue:
    value = AnyValue()
    value.array_value.values.extend(AnyValue(int_value=j) for j in range(count))
    return value


@pytest.mark.parametrize(
    ("at_the_limit", "over_it", "reason"),
    [
        (
            {"attributes": ints(128)},
            {"attributes": ints(129)},
            "span has 129 attributes, over the limit of 128",
        ),
        (
            {"attributes": {"v": AnyValue(string_value="é" * 65_536)}},
            {"attributes": {"v": AnyValue(string_value="é" * 65_537)}},
            "attribute 'v' is longer than 65536 characters",
        ),
        (
            {"attributes": {"v": AnyValue(bytes_value=b"\x00" * 65_536)}},
            {"attributes": {"v": AnyValue(bytes_value=b"\x00" * 65_537)}},
            "attribute 'v' is longer than 65536 bytes",
        ),
        (
            {"attributes": {"v": nested(8)}},
            {"attributes": {"v": nested(9)}},
            "attribute 'v' nests arrays and maps deeper than the limit of 8",
        ),
        (
            {"attributes": {"v": array(128)}},
            {"attributes": {"v": array(129)}},
            "attribute 'v' has over 128 entries",
        ),
        ({"events": 128}, {"events": 129}, "span has 129 events, over the limit of 128"),
        ({"links": 128}, {"links": 129}, "span has 129 links, over the limit of 128"),
        ({"name": "n" * 65_536}, {"name": "n" * 65_537}, "span name longer than 65536 characters"),
        (
            {"attributes": {"k" * 65_536: AnyValue()}},
            {"attributes": {"k" * 65_537: AnyValue()}},
            "span has an attribute key longer than 65536 characters",
        ),
        (
            {"attributes": {"k": AnyValue()}},
            {"attributes": {"": AnyValue()}},
            "span has an attribute with an empty key",
        ),
    ],
)
def test_each_limit_takes_what_is_at_it_and_refuses_what_is_over(
    at_the_limit: dict[str, Any], over_it: dict[str, Any], reason: str
) -> None:
    taken = request_spans(one_span(**at_the_limit))
    assert (len(taken.records), taken.rejected) == (1, 0)
    refused = request_spans(one_span(**over_it))
    assert (len(refused.records), refused.rejected, refused.rejected_reason) == (0, 1, reason)


def test_a_resource_or_scope_over_the_limits_refuses_its_spans() -> None:
    message = traces(0, 3, "acme")
    message.resource_spans[0].resource.attributes.extend(
        KeyValue(key=f"r{j}", value=AnyValue(int_value=j)) for j in range(128)
    )
    second = traces(10, 2, "acme").resource_spans[0]
    second.scope_spans[0].scope.attributes.append(KeyValue(key="", value=AnyValue(int_value=1)))
    message.resource_spans.append(second)
    message.resource_spans.extend(traces(20, 4, "acme").resource_spans)
    decoded = request_spans(message)
    assert len(decoded.records) == 4 and decoded.rejected == 5
    assert decoded.rejected_reason == "scope has an attribute with an empty key"


def test_limits_are_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    environ = {
        "SPENDSCOPE_COLLECTOR_ATTRIBUTE_COUNT_LIMIT": "16",
        "SPENDSCOPE_COLLECTOR_ATTRIBUTE_VALUE_LENGTH_LIMIT": "1024",
        "SPENDSCOPE_COLLECTOR_ATTRIBUTE_DEPTH_LIMIT": "3",
        "SPENDSCOPE_COLLECTOR_SPAN_EVENT_COUNT_LIMIT": "0",
        "SPENDSCOPE_COLLECTOR_SPAN_LINK_COUNT_LIMIT": "1",
        "SPENDSCOPE_COLLECTOR_MAX_DECODED_BYTES": "2097152",
    }
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    limits = CollectorConfig.resolve().limits
    assert limits == Limits(16, 1024, 3, 0, 1, 2_097_152)
    assert request_spans(one_span(attributes=ints(17)), limits).rejected == 1
    assert request_spans(one_span(attributes={"v": nested(4)}), limits).rejected == 1
    assert request_spans(one_span(events=1), limits).rejected == 1
    for name in environ:
        monkeypatch.delenv(name)
    assert CollectorConfig.resolve().limits == Limits()
    for name, value, why in (
        ("SPENDSCOPE_COLLECTOR_ATTRIBUTE_DEPTH_LIMIT", "33", "must be between 1 and 32"),
        ("SPENDSCOPE_COLLECTOR_ATTRIBUTE_COUNT_LIMIT", "0", "must be at least 1"),
        ("SPENDSCOPE_COLLECTOR_MAX_DECODED_BYTES", "lots", "must be a whole number"),
    ):
        with monkeypatch.context() as env:
            env.setenv(name, value)
            with pytest.raises(ConfigurationError, match=why):
                CollectorConfig.resolve()


# --- memory: what one request may take once decoded ---------------------------------------------------------
def test_a_request_too_large_once_decoded_is_a_413(tmp_path: Path, store_dsn: str, store: Store) -> None:
    """Small on the wire, large once decoded (empty events cost 2 bytes each on the wire and ~150 in
    memory): refused with 413 before it is kept, as an OTLP/JSON body of empty objects is."""
    small = config(tmp_path, store_dsn, max_decoded_bytes=4 * 1024 * 1024)
    with Collector(small, store=store) as running:
        fine = traces(0, 500, "acme")
        status, answer = post(running.url, "/v1/traces", fine.SerializeToString())
        assert (status, partial(answer)) == (200, (0, ""))
        message = traces(1000, 200, "acme")
        for span in message.resource_spans[0].scope_spans[0].spans:
            span.events.extend(Span.Event() for _ in range(128))
        body = message.SerializeToString()
        assert len(body) < 256 * 1024
        status, answer = post(running.url, "/v1/traces", body)
        assert status == 413
        assert "request too large once decoded (over 4194304 bytes)" in status_message(answer)
        # spans of 2 bytes: protobuf's parser would make ~180 bytes of each, all at once
        tiny = field(0x0A, field(0x12, b"\x12\x00" * 100_000))
        status, answer = post(running.url, "/v1/traces", tiny)
        assert status == 413 and "too large once decoded" in status_message(answer)
        points = field(0x0A, field(0x12, field(0x12, field(0x2A, b"\x0a\x00" * 100_000))))  # gauge points
        status, answer = post(running.url, "/v1/metrics", points)
        assert status == 413 and "send fewer points per request" in status_message(answer)
        objects = b'{"resourceSpans":[], "x": [' + b",".join([b"{}"] * 200_000) + b"]}"
        status, answer = post(running.url, "/v1/traces", objects, JSON)
        assert status == 413 and "too large once decoded" in status_message(answer, JSON)
        wait_for(lambda: rows(store) == 500)


def test_the_span_by_span_decoder_reads_fields_in_any_order() -> None:
    """protobuf lets a message's fields come in any order and repeat (merged): a scope or resource
    after some of its spans, given twice, refused after spans were read; rows as a whole parse makes."""
    from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope
    from opentelemetry.proto.resource.v1.resource_pb2 import Resource

    from spendscope.collector._spans import decode_spans

    spans = [llm_span(Span(), i, "acme").SerializeToString() for i in range(3)]
    name = InstrumentationScope(name="late").SerializeToString()
    version = InstrumentationScope(version="2.0").SerializeToString()
    service = Resource(attributes=kvs_of(("service.name", "svc"))).SerializeToString()
    bad_scope = InstrumentationScope(attributes=kvs_of(("", "x"))).SerializeToString()
    scopes = [
        field(0x12, spans[0]) + field(0x0A, name) + field(0x12, spans[1]) + field(0x0A, version),
        field(0x0A, version) + field(0x12, spans[2]),
        field(0x12, spans[0]) + field(0x0A, bad_scope) + field(0x12, spans[1]),  # refused, both spans
        field(0x0A, bad_scope) + field(0x12, spans[0]) + field(0x12, spans[1]) + field(0x12, spans[2]),
    ]
    body = field(0x0A, b"".join(field(0x12, s) for s in scopes) + field(0x0A, service))
    parsed = ExportTraceServiceRequest.FromString(body)
    whole = request_spans(parsed)
    assert [(r.scope_name, r.scope_version, r.service_name) for r in whole.records] == [
        ("late", "2.0", "svc"),
        ("late", "2.0", "svc"),
        ("", "2.0", "svc"),
    ]
    assert whole.rejected == 5
    by_span = decode_spans(body)
    assert (by_span.records, by_span.keys, by_span.rejected, by_span.rejected_reason) == (
        whole.records,
        whole.keys,
        whole.rejected,
        whole.rejected_reason,
    )


def kvs_of(*pairs: tuple[str, str]) -> list[KeyValue]:
    return [KeyValue(key=k, value=AnyValue(string_value=v)) for k, v in pairs]


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"\x00" * 8, "field number 0"),
        (b"\x95\x80\x80\x80\x10\x00\x00\x00\x00", "field number 536870914"),
        (b"\x0b", "wire type 3 (groups are not OTLP)"),
        (b"\x0a\x05\x12\x03", "a length runs past its message"),
        (b"\x08" + b"\xff" * 11, "a varint longer than 64 bits"),
        (b"\x08" + b"\xff" * 4, "a varint runs past its message"),
        (b"\x09\x00", "a fixed-size field runs past its message"),
        (b"\x0a\x03\x1a\x01\xff", "a schema_url that is not UTF-8"),
        (b"\x0a\x05\x12\x03\x1a\x01\xff", "a schema_url that is not UTF-8"),
    ],
)
def test_what_protobuf_refuses_around_the_spans_is_a_400(body: bytes, why: str) -> None:
    from spendscope.collector._otlp import BadRequest
    from spendscope.collector._spans import decode_spans

    with pytest.raises(BadRequest) as info:
        decode_spans(body)
    assert (info.value.status, info.value.message) == (400, f"malformed protobuf: {why}")
    with pytest.raises(Exception, match="Error parsing message"):
        ExportTraceServiceRequest.FromString(body)  # as protobuf's own parser does
