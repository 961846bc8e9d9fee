"""The fast path's look at an OTLP `ExportTraceServiceRequest`: span keys, rejections, and the sizes
ClickHouse checks its reading against. Nothing is decoded.

ClickHouse decodes the request itself (see _otlp_sql.py). Python needs each span's key (trace_id +
span_id: the number of spans, for the queue and the spool) and which spans the Python decoder would reject
(bad ids, timestamps past DateTime64(9), a parent id that is not 8 bytes), to answer the exporter.
This walks the message with the rules of _spans.py (same tags, same framing errors) down to the
span, event, link, status, scope and resource fields, and skips KeyValues unread, measuring their
encoded size instead: the collector appends those sizes to the request (field SIZES_FIELD, which
the Python decoder skips as unknown) and SQL refuses a request whose KeyValues it reads as anything
else (a field repeated, of another wire type, unknown...: ClickHouse and Python read those
differently). Such spellings in the fields read here make `suffix` None: the request then takes the
Python decoder.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from spendscope.collector._otlp_sql import SIZES_FIELD
from spendscope.collector._spans import DecodeError, _bounds, _skip, _tag, _varint

_MAX_TIME = (1 << 63) - 1
_ZERO16 = bytes(16)
_ZERO8 = bytes(8)
_fixed64 = struct.Struct("<Q").unpack_from
_VARINTS = [bytes([n]) if n < 0x80 else bytes([n & 0x7F | 0x80, n >> 7]) for n in range(1 << 14)]

# Per message, the fields SQL reads: field number -> the one wire type they may have. Another
# spelling of one of these (a second occurrence, another wire type) needs the Python decoder.
_SPAN_FIELDS = {1: 2, 2: 2, 3: 2, 4: 2, 5: 2, 6: 0, 7: 1, 8: 1, 15: 2}
# The span's fields below 16 by their one allowed tag (those SQL reads, and the repeated ones it reads).
_SPAN_TAGS = {n: n << 3 | wire_type for n, wire_type in (*_SPAN_FIELDS.items(), (9, 2), (11, 2), (13, 2))}
_EVENT_FIELDS = {1: 1, 2: 2}
_LINK_FIELDS = {1: 2, 2: 2, 3: 2}
_STATUS_FIELDS = {2: 2, 3: 0}
_SCOPE_FIELDS = {1: 2, 2: 2}


class _Unusual(Exception):
    """A spelling SQL does not read as the Python decoder does."""


def varint(n: int) -> bytes:
    if n < 1 << 14:
        return _VARINTS[n]
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


@dataclass
class ScannedSpans:
    keys: list[bytes] = field(default_factory=list)  # raw trace_id + span_id of each span kept
    rejected: int = 0
    rejected_reason: str = ""
    suffix: bytes | None = b""  # to append for SQL; None: the request needs the Python decoder


def scan_spans(buf: bytes) -> ScannedSpans:
    """Keys and rejections of an ExportTraceServiceRequest, as decode_spans would find them, and the
    suffix SQL needs. Raises DecodeError where decode_spans does on the parts read here."""
    out = ScannedSpans()
    sizes: list[bytes] = []
    try:
        try:
            _request(buf, out, sizes)
            out.suffix = b"".join(sizes)
        except _Unusual:
            out = ScannedSpans(suffix=None)
            _request(buf, out, None)
    except DecodeError:
        raise
    except (IndexError, ValueError, struct.error) as exc:
        raise DecodeError(f"malformed protobuf: {exc}") from None
    return out


def _done(i: int, end: int) -> None:
    if i != end:
        raise DecodeError("malformed protobuf: field past the end of the message")


def _once(seen: int, number: int, wire_type: int, fields: dict[int, int], strict: bool) -> int:
    """Track a field SQL reads; raise _Unusual on a second occurrence or another wire type."""
    expected = fields.get(number)
    if expected is None or not strict:
        return seen
    bit = 1 << number
    if wire_type != expected or seen & bit:
        raise _Unusual
    return seen | bit


def _request(buf: bytes, out: ScannedSpans, sizes: list[bytes] | None) -> None:
    i, end = 0, len(buf)
    strict = sizes is not None
    while i < end:
        tag, i = _tag(buf, i)
        if tag == 0x0A:
            s, i = _bounds(buf, i, end)
            part = _resource_spans(buf, s, i, out, strict)
            if sizes is not None:
                sizes += (varint(SIZES_FIELD << 3 | 2), varint(len(part)), part)
        else:
            if strict and tag >> 3 in (1, SIZES_FIELD):
                raise _Unusual
            i = _skip(buf, i, tag & 7)
    _done(i, end)


def _resource_spans(buf: bytes, i: int, end: int, out: ScannedSpans, strict: bool) -> bytes:
    """Scans one ResourceSpans; returns its ResourceSizes message."""
    scopes: list[tuple[int, int]] = []
    resource_bytes = 0
    seen = 0
    while i < end:
        tag, i = _tag(buf, i)
        if tag == 0x12:
            s, i = _bounds(buf, i, end)
            scopes.append((s, i))
        elif tag == 0x0A:
            seen = _once(seen, 1, 2, {1: 2}, strict)
            s, i = _bounds(buf, i, end)
            resource_bytes = _resource(buf, s, i)
        else:
            if strict and tag >> 3 in (1, 2):
                raise _Unusual
            i = _skip(buf, i, tag & 7)
    _done(i, end)
    parts = [b"\x08" + varint(resource_bytes)] if resource_bytes else []
    for s, e in scopes:
        part = _scope_spans(buf, s, e, out, strict)
        parts += (b"\x12", varint(len(part)), part)
    return b"".join(parts)


def _resource(buf: bytes, i: int, end: int) -> int:
    """The encoded size of a Resource's attributes fields."""
    size = 0
    while i < end:
        start = i
        tag, i = _tag(buf, i)
        if tag == 0x0A:
            i = _bounds(buf, i, end)[1]
            size += i - start
        else:
            i = _skip(buf, i, tag & 7)
    _done(i, end)
    return size


