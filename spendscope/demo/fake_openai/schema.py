"""The smallest JSON instance valid against a JSON Schema, for structured-output replies.

Covers what ``openai``'s pydantic-to-strict-schema conversion emits: objects with required
properties, ``$ref`` into ``$defs``, ``anyOf``, enums, consts, simple bounds and string formats.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

_FORMATS = {
    "date-time": "1970-01-01T00:00:00Z",
    "date": "1970-01-01",
    "time": "00:00:00",
    "duration": "P0D",
    "uuid": "00000000-0000-0000-0000-000000000000",
    "email": "x@example.com",
    "uri": "https://example.com/",
    "ipv4": "127.0.0.1",
    "ipv6": "::1",
}
_MAX_DEPTH = 64


def schema_instance(schema: Mapping[str, Any], root: Mapping[str, Any] | None = None, depth: int = 0) -> Any:
    root = schema if root is None else root
    if depth > _MAX_DEPTH:
        raise ValueError("JSON schema nests too deeply (a required recursive $ref?)")
    if "$ref" in schema:
        return schema_instance(_resolve(root, schema["$ref"]), root, depth + 1)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if options := schema.get(key):
            # null is the smallest choice, and it ends recursion through Optional self-references.
            choice = (
                next((o for o in options if o.get("type") == "null"), options[0])
                if key != "allOf"
                else options[0]
            )
            return schema_instance(choice, root, depth + 1)
    kind = schema.get("type", "object" if "properties" in schema else None)
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        properties = schema.get("properties") or {}
        return {
            name: schema_instance(properties.get(name, {}), root, depth + 1)
            for name in schema.get("required", [])
        }
    if kind == "array":
        if "prefixItems" in schema:
            return [schema_instance(item, root, depth + 1) for item in schema["prefixItems"]]
        count = int(schema.get("minItems", 0))
        return [schema_instance(schema.get("items") or {}, root, depth + 1) for _ in range(count)]
    if kind == "string":
        return _FORMATS.get(schema.get("format", ""), "x" * max(1, int(schema.get("minLength", 1))))
    if kind in ("integer", "number"):
        return _bounded_number(schema, integer=kind == "integer")
    if kind == "boolean":
        return False
    return None


def _resolve(root: Mapping[str, Any], ref: str) -> Mapping[str, Any]:
    if not ref.startswith("#"):
        raise ValueError(f"only local $ref is supported, got {ref!r}")
    node: Any = root
    for part in filter(None, ref[1:].split("/")):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    if not isinstance(node, Mapping):
        raise ValueError(f"$ref {ref!r} does not point at a schema")
    return node


def _bounded_number(schema: Mapping[str, Any], *, integer: bool) -> int | float:
    """0, moved just inside ``minimum``/``maximum`` (and their exclusive forms) when it falls outside."""
    step = 1 if integer else 0.5
    low = schema.get("minimum", schema["exclusiveMinimum"] + step if "exclusiveMinimum" in schema else None)
    high = schema.get("maximum", schema["exclusiveMaximum"] - step if "exclusiveMaximum" in schema else None)
    value: int | float = 0
    if low is not None and value < low:
        value = math.ceil(low) if integer else low
    elif high is not None and value > high:
        value = math.floor(high) if integer else high
    return value
