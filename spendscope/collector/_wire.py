"""The protobuf wire format's outer layers, read without materializing what is inside (pure).

protobuf's parser builds every message of a body in memory before anything can be checked, at up to
~180 bytes a message however small it is on the wire: 18 MiB of empty spans (2 bytes each) take
1.6 GiB. So an ExportTraceServiceRequest is read here down to its spans, each span's bytes are parsed
on their own (its memory freed once its row is made), and what a span's parse would take is estimated
before it is parsed (`parse_bytes`). A metrics request is parsed whole, once that estimate for all of it
fits. Length-delimited fields are yielded; others are skipped; a
malformed or truncated field raises `BadRequest` (400), as protobuf's parser would.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Final

from spendscope.collector._otlp import BadRequest

# protobuf's parsed messages, besides their strings: a span ~180 bytes, an event, link, attribute or
# value at most ~70 (measured on upb, protobuf 7).
MESSAGE_BYTES: Final = 80
SPAN_MESSAGE_BYTES: Final = 200
METRIC_MESSAGE_BYTES: Final = 128  # a metric, or a data point (a histogram's is the largest)
# every byte that can start a length-delimited field (the low three bits of a tag are its wire type, 2)
_MAY_START_MESSAGE: Final = bytes(1 if (b & 7) == 2 else 0 for b in range(256))


_MAX_FIELD: Final = (1 << 29) - 1


def _malformed(what: str) -> BadRequest:
    return BadRequest(400, f"malformed protobuf: {what}")


def _varint(data: bytes, i: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while i < end and shift < 64:
        b = data[i]
        i += 1
        if shift == 63 and b > 1:
            raise _malformed("a varint longer than 64 bits")
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, i
        shift += 7
    raise _malformed("a varint runs past its message")


def fields(
    data: bytes, start: int = 0, end: int | None = None, look: Callable[[], None] | None = None
) -> Iterator[tuple[int, int, int]]:
    """(field number, start, end) of each length-delimited field of the message in data[start:end];
    `look` is called for every field read, skipped ones included (to bound the work)."""
    i, stop = start, len(data) if end is None else end
    while i < stop:
        if look is not None:
            look()
        tag, i = _varint(data, i, stop)
        if not 0 < tag >> 3 <= _MAX_FIELD:
            raise _malformed(f"field number {tag >> 3}")
        wire_type = tag & 7
        if wire_type == 2:
            length, i = _varint(data, i, stop)
            if i + length > stop:
                raise _malformed("a length runs past its message")
            yield tag >> 3, i, i + length
            i += length
        elif wire_type == 0:
            _, i = _varint(data, i, stop)
        elif wire_type == 1 or wire_type == 5:
            i += 8 if wire_type == 1 else 4
            if i > stop:
                raise _malformed("a fixed-size field runs past its message")
        else:
            raise _malformed(f"wire type {wire_type} (groups are not OTLP)")


def parse_bytes(message: bytes, per_message: int = MESSAGE_BYTES) -> int:
    """At most what parsing `message` (a span) takes in memory: one span, and at most one more message
    (of `per_message` bytes) for every byte that may start one."""
    return SPAN_MESSAGE_BYTES + per_message * message.translate(_MAY_START_MESSAGE).count(1)