def _scope_spans(buf: bytes, i: int, end: int, out: ScannedSpans, strict: bool) -> bytes:
    """Scans one ScopeSpans; returns its ScopeSizes message (the spans' KeyValue sizes, packed)."""
    spans: list[tuple[int, int]] = []
    seen = 0
    while i < end:
        tag, i = _tag(buf, i)
        if tag == 0x12:
            s, i = _bounds(buf, i, end)
            spans.append((s, i))
        elif tag == 0x0A:
            seen = _once(seen, 1, 2, {1: 2}, strict)
            s, i = _bounds(buf, i, end)
            if strict:
                _fields(buf, s, i, _SCOPE_FIELDS)
        else:
            if strict and tag >> 3 in (1, 2):
                raise _Unusual
            i = _skip(buf, i, tag & 7)
    _done(i, end)
    packed = b"".join([varint(_span(buf, s, e, out, strict)) for s, e in spans])
    return b"\x0a" + varint(len(packed)) + packed if packed else b""


def _span(buf: bytes, i: int, end: int, out: ScannedSpans, strict: bool) -> int:
    """_spans._span's loop, reading ids, times, events, links and status; returns the encoded size
    of the span's KeyValues (its attributes, its events' and links'). The hot path: written flat."""
    trace_id = span_id = parent = b""
    start = stop = latest_event = 0
    other = 0  # bytes of the fields that are not attributes
    kv_bytes = 0  # of the events' and links' attributes
    seen = 0  # bit n: field n (one SQL reads) came already
    first = i
    while i < end:
        tag = buf[i]
        if tag == 0x4A:  # attributes: skipped (measured as what the other fields leave)
            n = buf[i + 1]
            if n < 0x80:
                i += 2 + n
            else:
                n, i = _varint(buf, i + 1)
                i += n
            continue
        field_start = i
        i += 1
        if tag >= 0x80:
            tag, i = _varint(buf, i - 1)
        number = tag >> 3
        if strict and number < 16:
            if seen >> number & 1 or _SPAN_TAGS.get(number, tag) != tag:
                raise _Unusual
            if number in _SPAN_FIELDS:
                seen |= 1 << number
        if tag & 7 == 2:
            n = buf[i]
            if n < 0x80:
                s = i + 1
            else:
                n, s = _varint(buf, i)
            i = s + n
            if tag == 0x0A:
                trace_id = buf[s:i]
            elif tag == 0x12:
                span_id = buf[s:i]
            elif tag == 0x22:
                parent = buf[s:i]
            elif tag == 0x5A:
                timestamp, attributes = _event(buf, s, i, strict)
                if timestamp > latest_event:
                    latest_event = timestamp
                kv_bytes += attributes
            elif tag == 0x6A:
                if strict:
                    kv_bytes += _fields(buf, s, i, _LINK_FIELDS, 0x22)
            elif tag == 0x7A and strict and n:
                _fields(buf, s, i, _STATUS_FIELDS)
        elif tag == 0x39:
            start = _fixed64(buf, i)[0]
            i += 8
        elif tag == 0x41:
            stop = _fixed64(buf, i)[0]
            i += 8
        elif tag == 0x30:
            i = i + 1 if buf[i] < 0x80 else _varint(buf, i)[1]
        else:
            i = _skip(buf, i, tag & 7)
        other += i - field_start
    _done(i, end)
    if len(trace_id) != 16 or len(span_id) != 8 or trace_id == _ZERO16 or span_id == _ZERO8:
        out.rejected += 1
        out.rejected_reason = "spans need a 16-byte trace_id and an 8-byte span_id, not all zero"
    elif start > _MAX_TIME or stop > _MAX_TIME or latest_event > _MAX_TIME:
        out.rejected += 1
        out.rejected_reason = "timestamps must be before 2262-04-11 (ClickHouse DateTime64(9))"
    elif parent and len(parent) != 8:
        out.rejected += 1
        out.rejected_reason = "parent_span_id must be empty or 8 bytes"
    else:
        out.keys.append(trace_id + span_id)
    return end - first - other + kv_bytes


