"""OTLP trace requests -> `otel_traces` rows inside ClickHouse: the statement of the fast path.

ClickHouse reads the raw `ExportTraceServiceRequest` bytes itself (FORMAT Protobuf, length-delimited)
with the schema below: a wire-compatible subset of opentelemetry-proto whose field types suit SQL
(enums as uint64, ids as bytes, the AnyValue oneof and KeyValue.value with presence columns), plus
`spendscope_sizes`, a field the collector appends to each request (see _scan.py): the encoded size of
each span's KeyValues (its attributes, its events' and links') and of each resource's. The SELECT
flattens requests to spans with ARRAY JOIN and renders every value as the Python decoder does
(spendscope/collector/_spans.py, spendscope/store/records.py): ids lower hex, kind and status
names, attribute values as `pcommon.Value.AsString()` (doubles as JavaScript prints them, bytes
base64, arrays and maps as Go's encoding/json), spans with bad ids or timestamps left out.

What SQL would not render exactly, it refuses: the INSERT fails with FALLBACK_MARKER before writing
anything, and the writer sends the request through the Python decoder (see _rawwrite.py). Refused:
strings that are not UTF-8 (the Python decoder answers 400); a key twice in one list (a dict keeps
the last); an array or map inside an array or map (the schema stops one level down); a map's key
twice; control characters other than \n \r \t, or U+2028/U+2029, inside arrays and maps; and any
KeyValue list whose canonical encoding, recomputed here from what ClickHouse read, is not the size
the scan measured on the wire: a field repeated, an unknown field, a known field of another wire
type, a value spelled longer than it needs (ClickHouse and Python read those differently, so the
bytes must be exactly what SQL saw). The scan checks the same of the span, event, link, status,
scope and resource fields it reads itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

MESSAGE: Final = "ExportTraceServiceRequest"
FORMAT: Final = "Protobuf"  # length-delimited: each request prefixed by its varint length
FALLBACK_MARKER: Final = "spendscope-needs-python-decoder"
SIZES_FIELD: Final = 1000  # ExportTraceServiceRequest.spendscope_sizes (not an OTLP field)

PROTO: Final = """
syntax = "proto3";
message ExportTraceServiceRequest {
  repeated ResourceSpans resource_spans = 1; repeated ResourceSizes spendscope_sizes = 1000;
}
message ResourceSizes { uint64 resource = 1; repeated ScopeSizes scope_spans = 2; }
message ScopeSizes { repeated uint64 spans = 1; }
message ResourceSpans { Resource resource = 1; repeated ScopeSpans scope_spans = 2; }
message Resource { repeated KeyValue attributes = 1; }
message ScopeSpans { Scope scope = 1; repeated Span spans = 2; }
message Scope { string name = 1; string version = 2; repeated KeyValue attributes = 3; }
message Span {
  bytes trace_id = 1; bytes span_id = 2; string trace_state = 3; bytes parent_span_id = 4;
  string name = 5; uint64 kind = 6; fixed64 start_time_unix_nano = 7; fixed64 end_time_unix_nano = 8;
  repeated KeyValue attributes = 9; repeated Event events = 11; repeated Link links = 13; Status status = 15;
}
message Status { string message = 2; uint64 code = 3; }
message Event { fixed64 time_unix_nano = 1; string name = 2; repeated KeyValue attributes = 3; }
message Link {
  bytes trace_id = 1; bytes span_id = 2; string trace_state = 3; repeated KeyValue attributes = 4;
}
message KeyValue { string key = 1; oneof present { AnyValue value = 2; } }
message AnyValue {
  oneof value {
    string string_value = 1; uint64 bool_value = 2; int64 int_value = 3; double double_value = 4;
    ArrayValue array_value = 5; KeyValueList kvlist_value = 6; bytes bytes_value = 7;
  }
}
message ArrayValue { repeated InnerValue values = 1; }
message KeyValueList { repeated InnerKeyValue values = 1; }
message InnerKeyValue { string key = 1; InnerValue value = 2; }
message InnerValue {
  oneof value {
    string string_value = 1; uint64 bool_value = 2; int64 int_value = 3; double double_value = 4;
    bytes array_value = 5; bytes kvlist_value = 6; bytes bytes_value = 7;
  }
}
"""

# The oneofs' presence columns: which field came (0: none).
_ONEOF = "Enum8('none' = 0, 's' = 1, 'b' = 2, 'i' = 3, 'd' = 4, 'a' = 5, 'k' = 6, 'y' = 7)"
_PRESENT = "Enum8('none' = 0, 'value' = 2)"
_SCALARS = "string_value String, bool_value UInt64, int_value Int64, double_value Float64"
_INNER = f"Tuple(value {_ONEOF}, {_SCALARS}, array_value String, kvlist_value String, bytes_value String)"
_VALUE = (
    f"Tuple(value {_ONEOF}, {_SCALARS}, array_value Tuple(values Array({_INNER})), "
    f"kvlist_value Tuple(values Array(Tuple(key String, value {_INNER}))), bytes_value String)"
)
_KVS = f"Array(Tuple(key String, present {_PRESENT}, value {_VALUE}))"
_SPAN = (
    "Tuple(trace_id String, span_id String, trace_state String, parent_span_id String, name String, "
    f"kind UInt64, start_time_unix_nano UInt64, end_time_unix_nano UInt64, attributes {_KVS}, "
    f"events Array(Tuple(time_unix_nano UInt64, name String, attributes {_KVS})), "
    f"links Array(Tuple(trace_id String, span_id String, trace_state String, attributes {_KVS})), "
    "status Tuple(message String, code UInt64))"
)
STRUCTURE: Final = (
    f"resource_spans Array(Tuple(resource Tuple(attributes {_KVS}), scope_spans Array(Tuple("
    f"scope Tuple(name String, version String, attributes {_KVS}), spans Array({_SPAN}))))), "
    "spendscope_sizes Array(Tuple(resource UInt64, scope_spans Array(Tuple(spans Array(UInt64)))))"
)

SETTINGS: Final[Mapping[str, Any]] = {
    "format_schema_source": "string",
    "format_schema": PROTO,
    "format_schema_message_name": MESSAGE,
    "input_format_protobuf_oneof_presence": 1,
    # One stream; read requests in blocks of about 16 MiB (the SELECT's cost per block is ~8 ms
    # whatever its size: one request per block made requests of a few hundred spans, the exporters'
    # usual size, cost twice as much per span; memory stays that of a block, not of the batch);
    # squash everything into one insert block: a span refused late fails the INSERT before anything
    # is written.
    "max_threads": 1,
    "max_insert_threads": 1,
    "input_format_max_block_size_bytes": 16 << 20,
    "min_insert_block_size_rows": 1 << 40,
    "min_insert_block_size_bytes": 1 << 40,
}

_MAX_TIME = (1 << 63) - 1


def _t(expr: str, *names: str) -> str:
    """tupleElement down a path (on arrays of tuples too: then an array of the elements)."""
    for name in names:
        expr = f"tupleElement({expr}, '{name}')"
    return expr


def _double(x: str, inside_json: bool) -> str:
    """ClickHouse prints the shortest round-trip digits with JavaScript's thresholds (plain from 1e-6
    to 1e21): only the exponent's plus sign differs. Infinities and NaN as _values.py has them."""
    finite = f"replaceOne(replaceOne(toString({x}), 'e', 'e+'), 'e+-', 'e-')"
    if inside_json:
        return f"if(isFinite({x}), {finite}, 'null')"
    return (
        f"if(isFinite({x}), {finite}, if(isNaN({x}), 'json: unsupported value: NaN', "
        f"if({x} > 0, 'json: unsupported value: +Inf', 'json: unsupported value: -Inf')))"
    )


