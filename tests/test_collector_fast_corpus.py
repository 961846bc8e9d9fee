"""Random OTLP requests for the fast path's tests (a helper module, no tests of its own): every
value type, one level of arrays and maps, strings that JSON escapes, doubles from random bits,
events, links, bad ids and timestamps; keys unique unless asked (a duplicate key is one of the
things SQL leaves to Python)."""

from __future__ import annotations

import random
import struct

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1 import trace_pb2

BASE_NS = 1_780_000_000_000_000_000  # spans fall on a few days: few partitions per insert
STRINGS = [
    "",
    "chat",
    "gpt-4o-mini",
    "ünïcødé ✓ 日本",
    'quote " and back\\slash',
    "<a href='x'>&amp;</a>",
    "line\nbreak\ttab\rreturn",
    "emoji 🎉",
    "a" * 300,
]
SPECIAL_DOUBLES = [0.0, -0.0, 1.0, 1.5, 0.1, 1e-6, 9.99e-7, 1e-7, 1.5e-7, 1e16, 1e20, 1e21, 2.5e21, 123.456]
SPECIAL_DOUBLES += [5e-324, 1.7976931348623157e308, float("inf"), float("-inf"), float("nan")]


def double(rnd: random.Random) -> float:
    roll = rnd.random()
    if roll < 0.3:
        return rnd.choice(SPECIAL_DOUBLES)
    if roll < 0.6:
        value: float = struct.unpack("<d", rnd.randbytes(8))[0]
        return value
    return rnd.uniform(-1, 1) * 10 ** rnd.randint(-12, 25)


def scalar(rnd: random.Random, *, in_json: bool = False) -> AnyValue:
    kind = rnd.choice(["s", "s", "i", "d", "d", "b", "bytes", "empty"])
    if kind == "s":
        return AnyValue(string_value=rnd.choice(STRINGS))
    if kind == "i":
        return AnyValue(
            int_value=rnd.choice([0, 1, -1, 443, 2**63 - 1, -(2**63), rnd.randint(-(10**15), 10**15)])
        )
    if kind == "d":
        return AnyValue(double_value=double(rnd))
    if kind == "b":
        return AnyValue(bool_value=rnd.random() < 0.5)
    if kind == "bytes":
        return AnyValue(bytes_value=rnd.randbytes(rnd.randint(0, 20)))
    return AnyValue()


def value(rnd: random.Random) -> AnyValue:
    roll = rnd.random()
    if roll < 0.15:
        array = AnyValue()
        array.array_value.values.extend(scalar(rnd) for _ in range(rnd.randint(0, 4)))
        return array
    if roll < 0.25:
        kvlist = AnyValue()
        keys = rnd.sample(["z", "a", "é", "<k>", "k\\1", "m"], rnd.randint(0, 4))
        kvlist.kvlist_value.values.extend(KeyValue(key=k, value=scalar(rnd)) for k in keys)
        return kvlist
    return scalar(rnd)


def attributes(rnd: random.Random, count: int, *, duplicates: bool = False) -> list[KeyValue]:
    keys = [f"attr.{i}" for i in rnd.sample(range(60), count)]
    if duplicates and keys:
        keys.append(rnd.choice(keys))
    return [KeyValue(key=k, value=value(rnd)) for k in keys]


def span_id(rnd: random.Random, size: int) -> bytes:
    roll = rnd.random()
    if roll < 0.02:
        return b""
    if roll < 0.03:
        return bytes(size)
    if roll < 0.04:
        return rnd.randbytes(size + 1)
    return rnd.randbytes(size)


def timestamp(rnd: random.Random) -> int:
    return (
        BASE_NS + rnd.randint(0, 2 * 86400 * 10**9) if rnd.random() < 0.98 else rnd.randint(2**63, 2**64 - 1)
    )


def request(rnd: random.Random, *, spans: int = 6, duplicates: bool = False) -> ExportTraceServiceRequest:
    """A request; with `duplicates`, one span has a key twice in its attributes."""
    out = ExportTraceServiceRequest()
    for _ in range(rnd.randint(1, 2)):
        rs = out.resource_spans.add()
        rs.resource.attributes.extend(attributes(rnd, rnd.randint(0, 4)))
        if rnd.random() < 0.8:
            rs.resource.attributes.append(KeyValue(key="service.name", value=scalar(rnd)))
        for _ in range(rnd.randint(1, 2)):
            ss = rs.scope_spans.add()
            ss.scope.name = rnd.choice(["", "spendscope", "other"])
            ss.scope.version = rnd.choice(["", "1.0"])
            ss.scope.attributes.extend(attributes(rnd, rnd.randint(0, 2)))
            for _ in range(rnd.randint(0, spans)):
                start = timestamp(rnd)
                s = trace_pb2.Span(
                    trace_id=span_id(rnd, 16),
                    span_id=span_id(rnd, 8),
                    parent_span_id=rnd.choice([b"", rnd.randbytes(8), bytes(8), rnd.randbytes(8)]),
                    trace_state=rnd.choice(["", "a=b,c=d"]),
                    name=rnd.choice(["chat gpt-4o", "", "ünï"]),
                    kind=rnd.randint(0, 7),
                    start_time_unix_nano=start,
                    end_time_unix_nano=max(start + rnd.randint(-(10**9), 10**10), 0) % 2**64,
                    flags=rnd.randint(0, 2**32 - 1),
                )
                s.attributes.extend(attributes(rnd, rnd.randint(0, 25)))
                s.status.code = rnd.randint(0, 4)
                s.status.message = rnd.choice(["", "boom"])
                for _ in range(rnd.randint(0, 2)):
                    event = s.events.add(
                        time_unix_nano=timestamp(rnd), name=rnd.choice(["ev", "gen_ai.choice"])
                    )
                    event.attributes.extend(attributes(rnd, rnd.randint(0, 3)))
                for _ in range(rnd.randint(0, 2)):
                    link = s.links.add(
                        trace_id=rnd.choice([rnd.randbytes(16), bytes(16), b""]),
                        span_id=rnd.choice([rnd.randbytes(8), bytes(8)]),
                        trace_state="x=1",
                    )
                    link.attributes.extend(attributes(rnd, rnd.randint(0, 2)))
                ss.spans.append(s)
    if duplicates:
        for rs in out.resource_spans:
            for ss in rs.scope_spans:
                for s in ss.spans:
                    s.attributes.append(KeyValue(key="dup", value=scalar(rnd)))
                    s.attributes.append(KeyValue(key="dup", value=scalar(rnd)))
                    return out
    return out
