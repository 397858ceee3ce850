"""Request bodies as Issabel pbxapi clients send them, read strictly.

JSON (what the pbxapi documents), form fields or multipart (what `curl --data` and PHP
clients send); PHP-style lists (`extension_list[]=200&extension_list[]=201`) become lists.
Nested JSON objects are flattened into dotted names, as Issabel does before it maps them
(`{"recording": {"inbound_external": "always"}}` -> `recording.inbound_external`).

A body that cannot be read is a 400 "Could not decode JSON" (Issabel's words), one too big
a 413; a field of the wrong type or shape a 400 naming it. Never a 500.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from .. import json_input
from ..errors import ApiError
from .errors import IssabelError

MAX_BODY = 64 * 1024  # bytes: these bodies carry a few short fields
MAX_FIELDS = 200
UNREADABLE = "Could not decode JSON"

Fields = dict[str, Any]


async def read_input(request: web.Request) -> Fields:
    """The body's fields, and the query string's under them ({} when there is neither)."""
    fields: Fields = {k: request.query.getall(k)[-1] for k in request.query if k != "fields"}
    if not request.body_exists:
        return fields
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise ApiError(413, "Request body too large")
    if request.content_type == "multipart/form-data":  # parsed from the stream: before read()
        form = await request.post()
        fields.update(_lists([(k, v) for k, v in form.items() if isinstance(v, str)]))
        return fields
    raw = await request.read()
    if len(raw) > MAX_BODY:
        raise ApiError(413, "Request body too large")
    if not raw.strip():
        return fields
    if request.content_type == "application/json" or raw.lstrip()[:1] in (b"{", b"["):
        fields.update(_json(raw))
        return fields
    fields.update(_form(raw))
    return fields


def _json(raw: bytes) -> Fields:
    try:
        data = json_input.loads(raw)
    except ValueError:
        raise IssabelError(400, UNREADABLE) from None
    if not isinstance(data, dict):
        raise IssabelError(400, UNREADABLE + ": a JSON object is expected")
    return flatten(data)


def _form(raw: bytes) -> Fields:
    try:
        pairs = parse_qsl(
            raw.decode("utf-8"),
            keep_blank_values=True,
            strict_parsing=True,
            max_num_fields=MAX_FIELDS,
        )
    except (UnicodeDecodeError, ValueError):
        raise IssabelError(400, UNREADABLE + ": neither JSON nor form fields") from None
    return _lists(pairs)


def _lists(pairs: list[tuple[str, str]]) -> Fields:
    fields: Fields = {}
    for key, value in pairs:
        if key.endswith("[]"):
            found = fields.setdefault(key[:-2], [])
            if isinstance(found, list):
                found.append(value)
        else:
            fields[key] = value
    return fields


def flatten(data: dict[str, Any], prefix: str = "") -> Fields:
    flat: Fields = {}
    for key, value in data.items():
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    if len(flat) > MAX_FIELDS:
        raise IssabelError(400, f"at most {MAX_FIELDS} fields")
    return flat


def text(fields: Fields, name: str, limit: int = 200) -> str | None:
    """A text field (JSON numbers taken as their digits); None when absent."""
    value = fields.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise IssabelError(400, f"{name}: must be a string", source=name)
    result = str(value)
    if len(result) > limit:
        raise IssabelError(400, f"{name}: at most {limit} characters", source=name)
    return result


def whole(fields: Fields, name: str, low: int, high: int) -> int | None:
    """A whole number given as a number or its digits; 422 out of [low, high], as Issabel."""
    value = fields.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise IssabelError(400, f"{name}: must be a whole number", source=name)
    try:
        number = int(str(value).strip())
    except ValueError:
        raise IssabelError(422, "Only numeric values allowed", source=name) from None
    if not low <= number <= high:
        raise IssabelError(422, f"Valid range: {low}-{high}", source=name)
    return number


def choice(fields: Fields, name: str, allowed: tuple[str, ...]) -> str | None:
    value = text(fields, name)
    if value is None:
        return None
    if value not in allowed:
        raise IssabelError(
            422, f"Not in list of allowed values ({', '.join(allowed)})", source=name
        )
    return value


def reload(fields: Fields) -> bool:
    """Issabel's `reload`: absent, true or 1 apply the change now; false or 0 store it only."""
    value = fields.get("reload")
    if value is None or value is True or value == 1 or str(value).lower() in ("true", "1"):
        return True
    if value is False or value == 0 or str(value).lower() in ("false", "0", ""):
        return False
    raise IssabelError(422, "Not in list of allowed values (true, false, 1, 0)", source="reload")
