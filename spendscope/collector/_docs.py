"""/docs: the OpenAPI document as one HTML page, rendered here (no script, no asset from elsewhere):
each operation with its summary, description, parameters and answers, and a link to /openapi.json
for generating clients."""

from __future__ import annotations

from html import escape
from typing import Any

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; }
h2 { margin-top: 2.5rem; font-size: 1.1rem; } code { background: #f3f3f3; padding: 0 .2rem; }
table { border-collapse: collapse; width: 100%; margin: .5rem 0 1rem; }
th, td { text-align: left; border-bottom: 1px solid #ddd; padding: .3rem .5rem; vertical-align: top; }
.method { font-weight: bold; color: #0a5; }
"""


def page(openapi: dict[str, Any]) -> str:
    info = openapi.get("info", {})
    title = escape(str(info.get("title", "API")))
    parts = [
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{title}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>{title} <small>{escape(str(info.get('version', '')))}</small></h1>",
        f"<p>{escape(str(info.get('summary', '')))}</p>",
        "<p>The machine-readable description, to generate clients from: <a href='/openapi.json'>"
        "<code>/openapi.json</code></a> (OpenAPI "
        f"{escape(str(openapi.get('openapi', '')))}). Requests carry <code>Authorization: Bearer "
        "&lt;token&gt;</code> when the collector requires a token.</p>",
    ]
    for path, operations in openapi.get("paths", {}).items():
        for method, operation in operations.items():
            parts.append(_operation(path, method, operation))
    parts.append("</body></html>")
    return "\n".join(parts)


def _operation(path: str, method: str, operation: dict[str, Any]) -> str:
    out = [
        f"<h2><span class='method'>{escape(method.upper())}</span> <code>{escape(path)}</code></h2>",
        f"<p>{escape(str(operation.get('description') or operation.get('summary', '')))}</p>",
    ]
    parameters = operation.get("parameters", [])
    if parameters:
        out.append(
            "<table><tr><th>parameter</th><th>in</th><th>type</th><th>default</th><th>meaning</th></tr>"
        )
        for p in parameters:
            schema = p.get("schema", {})
            required = " (required)" if p.get("required") else ""
            out.append(
                f"<tr><td><code>{escape(str(p.get('name')))}</code>{required}</td><td>{escape(str(p.get('in')))}"
                f"</td><td>{escape(_type(schema))}</td><td>{escape(_default(schema))}</td>"
                f"<td>{escape(str(p.get('description', '')))}</td></tr>"
            )
        out.append("</table>")
    out.append("<table><tr><th>answer</th><th>content</th><th>meaning</th></tr>")
    for status, response in operation.get("responses", {}).items():
        content = ", ".join(response.get("content", {}))
        out.append(
            f"<tr><td>{escape(str(status))}</td><td>{escape(content)}</td>"
            f"<td>{escape(str(response.get('description', '')))}</td></tr>"
        )
    out.append("</table>")
    return "\n".join(out)


def _type(schema: dict[str, Any]) -> str:
    if "anyOf" in schema:
        return " or ".join(_type(s) for s in schema["anyOf"])
    if "enum" in schema:
        return " | ".join(str(v) for v in schema["enum"])
    if schema.get("type") == "array":
        return f"list of {_type(schema.get('items', {}))}"
    kind = str(schema.get("type", "any"))
    limits = [f"{k} {schema[k]}" for k in ("minimum", "maximum") if k in schema]
    return f"{kind} ({', '.join(limits)})" if limits else kind


def _default(schema: dict[str, Any]) -> str:
    return "" if "default" not in schema or schema["default"] is None else str(schema["default"])
