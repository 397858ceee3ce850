"""`/api/v1/docs`: the OpenAPI document as one self-contained page (no scripts, no CDN:
the PBX is often offline), generated from the document so the two never disagree."""

from __future__ import annotations

from html import escape
from typing import Any

STYLE = """
body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
h1{margin-bottom:.2rem}h2{margin-top:2.5rem;border-bottom:1px solid #ddd}
.op{margin:1.2rem 0;padding:.6rem .9rem;border:1px solid #e3e3e3;border-radius:6px}
.m{display:inline-block;min-width:4.2rem;font-weight:700;font-family:monospace}
.get{color:#0a6}.post{color:#06c}.put{color:#a60}.delete{color:#c33}
code,.path{font-family:ui-monospace,monospace}.path{font-weight:600}
table{border-collapse:collapse;margin:.4rem 0;width:100%}
td,th{border-top:1px solid #eee;padding:.2rem .5rem;text-align:left;vertical-align:top}
th{font-weight:600;color:#555}.req{color:#c33}small{color:#666}
"""


def _value(v: Any) -> str:
    """An enum's value as JSON writes it ('' quoted so that it shows)."""
    return "null" if v is None else repr(v) if v == "" else str(v)


def _type(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    if "enum" in schema:
        return " | ".join(_value(v) for v in schema["enum"])
    if schema.get("type") == "array":
        return f"list of {_type(schema.get('items', {}))}"
    kind = schema.get("type", "object")
    kind = " or ".join(kind) if isinstance(kind, list) else str(kind)
    limits = [
        f"{label} {schema[key]}"
        for key, label in (("minimum", "≥"), ("maximum", "≤"), ("maxLength", "max length"))
        if key in schema
    ]
    if schema.get("format"):
        kind += f" ({schema['format']})"
    return kind + (f", {', '.join(limits)}" if limits else "")


def _parameters(params: list[dict[str, Any]]) -> str:
    rows = "".join(
        f"<tr><td><code>{escape(p['name'])}</code>"
        f"{' <span class=req>required</span>' if p.get('required') else ''}</td>"
        f"<td>{escape(p['in'])}</td><td>{escape(_type(p['schema']))}</td>"
        f"<td>{escape(p.get('description', ''))}</td></tr>"
        for p in params
    )
    return f"<table><tr><th>parameter</th><th>in</th><th>type</th><th></th></tr>{rows}</table>"


def _schema_table(name: str, schema: dict[str, Any]) -> str:
    if "oneOf" in schema:
        inner = " or ".join(
            "{" + ", ".join(escape(k) for k in s.get("properties", {})) + "}"
            for s in schema["oneOf"]
        )
        return f"<h3 id='{escape(name)}'>{escape(name)}</h3><p>{inner}</p>"
    required = set(schema.get("required", []))
    rows = "".join(
        f"<tr><td><code>{escape(k)}</code>"
        f"{' <span class=req>required</span>' if k in required else ''}</td>"
        f"<td>{escape(_type(v))}</td><td>{escape(v.get('description', ''))}</td></tr>"
        for k, v in schema.get("properties", {}).items()
    )
    return f"<h3 id='{escape(name)}'>{escape(name)}</h3><table>{rows}</table>"


def _operation(method: str, path: str, o: dict[str, Any]) -> str:
    parts = [
        f"<div class=op><span class='m {method}'>{method.upper()}</span> "
        f"<span class=path>{escape(path)}</span> — {escape(o.get('summary', ''))}"
    ]
    if o.get("security") == []:
        parts.append(" <small>(no key needed)</small>")
    if o.get("parameters"):
        parts.append(_parameters(o["parameters"]))
    body = o.get("requestBody", {}).get("content", {}).get("application/json")
    if body:
        parts.append(f"<p>Body (JSON): <code>{escape(_type(body['schema']))}</code></p>")
    answers = ", ".join(
        f"<b>{escape(status)}</b> {escape(r.get('description', ''))}"
        for status, r in o["responses"].items()
    )
    parts.append(f"<p><small>{answers}</small></p></div>")
    return "".join(parts)


def render(doc: dict[str, Any]) -> str:
    info = doc["info"]
    base = doc["servers"][0]["url"]
    ops = "".join(
        _operation(method, base + path, o)
        for path, methods in doc["paths"].items()
        for method, o in methods.items()
    )
    schemas = "".join(_schema_table(name, s) for name, s in doc["components"]["schemas"].items())
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{escape(info['title'])}</title><style>{STYLE}</style></head><body>"
        f"<h1>{escape(info['title'])}</h1><p><small>version {escape(info['version'])} · "
        f"<a href='{escape(base)}/openapi.json'>openapi.json</a></small></p>"
        f"<p>{escape(info.get('description', ''))}</p>"
        f"<h2>Endpoints</h2>{ops}<h2>Shapes</h2>{schemas}</body></html>"
    )