def _event(buf: bytes, i: int, end: int, strict: bool) -> tuple[int, int]:
    """An event's time_unix_nano (the last one wins) and the encoded size of its attributes."""
    timestamp = attributes = seen = 0
    while i < end:
        start = i
        tag, i = _tag(buf, i)
        if strict:
            seen = _once(seen, tag >> 3, tag & 7, _EVENT_FIELDS, strict)
        if tag == 0x09:
            timestamp = _fixed64(buf, i)[0]
            i += 8
        elif tag & 7 == 2:
            i = _bounds(buf, i, end)[1]
            if tag == 0x1A:
                attributes += i - start
        else:
            if strict and tag >> 3 == 3:
                raise _Unusual
            i = _skip(buf, i, tag & 7)
    _done(i, end)
    return timestamp, attributes


def _fields(buf: bytes, i: int, end: int, fields: dict[int, int], kv_tag: int = -1) -> int:
    """Check a message's fields SQL reads (each once, of its wire type); returns the encoded size of
    its KeyValue fields (tag `kv_tag`)."""
    seen = size = 0
    while i < end:
        start = i
        tag, i = _tag(buf, i)
        seen = _once(seen, tag >> 3, tag & 7, fields, True)
        if tag & 7 == 2:
            i = _bounds(buf, i, end)[1]
            if tag == kv_tag:
                size += i - start
        else:
            if tag >> 3 == kv_tag >> 3:
                raise _Unusual
            i = _skip(buf, i, tag & 7)
    _done(i, end)
    return size