# Go's encoding/json escapes, backslash first (the others add backslashes). Other control characters
# and U+2028/U+2029 inside arrays and maps are refused (_REFUSED_IN_JSON): rare, and left to Python.
_JSON_ESCAPES = (
    ("\\\\", "\\\\\\\\"),
    ('"', '\\\\"'),
    ("\\n", "\\\\n"),
    ("\\r", "\\\\r"),
    ("\\t", "\\\\t"),
    ("<", "\\\\u003c"),
    (">", "\\\\u003e"),
    ("&", "\\\\u0026"),
)
_REFUSED_IN_JSON = "[\\\\x00-\\\\x08\\\\x0b\\\\x0c\\\\x0e-\\\\x1f\\\\x{2028}\\\\x{2029}]"


def _json_string(s: str) -> str:
    for old, new in _JSON_ESCAPES:
        s = f"replaceAll({s}, '{old}', '{new}')"
    return f"concat('\"', {s}, '\"')"


def _bool(x: str) -> str:
    return f"if({x} != 0, 'true', 'false')"


# One AnyValue's fields, by the letter that names them in the lambdas below (all of simple types).
_FIELDS = {
    "t": "value",
    "s": "string_value",
    "i": "int_value",
    "d": "double_value",
    "b": "bool_value",
    "y": "bytes_value",
}
_ARGS = ", ".join(_FIELDS)


