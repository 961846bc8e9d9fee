"""Attribute values as strings, the way the OpenTelemetry Collector's `pcommon.Value.AsString()`
renders them (so rows match those its ClickHouse exporter writes): ints in base 10, booleans
`true`/`false`, bytes base64, doubles as JavaScript prints them (shortest round-trip digits, plain
decimals but exponent form below 1e-6 and from 1e21 on), arrays and maps as Go's encoding/json
writes them (sorted keys, HTML-safe escapes), an empty value as ""."""

from __future__ import annotations

import base64
import math
from decimal import Decimal

from opentelemetry.proto.common.v1.common_pb2 import AnyValue

_JSON_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}


def composite_string(value: AnyValue) -> str:
    """A bytes, array or map AnyValue as AsString() renders it (the scalar kinds are rendered where
    attributes are read: _spans._attributes)."""
    if value.WhichOneof("value") == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    return _json_raw(_raw(value))


def _raw(value: AnyValue) -> object:
    """AnyValue as a Python value (pcommon.Value.AsRaw), for arrays and maps."""
    which = value.WhichOneof("value")
    if which == "array_value":
        return [_raw(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return {kv.key: _raw(kv.value) for kv in value.kvlist_value.values}
    return None if which is None else getattr(value, which)


def format_double(f: float) -> str:
    """Go's `float64AsString`: ES6 number formatting with the shortest round-trip digits."""
    r = repr(f)
    if "e" not in r and "n" not in r:  # plain notation already (inf and nan contain an n)
        a = abs(f)
        if a == 0 or (a >= 1e-6 and a < 1e21):
            return r[:-2] if r.endswith(".0") else r
    if math.isnan(f):
        return "json: unsupported value: NaN"
    if math.isinf(f):
        return "json: unsupported value: " + ("+Inf" if f > 0 else "-Inf")
    sign, digit_tuple, exp = Decimal(r).as_tuple()
    assert isinstance(exp, int)
    digits = "".join(map(str, digit_tuple))
    stripped = digits.rstrip("0") or "0"
    exp += len(digits) - len(stripped)
    digits = stripped
    prefix = "-" if sign else ""
    a = abs(f)
    if a < 1e-6 or a >= 1e21:
        e = exp + len(digits) - 1
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{prefix}{mantissa}e{'-' if e < 0 else '+'}{abs(e)}"
    if exp >= 0:
        return prefix + digits + "0" * exp
    point = len(digits) + exp
    if point > 0:
        return prefix + digits[:point] + "." + digits[point:]
    return prefix + "0." + "0" * -point + digits


def _json_string(s: str) -> str:
    """Go encoding/json string: HTML-safe escaping of <, >, & and U+2028/U+2029."""
    out = ['"']
    for ch in s:
        o = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif o < 0x20:
            out.append(_JSON_ESCAPES.get(ch, f"\\u{o:04x}"))
        elif ch in "<>&" or o in (0x2028, 0x2029):
            out.append(f"\\u{o:04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _json_raw(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isinf(value) or math.isnan(value):
            return "null"  # Go's json.Marshal fails here and the collector writes an empty string
        return format_double(value)
    if isinstance(value, str):
        return _json_string(value)
    if isinstance(value, bytes):
        return '"' + base64.b64encode(value).decode() + '"'
    if isinstance(value, list):
        return "[" + ",".join(_json_raw(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(_json_string(k) + ":" + _json_raw(value[k]) for k in sorted(value)) + "}"
    raise TypeError(type(value))
