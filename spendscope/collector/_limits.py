"""What one OTLP request may hold, checked completely when it arrives (pure).

A request is decoded once, on arrival, into what the collector keeps (rows for the store, points for
/metrics); nothing it keeps is decoded again. So every check happens here, before the answer: a span or
point over a limit is refused with OTLP `partial_success` (the rest of its request is taken), a request
that cannot be read at all gets 400, and one too large to decode gets 413. What is acknowledged is then
only what the store and the Prometheus exposition can hold, whatever its neighbours in a batch.

The limits follow the OpenTelemetry SDK's (`OTEL_ATTRIBUTE_COUNT_LIMIT`, `OTEL_SPAN_EVENT_COUNT_LIMIT`,
`OTEL_SPAN_LINK_COUNT_LIMIT`, `OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT`) with the same defaults where the SDK
has one, so what a default SDK sends always passes. The SDK truncates and drops; the collector cannot
know which attribute matters (a dropped token count would make a call look free), so it refuses the
span or point instead and says why. An app that sends more (prompt capture, say) sets its SDK's own
limits, which truncate at the source.

    attributes per collection (span, resource, scope, event, link, data point)   attribute_count_limit
    entries of an array or map value                                          attribute_count_limit
    characters of a string value (bytes of a bytes value, each array element),
        and of every other string (names, keys, status message, trace state)  attribute_value_length_limit
    arrays and maps nested in one another                                     attribute_depth_limit
    events, links per span                                           span_event_count_limit, _link_
    attribute keys are not empty (OpenTelemetry: "MUST be a non-empty string")

Strings are UTF-8 (protobuf's parser refuses anything else, and protobuf's JSON mapping lone surrogates).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

# What decoding one request takes, estimated as it goes: the body's bytes (its strings' characters, at
# most one per byte) and, per object made from it, its CPython size besides its characters (measured on
# 3.11: a span's row and ids ~640 bytes, an event or link ~150, an attribute's key, value and place in
# its map ~170).
SPAN_BYTES: Final = 700
ITEM_BYTES: Final = 200  # an event, a link or an attribute


@dataclass(frozen=True)
class Limits:
    attribute_count: int = 128
    attribute_value_length: int = 65_536
    attribute_depth: int = 8
    span_events: int = 128
    span_links: int = 128
    decoded_bytes: int = 256 * 1024 * 1024


class Refused(Exception):
    """A span, point or resource the collector does not take; the message says why, in one line."""


def check_string(text: str, what: str, limits: Limits) -> None:
    if len(text) > limits.attribute_value_length:
        raise Refused(f"{what} longer than {limits.attribute_value_length} characters")


def check_attributes(pairs: Sequence[KeyValue], limits: Limits, where: str) -> None:
    """Refuse a collection of attributes over a limit (`where`: span, resource, event, ...)."""
    if len(pairs) > limits.attribute_count:
        raise Refused(f"{where} has {len(pairs)} attributes, over the limit of {limits.attribute_count}")
    length = limits.attribute_value_length
    for kv in pairs:
        key = kv.key
        if not key:
            raise Refused(f"{where} has an attribute with an empty key")
        if len(key) > length:
            raise Refused(f"{where} has an attribute key longer than {length} characters")
        check_value(kv.value, limits, key)


def check_value(value: AnyValue, limits: Limits, key: str, depth: int = 0) -> None:
    """Refuse a value over the length, count or depth limits (`depth`: the arrays and maps it is in)."""
    which = value.WhichOneof("value")
    if which == "string_value":
        if len(value.string_value) > limits.attribute_value_length:
            raise Refused(f"attribute {key!r} is longer than {limits.attribute_value_length} characters")
    elif which == "bytes_value":
        if len(value.bytes_value) > limits.attribute_value_length:
            raise Refused(f"attribute {key!r} is longer than {limits.attribute_value_length} bytes")
    elif which == "array_value" or which == "kvlist_value":
        if depth >= limits.attribute_depth:
            raise Refused(
                f"attribute {key!r} nests arrays and maps deeper than the limit of {limits.attribute_depth}"
            )
        if which == "array_value":
            items = value.array_value.values
            if len(items) > limits.attribute_count:
                raise Refused(f"attribute {key!r} has over {limits.attribute_count} entries")
            for item in items:
                check_value(item, limits, key, depth + 1)
        else:
            pairs = value.kvlist_value.values
            if len(pairs) > limits.attribute_count:
                raise Refused(f"attribute {key!r} has over {limits.attribute_count} entries")
            for kv in pairs:
                if not kv.key or len(kv.key) > limits.attribute_value_length:
                    raise Refused(f"attribute {key!r} has a key that is empty or too long")
                check_value(kv.value, limits, key, depth + 1)
