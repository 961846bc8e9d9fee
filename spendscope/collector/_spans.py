"""OTLP `ExportTraceServiceRequest` -> `SpanRecord`s, through opentelemetry-proto's generated classes.

Parsing is protobuf's native runtime (upb): it checks the wire format and that strings are UTF-8,
skips unknown fields and keeps the last value of a repeated scalar. A protobuf body is read down to its
spans first (_wire.py) and each span parsed on its own, so that no more of it is in memory at once than
`Limits.decoded_bytes` allows (OTLP/JSON is parsed whole: _otlp.py bounds it before it is). What is
left here is reading the
fields a row needs, refusing spans the store cannot hold (bad ids, timestamps past DateTime64(9)) or
that are over the collector's limits (_limits.py: a resource or scope over them refuses its spans),
refusing with 413 a request whose rows would take more memory than `Limits.decoded_bytes`, and
rendering attribute values as the OpenTelemetry Collector's `pcommon.Value.AsString()` does
(_values.py), so rows are identical to the ones its ClickHouse exporter writes (see
spendscope/store/records.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache, partial
from typing import Any

from google.protobuf.message import DecodeError  # type: ignore[import-untyped]
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, InstrumentationScope, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from spendscope.collector._limits import (
    ITEM_BYTES,
    SPAN_BYTES,
    Limits,
    Refused,
    check_attributes,
    check_string,
    check_value,
)
from spendscope.collector._otlp import JSON, BadRequest, traces_request
from spendscope.collector._values import composite_string, format_double
from spendscope.collector._wire import fields, parse_bytes
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
_CACHED_BYTES = 256  # the largest encoded value _checked_composite keeps
WORK_BYTES = 100  # of the decoding budget, for every field read around the spans (see _Rows.look)


@dataclass
class DecodedSpans:
    records: list[SpanRecord] = field(default_factory=list)
    keys: list[bytes] = field(default_factory=list)  # raw trace_id + span_id, one per record
    rejected: int = 0  # spans refused (see `problem`)
    rejected_reason: str = ""  # why the last of them was
    nbytes: int = 0  # the memory the rows take, as estimated while they were made (_limits.py)

    def refuse(self, spans: int, reason: str) -> None:
        if spans:
            self.rejected += spans
            self.rejected_reason = reason


def decode_spans(data: bytes, limits: Limits = DEFAULT_LIMITS) -> DecodedSpans:
    """Decode an ExportTraceServiceRequest's bytes. Raises `BadRequest` (400) on malformed input, 413
    when its rows (and the span being parsed) would be over `limits.decoded_bytes`. One resource and
    one scope are in memory at a time, and one span's parse (protobuf's parser writes fields in any
    order: a resource is read before its scopes, and a scope that comes after some of its spans makes
    them be read again)."""
    rows = _Rows(limits, len(data))
    look = rows.look
    try:
        for _, rs_start, rs_end in _only(fields(data, 0, len(data), look), 1):  # resource_spans
            resource = Resource.FromString(_part(data, rs_start, rs_end, 1, look))
            attributes = rows.resource(
                resource.attributes, partial(_count_spans, data, rs_start, rs_end, look)
            )
            if attributes is None:
                continue
            for number, ss_start, ss_end in fields(data, rs_start, rs_end, look):
                if number == 2:  # scope_spans
                    _scope_spans(data, ss_start, ss_end, rows, attributes)
                elif number == 3:  # schema_url
                    _utf8(data, ss_start, ss_end)
    except DecodeError as exc:
        raise BadRequest(400, f"malformed protobuf: {exc}") from None
    return rows.done()


def _scope_spans(data: bytes, start: int, end: int, rows: _Rows, resource: dict[str, str]) -> None:
    """One ScopeSpans, in one pass when its scope comes before its spans (as encoders write it)."""
    mark = rows.mark()
    parts: list[bytes] = []
    scope: InstrumentationScope | None = None
    taken = True
    for number, s, e in fields(data, start, end, rows.look):
        if number == 1:
            if scope is not None:  # more of the scope after spans: read it whole, then the spans
                rows.reset(mark)
                scope = InstrumentationScope.FromString(_part(data, start, end, 1, rows.look))
                spans = _only(fields(data, start, end, rows.look), 2)
                if rows.scope(scope, partial(_count, spans)):
                    for _, a, b in spans:
                        _span(data[a:b], rows, resource, scope)
                return
            parts.append(data[s:e])
        elif number == 3:  # schema_url
            _utf8(data, s, e)
        elif number == 2:
            if scope is None:
                scope = InstrumentationScope.FromString(b"".join(parts))
                taken = rows.scope(scope, partial(int, 1))
            elif not taken:
                rows.out.refuse(1, rows.out.rejected_reason)
            if taken:
                _span(data[s:e], rows, resource, scope)


def _utf8(data: bytes, start: int, end: int) -> None:
    """A string field protobuf's parser would check (the others are in what it parses)."""
    try:
        data[start:end].decode()
    except UnicodeDecodeError:
        raise BadRequest(400, "malformed protobuf: a schema_url that is not UTF-8") from None


