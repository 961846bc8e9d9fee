"""OTLP `ExportTraceServiceRequest` -> `SpanRecord`s, through opentelemetry-proto's generated classes.

Parsing is protobuf's native runtime (upb): it checks the wire format and that strings are UTF-8,
skips unknown fields and keeps the last value of a repeated scalar. What is left here is reading the
fields a row needs, refusing spans the store cannot hold (bad ids, timestamps past DateTime64(9)),
and rendering attribute values as the OpenTelemetry Collector's `pcommon.Value.AsString()` does
(_values.py), so rows are identical to the ones its ClickHouse exporter writes (see
spendscope/store/records.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from spendscope.collector._otlp import PROTOBUF, traces_request
from spendscope.collector._values import as_string
from spendscope.store.records import SpanEvent, SpanLink, SpanRecord

_SPAN_KINDS = ("Unspecified", "Internal", "Server", "Client", "Producer", "Consumer")
_STATUS_CODES = ("Unset", "Ok", "Error")
_SERVICE_NAME = "service.name"
_MAX_TIME = (1 << 63) - 1  # DateTime64(9) holds signed 64-bit nanoseconds
_ZERO16 = bytes(16)
_ZERO8 = bytes(8)
BAD_IDS = "spans need a 16-byte trace_id and an 8-byte span_id, not all zero"
BAD_TIME = "timestamps must be before 2262-04-11 (ClickHouse DateTime64(9))"
BAD_PARENT = "parent_span_id must be empty or 8 bytes"


@dataclass
class DecodedSpans:
    records: list[SpanRecord] = field(default_factory=list)
    keys: list[bytes] = field(default_factory=list)  # raw trace_id + span_id, one per record
    rejected: int = 0  # spans the store cannot hold (see `problem`)
    rejected_reason: str = ""


def decode_spans(data: bytes) -> DecodedSpans:
    """Decode an ExportTraceServiceRequest's bytes. Raises `BadRequest` (400) on malformed input."""
    return request_spans(traces_request(data, PROTOBUF))


def request_spans(request: ExportTraceServiceRequest) -> DecodedSpans:
    """The rows of a parsed request, and how many of its spans were refused and why."""
    out = DecodedSpans()
    for resource_spans in request.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        service = resource.get(_SERVICE_NAME, "")
        for scope_spans in resource_spans.scope_spans:
            scope = scope_spans.scope
            scope_name, scope_version = scope.name, scope.version
            for span in scope_spans.spans:
                reason = problem(span)
                if reason:
                    out.rejected += 1
                    out.rejected_reason = reason
                    continue
                out.keys.append(span.trace_id + span.span_id)
                out.records.append(_record(span, resource, service, scope_name, scope_version))
    return out


def problem(span: Span) -> str:
    """Why the store cannot hold `span`, or "" if it can."""
    trace_id, span_id = span.trace_id, span.span_id
    if len(trace_id) != 16 or len(span_id) != 8 or trace_id == _ZERO16 or span_id == _ZERO8:
        return BAD_IDS
    events = span.events
    if (
        span.start_time_unix_nano > _MAX_TIME
        or span.end_time_unix_nano > _MAX_TIME
        or (events and any(event.time_unix_nano > _MAX_TIME for event in events))
    ):
        return BAD_TIME
    parent = span.parent_span_id
    if parent and len(parent) != 8:
        return BAD_PARENT
    return ""


def _attributes(pairs: Iterable[KeyValue]) -> dict[str, str]:
    """KeyValues as a map (a key given twice: the last value wins, as in pcommon)."""
    return {kv.key: as_string(kv.value) for kv in pairs}


def _hex_or_empty(raw: bytes) -> str:
    return raw.hex() if any(raw) else ""


def _record(span: Span, resource: dict[str, str], service: str, scope_name: str, version: str) -> SpanRecord:
    start, end = span.start_time_unix_nano, span.end_time_unix_nano
    kind = span.kind
    status = span.status
    code = status.code
    events = span.events
    links = span.links
    return SpanRecord(  # positional (a frozen dataclass's keywords cost more), in field order:
        start,  # timestamp_ns
        span.trace_id.hex(),
        span.span_id.hex(),
        _hex_or_empty(span.parent_span_id),
        span.trace_state,
        span.name,  # span_name
        _SPAN_KINDS[kind] if 0 <= kind < 6 else "",
        service,  # service_name
        resource,  # resource_attributes
        scope_name,
        version,  # scope_version
        _attributes(span.attributes),  # span_attributes
        end - start if end > start else 0,  # duration_ns
        _STATUS_CODES[code] if 0 <= code < 3 else "",
        status.message,
        [SpanEvent(e.time_unix_nano, e.name, _attributes(e.attributes)) for e in events] if events else [],
        [_link(k) for k in links] if links else [],
    )


def _link(link: Span.Link) -> SpanLink:
    trace_id, span_id = _hex_or_empty(link.trace_id), _hex_or_empty(link.span_id)
    return SpanLink(trace_id, span_id, link.trace_state, _attributes(link.attributes))
