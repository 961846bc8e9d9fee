"""OTLP `ExportTraceServiceRequest` -> `SpanRecord`s, through opentelemetry-proto's generated classes.

Parsing is protobuf's native runtime (upb): it checks the wire format and that strings are UTF-8,
skips unknown fields and keeps the last value of a repeated scalar. What is left here is reading the
fields a row needs, refusing spans the store cannot hold (bad ids, timestamps past DateTime64(9)) or
that are over the collector's limits (_limits.py: a resource or scope over them refuses its spans),
refusing with 413 a request whose rows would take more memory than `Limits.decoded_bytes`, and
rendering attribute values as the OpenTelemetry Collector's `pcommon.Value.AsString()` does
(_values.py), so rows are identical to the ones its ClickHouse exporter writes (see
spendscope/store/records.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from spendscope.collector._limits import (
    ITEM_BYTES,
    SPAN_BYTES,
    Limits,
    Refused,
    check_attributes,
    check_string,
)
from spendscope.collector._otlp import PROTOBUF, BadRequest, traces_request
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
DEFAULT_LIMITS = Limits()


@dataclass
class DecodedSpans:
    records: list[SpanRecord] = field(default_factory=list)
    keys: list[bytes] = field(default_factory=list)  # raw trace_id + span_id, one per record
    rejected: int = 0  # spans refused (see `problem`)
    rejected_reason: str = ""  # why the last of them was

    def refuse(self, spans: int, reason: str) -> None:
        if spans:
            self.rejected += spans
            self.rejected_reason = reason


def decode_spans(data: bytes, limits: Limits = DEFAULT_LIMITS) -> DecodedSpans:
    """Decode an ExportTraceServiceRequest's bytes. Raises `BadRequest` (400) on malformed input, 413
    when its rows would be over `limits.decoded_bytes`."""
    return request_spans(traces_request(data, PROTOBUF), limits, len(data))


def request_spans(
    request: ExportTraceServiceRequest, limits: Limits = DEFAULT_LIMITS, nbytes: int = 0
) -> DecodedSpans:
    """The rows of a parsed request (of `nbytes` bytes), and how many of its spans were refused and why."""
    out = DecodedSpans()
    used = nbytes  # estimated bytes of the rows, their strings counted once in the body's bytes
    for resource_spans in request.resource_spans:
        try:
            check_attributes(resource_spans.resource.attributes, limits, "resource")
        except Refused as exc:
            out.refuse(sum(len(s.spans) for s in resource_spans.scope_spans), str(exc))
            continue
        resource = _attributes(resource_spans.resource.attributes)
        service = resource.get(_SERVICE_NAME, "")
        used += ITEM_BYTES * len(resource)
        for scope_spans in resource_spans.scope_spans:
            scope = scope_spans.scope
            scope_name, scope_version = scope.name, scope.version
            try:
                check_string(scope_name, "scope name", limits)
                check_string(scope_version, "scope version", limits)
                check_attributes(scope.attributes, limits, "scope")
            except Refused as exc:
                out.refuse(len(scope_spans.spans), str(exc))
                continue
            for span in scope_spans.spans:
                reason = problem(span, limits)
                if reason:
                    out.refuse(1, reason)
                    continue
                used += _weight(span)
                if used > limits.decoded_bytes:
                    raise BadRequest(
                        413,
                        f"request too large once decoded (over {limits.decoded_bytes} bytes): "
                        "send fewer spans per request",
                    )
                out.keys.append(span.trace_id + span.span_id)
                out.records.append(_record(span, resource, service, scope_name, scope_version))
    return out


def problem(span: Span, limits: Limits = DEFAULT_LIMITS) -> str:
    """Why the collector does not take `span` (the store cannot hold it, or it is over `limits`), or
    "" if it does."""
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
    try:
        _check_span(span, limits)
    except Refused as exc:
        return str(exc)
    return ""


def _check_span(span: Span, limits: Limits) -> None:
    check_attributes(span.attributes, limits, "span")
    check_string(span.name, "span name", limits)
    check_string(span.trace_state, "trace state", limits)
    check_string(span.status.message, "status message", limits)
    events, links = span.events, span.links
    if events:
        if len(events) > limits.span_events:
            raise Refused(f"span has {len(events)} events, over the limit of {limits.span_events}")
        for event in events:
            check_string(event.name, "event name", limits)
            check_attributes(event.attributes, limits, "event")
    if links:
        if len(links) > limits.span_links:
            raise Refused(f"span has {len(links)} links, over the limit of {limits.span_links}")
        for link in links:
            check_string(link.trace_state, "link trace state", limits)
            check_attributes(link.attributes, limits, "link")


def _weight(span: Span) -> int:
    """Estimated bytes of a span's row besides its characters."""
    items = len(span.attributes)
    for event in span.events:
        items += 1 + len(event.attributes)
    for link in span.links:
        items += 1 + len(link.attributes)
    return SPAN_BYTES + ITEM_BYTES * items


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