def _inner_json() -> str:
    """A value inside an array or map (lambda over _ARGS), as Go's json.Marshal of AsRaw() writes it."""
    return (
        f"multiIf(t = 's', {_json_string('s')}, t = 'i', toString(i), t = 'd', {_double('d', True)}, "
        f"t = 'b', {_bool('b')}, t = 'y', concat('\"', base64Encode(y), '\"'), 'null')"
    )  # 'none' is null; an array or map this deep is refused


def _as_string() -> str:
    """An AnyValue as pcommon.Value.AsString(): a lambda over _ARGS and its array's items (`a*`) and
    map's keys and items (`mk`, `m*`). A map's items are sorted by key (bytewise, as Go sorts them)."""
    labels = (
        f"arrayConcat(arrayMap(x -> '', at), arrayMap(k -> concat({_json_string('k')}, ':'), arraySort(mk)))"
    )
    items = ", ".join(f"arrayConcat(a{f}, arraySort((x, k) -> k, m{f}, mk))" for f in _FIELDS)
    body = f"arrayStringConcat(arrayMap((l, {_ARGS}) -> concat(l, {_inner_json()}), {labels}, {items}), ',')"
    return (
        f"multiIf(t = 's', s, t = 'i', toString(i), t = 'd', {_double('d', False)}, t = 'b', {_bool('b')}, "
        f"t = 'y', base64Encode(y), t = 'a' OR t = 'k', "
        f"concat(if(t = 'a', '[', '{{'), {body}, if(t = 'a', ']', '}}')), '')"
    )


def _leaves(kvs: str, prefix: str) -> list[str]:
    """A KeyValue array's keys and value fields, each as an array of a simple type: `{prefix}k`,
    `{prefix}p` (KeyValue.value present), `{prefix}t` (the oneof's presence), `{prefix}s`... and the
    array's items (`a*`) and the map's (`mk` keys, `m*`: a map's values are taken as present, which
    is how encoders write them; ClickHouse does not report presence that deep). The analyzer is
    slow on lambdas over the schema's big tuple types: they stop here."""
    value = _t(kvs, "value")
    items, pairs = _t(value, "array_value", "values"), _t(value, "kvlist_value", "values")
    out = [f"{_t(kvs, 'key')} AS {prefix}k", f"{_t(kvs, 'present')} AS {prefix}p"]
    out.append(f"{_t(pairs, 'key')} AS {prefix}mk")
    for letter, name in _FIELDS.items():
        out.append(f"{_t(value, name)} AS {prefix}{letter}")
        out.append(f"{_t(items, name)} AS {prefix}a{letter}")
        out.append(f"{_t(pairs, 'value', name)} AS {prefix}m{letter}")
    return out


def _spans(source: str) -> str:
    """Requests -> one row per span: its fields, and its KeyValue lists (the span's, the resource's,
    each event's, each link's) flattened into `_k`, `_t`, `_s`..., `_n` the length of each list and
    `_o` its offset; `_kv_bytes` and `_res_bytes` the sizes the scan measured."""
    sp, scope = "_sp", _t("_ss", "scope")
    lists = (
        f"arrayConcat([{_t(sp, 'attributes')}, {_t('_rs', 'resource', 'attributes')}], "
        f"{_t(sp, 'events', 'attributes')}, {_t(sp, 'links', 'attributes')})"
    )
    fields = [
        *(
            f"{_t(sp, f)} AS _{f}"
            for f in ("trace_id", "span_id", "parent_span_id", "trace_state", "name", "kind")
        ),
        f"{_t(sp, 'start_time_unix_nano')} AS _start",
        f"{_t(sp, 'end_time_unix_nano')} AS _end",
        f"{_t(sp, 'status', 'message')} AS _status_message",
        f"{_t(sp, 'status', 'code')} AS _status_code",
        f"{_t(sp, 'events', 'time_unix_nano')} AS _event_times",
        f"{_t(sp, 'events', 'name')} AS _event_names",
        *(f"{_t(sp, 'links', f)} AS _link_{f}" for f in ("trace_id", "span_id", "trace_state")),
        f"{_t(scope, 'name')} AS _scope_name",
        f"{_t(scope, 'version')} AS _scope_version",
        f"{_t(scope, 'attributes', 'key')} AS _scope_k",
        f"{_t(scope, 'attributes', 'value', 'string_value')} AS _scope_s",
        f"{_t(scope, 'attributes', 'value', 'array_value', 'values', 'string_value')} AS _scope_as",
        f"{_t(scope, 'attributes', 'value', 'kvlist_value', 'values', 'key')} AS _scope_mk",
        f"{_t(scope, 'attributes', 'value', 'kvlist_value', 'values', 'value', 'string_value')} AS _scope_ms",
        f"{_t('_zr', 'resource')} AS _res_bytes",
        "_kv_bytes",
        f"arrayMap(l -> length(l), {lists}) AS _n",
        "arrayMap((c, n) -> c - n + 1, arrayCumSum(_n), _n) AS _o",
        *_leaves(f"arrayFlatten({lists})", "_"),
    ]
    return (
        f"SELECT {', '.join(fields)} FROM (SELECT resource_spans, spendscope_sizes FROM {source}) "
        "ARRAY JOIN resource_spans AS _rs, spendscope_sizes AS _zr "
        "ARRAY JOIN tupleElement(_rs, 'scope_spans') AS _ss, tupleElement(_zr, 'scope_spans') AS _zs "
        "ARRAY JOIN tupleElement(_ss, 'spans') AS _sp, tupleElement(_zs, 'spans') AS _kv_bytes"
    )