def _span(raw: bytes, rows: _Rows, resource: dict[str, str], scope: InstrumentationScope) -> None:
    rows.make_room(parse_bytes(raw) if len(raw) > 256 else 0)
    rows.add(Span.FromString(raw), resource, scope)


def _only(entries: Iterator[tuple[int, int, int]], number: int) -> Iterator[tuple[int, int, int]]:
    return (entry for entry in entries if entry[0] == number)


def _part(data: bytes, start: int, end: int, number: int, look: Callable[[], None]) -> bytes:
    """Field `number` of a message, its occurrences joined (protobuf merges them)."""
    return b"".join(data[s:e] for _, s, e in _only(fields(data, start, end, look), number))


def _count(entries: Iterator[object]) -> int:
    return sum(1 for _ in entries)


def _spans_in(scopes: Sequence[Any]) -> int:
    return sum(len(scope.spans) for scope in scopes)


def _count_spans(data: bytes, start: int, end: int, look: Callable[[], None]) -> int:
    return sum(
        1 for _, a, b in _only(fields(data, start, end, look), 2) for _ in _only(fields(data, a, b, look), 2)
    )


def decode(data: bytes, kind: str, limits: Limits = DEFAULT_LIMITS) -> DecodedSpans:
    """A request's rows, from protobuf or OTLP/JSON."""
    if kind == JSON:
        return request_spans(traces_request(data, JSON, limits), limits, len(data))
    return decode_spans(data, limits)


def request_spans(
    request: ExportTraceServiceRequest, limits: Limits = DEFAULT_LIMITS, nbytes: int = 0
) -> DecodedSpans:
    """The rows of a parsed request (of `nbytes` bytes), and how many of its spans were refused and why."""
    rows = _Rows(limits, nbytes)
    for resource_spans in request.resource_spans:
        scopes = resource_spans.scope_spans
        resource = rows.resource(resource_spans.resource.attributes, partial(_spans_in, scopes))
        if resource is None:
            continue
        for scope_spans in resource_spans.scope_spans:
            if rows.scope(scope_spans.scope, partial(len, scope_spans.spans)):
                for span in scope_spans.spans:
                    rows.add(span, resource, scope_spans.scope)
    return rows.done()


class _Rows:
    """Rows made one span at a time, checked as they are made (a second pass cost as much as the
    decoding), within `limits.decoded_bytes`: the body's bytes (its strings' characters, at most one
    per byte), SPAN_BYTES for every span looked at and ITEM_BYTES for every item a row holds."""

    def __init__(self, limits: Limits, nbytes: int) -> None:
        self.limits = limits
        self.out = DecodedSpans()
        self.used = nbytes

    def done(self) -> DecodedSpans:
        self.out.nbytes = self.used
        return self.out

    def mark(self) -> tuple[int, int, str]:
        return len(self.out.records), self.out.rejected, self.out.rejected_reason

    def reset(self, mark: tuple[int, int, str]) -> None:
        """Forget the rows made since `mark` (what they used of the budget stays used)."""
        taken, self.out.rejected, self.out.rejected_reason = mark
        del self.out.records[taken:], self.out.keys[taken:]

    def look(self) -> None:
        """A field read: WORK_BYTES of the budget, so that a flood of empty ones ends early."""
        self.used += WORK_BYTES
        if self.used > self.limits.decoded_bytes:
            self.make_room(0)

    def resource(self, pairs: Sequence[KeyValue], spans: Callable[[], int]) -> dict[str, str] | None:
        """The resource's attributes, or None when it is refused (and its `spans()` with it)."""
        try:
            attributes = _attributes(pairs, self.limits, "resource")
        except Refused as exc:
            self.out.refuse(spans(), str(exc))
            return None
        self.used += ITEM_BYTES * len(attributes)
        return attributes

    def scope(self, scope: InstrumentationScope, spans: Callable[[], int]) -> bool:
        try:
            check_string(scope.name, "scope name", self.limits)
            check_string(scope.version, "scope version", self.limits)
            check_attributes(scope.attributes, self.limits, "scope")
        except Refused as exc:
            self.out.refuse(spans(), str(exc))
            return False
        return True

    def make_room(self, nbytes: int) -> None:
        """413 unless `nbytes` more (the rows' and a parse's) fit."""
        if self.used + nbytes > self.limits.decoded_bytes:
            raise BadRequest(
                413,
                f"request too large once decoded (over {self.limits.decoded_bytes} bytes): "
                "send fewer spans per request",
            )

    def add(self, span: Span, resource: dict[str, str], scope: InstrumentationScope) -> None:
        self.make_room(SPAN_BYTES)
        self.used += SPAN_BYTES  # every span looked at, taken or not: this bounds the work too
        reason = problem(span)
        if reason:
            self.out.refuse(1, reason)
            return
        try:
            record, items = _record(
                span, resource, resource.get(_SERVICE_NAME, ""), scope.name, scope.version, self.limits
            )
        except Refused as exc:
            self.out.refuse(1, str(exc))
            return
        self.make_room(ITEM_BYTES * items)
        self.used += ITEM_BYTES * items
        self.out.keys.append(span.trace_id + span.span_id)
        self.out.records.append(record)