def _varint_size(x: str) -> str:
    """Bytes of the varint of `x` (a UInt64 name)."""
    limits = ", ".join(f"{x} < {1 << (7 * n)}, {n}" for n in range(1, 10))
    return f"multiIf({limits}, 10)"


def _field_size(x: str) -> str:
    """A length-delimited field (one-byte tag) around a payload of `x` bytes (a name)."""
    return f"1 + {_varint_size(x)} + {x}"


def _scalar_size() -> str:
    """The encoded size of a value's scalar field (a lambda over _ARGS); 0 for none, array, map."""
    return (
        f"multiIf(t = 's', {_field_size('length(s)')}, t = 'b', 1 + {_varint_size('b')}, "
        f"t = 'i', 1 + {_varint_size('reinterpretAsUInt64(i)')}, t = 'd', 9, "
        f"t = 'y', {_field_size('length(y)')}, 0)"
    )


def _key_size(k: str) -> str:
    return f"if({k} = '', 0, {_field_size(f'length({k})')})"


def _sizes() -> str:
    """Each KeyValue's encoded size with its field's tag and length, recomputed canonically
    (each field once, in its shortest form, proto3 defaults left out) from what ClickHouse read."""
    rest = list(_FIELDS)[1:]
    inner = f"arrayMap(({_ARGS}) -> {_scalar_size()}, at, {', '.join(f'a{f}' for f in rest)})"
    items = f"arraySum(arrayMap(x -> {_field_size('x')}, {inner}))"
    pair_values = f"arrayMap(({_ARGS}) -> {_scalar_size()}, mt, {', '.join(f'm{f}' for f in rest)})"
    pairs = (
        f"arraySum(arrayMap(y -> {_field_size('y')}, "
        f"arrayMap((k, x) -> {_key_size('k')} + {_field_size('x')}, mk, {pair_values})))"
    )
    args = ", ".join([*_FIELDS, *(f"a{f}" for f in _FIELDS), "mk", *(f"m{f}" for f in _FIELDS)])
    columns = ", ".join(f"_{a}" for a in args.split(", "))
    content = (
        f"arrayMap(({args}) -> multiIf(t = 'a', {items}, t = 'k', {pairs}, {_scalar_size()}), {columns})"
    )
    value = f"arrayMap((t, x) -> if(t = 'a' OR t = 'k', {_field_size('x')}, x), _t, {content})"
    kv = f"arrayMap((k, p, x) -> {_key_size('k')} + if(p = 'value', {_field_size('x')}, 0), _k, _p, {value})"
    return f"arrayMap(x -> {_field_size('x')}, {kv})"


def _valid_utf8(p: str) -> list[str]:
    """Conditions: every string of a flattened KeyValue list is UTF-8 (keys, string values, one
    level down too), checked in place."""
    nested = [f"arrayAll(a -> arrayAll(x -> isValidUTF8(x), a), {p}{c})" for c in ("as", "mk", "ms")]
    return [f"arrayAll(x -> isValidUTF8(x), {p}k)", f"arrayAll(x -> isValidUTF8(x), {p}s)", *nested]


def _refused() -> str:
    """Whether SQL would not render this span exactly (see the module's docstring)."""
    names = "[_scope_name, _scope_version, _trace_state, _name, _status_message]"
    utf8 = [f"arrayAll(x -> isValidUTF8(x), {a})" for a in (names, "_event_names", "_link_trace_state")]
    utf8 += [*_valid_utf8("_"), *_valid_utf8("_scope_")]
    in_json = "arrayConcat(arrayFlatten(_as), arrayFlatten(_mk), arrayFlatten(_ms))"
    resource = "arraySum(arraySlice(_f, _o[2], _n[2]))"
    lists = "arrayFlatten(arrayMap((n, l) -> arrayWithConstant(n, l), _n, arrayEnumerate(_n)))"
    return (
        f"NOT ({' AND '.join(utf8)}) "
        f"OR arraySum(({_sizes()}) AS _f) - {resource} != _kv_bytes OR {resource} != _res_bytes "
        f"OR length(arrayDistinct(arrayZip({lists}, _k))) != length(_k) "  # a key twice in a list
        "OR arrayExists(x -> toInt8(x) IN (5, 6), arrayFlatten(arrayConcat(_at, _mt))) "
        "OR arrayExists((a, m) -> notEmpty(a) AND notEmpty(m), _at, _mt) "
        "OR arrayExists(m -> length(arrayDistinct(m)) != length(m), _mk) "
        f"OR match(arrayStringConcat({in_json}, '\\n'), '{_REFUSED_IN_JSON}')"
    )


def _span_valid() -> str:
    """The spans the Python decoder keeps (it rejects, counts and answers the others)."""
    return (
        "length(_trace_id) = 16 AND length(_span_id) = 8 AND _trace_id != repeat('\\0', 16) "
        f"AND _span_id != repeat('\\0', 8) AND _start <= {_MAX_TIME} AND _end <= {_MAX_TIME} "
        f"AND arrayAll(t -> t <= {_MAX_TIME}, _event_times) "
        "AND (_parent_span_id = '' OR length(_parent_span_id) = 8)"
    )


def _hex_or_empty(x: str) -> str:
    return f"if(replaceAll({x}, '\\0', '') = '', '', lower(hex({x})))"


def _map(o: str, n: str) -> str:
    return f"mapFromArrays(arraySlice(_k, {o}, {n}), arraySlice(_v, {o}, {n}))"


def _columns() -> list[str]:
    kinds = "['Unspecified', 'Internal', 'Server', 'Client', 'Producer', 'Consumer']"
    events = "length(_event_times)"
    return [
        "fromUnixTimestamp64Nano(toInt64(_start))",
        "lower(hex(_trace_id))",
        "lower(hex(_span_id))",
        "if(_parent_span_id = '' OR _parent_span_id = repeat('\\0', 8), '', lower(hex(_parent_span_id)))",
        "_trace_state",
        "_name",
        f"if(_kind < 6, arrayElement({kinds}, _kind + 1), '')",
        f"{_map('_o[2]', '_n[2]')}['service.name']",
        _map("_o[2]", "_n[2]"),
        "_scope_name",
        "_scope_version",
        _map("1", "_n[1]"),
        "if(_end > _start, _end - _start, 0)",
        "if(_status_code < 3, arrayElement(['Unset', 'Ok', 'Error'], _status_code + 1), '')",
        "_status_message",
        "arrayMap(t -> fromUnixTimestamp64Nano(toInt64(t)), _event_times)",
        "_event_names",
        f"arrayMap((o, n) -> {_map('o', 'n')}, arraySlice(_o, 3, {events}), arraySlice(_n, 3, {events}))",
        f"arrayMap(x -> {_hex_or_empty('x')}, _link_trace_id)",
        f"arrayMap(x -> {_hex_or_empty('x')}, _link_span_id)",
        "_link_trace_state",
        f"arrayMap((o, n) -> {_map('o', 'n')}, arraySlice(_o, 3 + {events}), arraySlice(_n, 3 + {events}))",
    ]


def _select() -> str:
    """SELECT the otel_traces columns (OTEL_TRACES_COLUMNS' order) from requests read from `{input}`.
    Fails with FALLBACK_MARKER if SQL would not render some span exactly. All in one SELECT over the
    spans: each level of subquery costs the analyzer ~50 ms here; and the filter is an ARRAY JOIN of
    [] or [1] (as a WHERE, the analyzer takes seconds over these expressions)."""
    args = ", ".join([*_FIELDS, "mk", *(f"a{f}" for f in _FIELDS), *(f"m{f}" for f in _FIELDS)])
    values = f"arrayMap(({args}) -> {_as_string()}, {', '.join(f'_{a}' for a in args.split(', '))})"
    columns = _columns()
    columns[7] = columns[7].replace("arraySlice(_v,", f"arraySlice(({values} AS _v),", 1)
    keep = f"if(throwIf({_refused()}, '{FALLBACK_MARKER}') = 0 AND {_span_valid()}, [1], [])"
    return f"SELECT {', '.join(columns)} FROM ({_spans('{input}')}) ARRAY JOIN {keep} AS _keep"


SELECT: Final = _select()