def problem(span: Span) -> str:
    """Why the store cannot hold `span` (ids, times), or "" if it can; its limits are checked as its row
    is made (`_record`)."""
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


def _attributes(pairs: Sequence[KeyValue], limits: Limits, where: str) -> dict[str, str]:
    """KeyValues as a map (a key given twice: the last value wins, as in pcommon), refusing them over
    `limits` (_limits.check_attributes, in the same pass)."""
    if len(pairs) > limits.attribute_count:
        raise Refused(f"{where} has {len(pairs)} attributes, over the limit of {limits.attribute_count}")
    length = limits.attribute_value_length
    out = {}
    for kv in pairs:  # the commonest kinds first, inline: this runs per attribute
        key = kv.key
        if not key or len(key) > length:
            check_attributes([kv], limits, where)  # raises, saying which
        value = kv.value
        which = value.WhichOneof("value")
        if which == "string_value":
            text = value.string_value
            if len(text) > length:
                check_value(value, limits, key)  # raises
        elif which == "int_value":
            text = str(value.int_value)
        elif which == "double_value":
            text = format_double(value.double_value)
        elif which == "bool_value":
            text = "true" if value.bool_value else "false"
        elif which is None:
            text = ""
        else:  # bytes, arrays and maps
            encoded = value.SerializeToString()
            if len(encoded) > _CACHED_BYTES:
                check_value(value, limits, key)
                text = composite_string(value)
            else:
                text = _checked_composite(encoded, limits, key)
        out[key] = text
    return out


@lru_cache(maxsize=4096)  # of at most _CACHED_BYTES each: a few MiB at most
def _checked_composite(encoded: bytes, limits: Limits, key: str) -> str:
    """A small bytes, array or map value (an AnyValue's encoding), checked against `limits` and rendered
    once for each encoding: most repeat from span to span (finish reasons, say), and checking and
    rendering one costs several times its lookup here. `Refused` is raised, never cached."""
    value = AnyValue.FromString(encoded)
    check_value(value, limits, key)
    return composite_string(value)


def _checked(text: str, what: str, limits: Limits) -> str:
    if len(text) > limits.attribute_value_length:
        check_string(text, what, limits)  # raises
    return text


def _hex_or_empty(raw: bytes) -> str:
    return raw.hex() if any(raw) else ""


def _record(
    span: Span, resource: dict[str, str], service: str, scope_name: str, version: str, limits: Limits
) -> tuple[SpanRecord, int]:
    """The span's row and how many items (attributes, events, links) it holds; `Refused` over `limits`."""
    start, end = span.start_time_unix_nano, span.end_time_unix_nano
    kind = span.kind
    status = span.status
    code = status.code
    attributes = _attributes(span.attributes, limits, "span")
    items = len(attributes)
    events: list[SpanEvent] = []
    links: list[SpanLink] = []
    if span.events:
        if len(span.events) > limits.span_events:
            raise Refused(f"span has {len(span.events)} events, over the limit of {limits.span_events}")
        for e in span.events:
            event_attributes = _attributes(e.attributes, limits, "event")
            items += 1 + len(event_attributes)
            name = _checked(e.name, "event name", limits)
            events.append(SpanEvent(e.time_unix_nano, name, event_attributes))
    if span.links:
        if len(span.links) > limits.span_links:
            raise Refused(f"span has {len(span.links)} links, over the limit of {limits.span_links}")
        for link in span.links:
            link_attributes = _attributes(link.attributes, limits, "link")
            items += 1 + len(link_attributes)
            links.append(
                SpanLink(
                    _hex_or_empty(link.trace_id),
                    _hex_or_empty(link.span_id),
                    _checked(link.trace_state, "link trace state", limits),
                    link_attributes,
                )
            )
    record = SpanRecord(  # positional (a frozen dataclass's keywords cost more), in field order:
        start,  # timestamp_ns
        span.trace_id.hex(),
        span.span_id.hex(),
        _hex_or_empty(span.parent_span_id),
        _checked(span.trace_state, "trace state", limits),
        _checked(span.name, "span name", limits),  # span_name
        _SPAN_KINDS[kind] if 0 <= kind < 6 else "",
        service,  # service_name
        resource,  # resource_attributes
        scope_name,
        version,  # scope_version
        attributes,  # span_attributes
        end - start if end > start else 0,  # duration_ns
        _STATUS_CODES[code] if 0 <= code < 3 else "",
        _checked(status.message, "status message", limits),
        events,
        links,
    )
    return record, items
