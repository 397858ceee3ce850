"""Request bodies as VPBX clients send them: a JSON object or form fields, read strictly.

A body that is not what its Content-Type says, not an object, too big, or carries a field
of the wrong type is a 4xx with a message naming the problem, never a 500.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from .. import json_input
from ..errors import ApiError, bad_request

MAX_BODY = 64 * 1024  # bytes: these bodies carry a few short fields
MAX_TEXT = 2000  # characters of one field (URLs are the longest)

Fields = dict[str, Any]


async def read_fields(request: web.Request) -> Fields:
    """The body's fields ({} when there is no body)."""
    if not request.body_exists:
        return {}
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise ApiError(413, "Request body too large")
    if request.content_type == "multipart/form-data":
        form = await request.post()
        return {k: v for k, v in form.items() if isinstance(v, str)}
    raw = await request.read()
    if len(raw) > MAX_BODY:
        raise ApiError(413, "Request body too large")
    if not raw.strip():
        return {}
    if request.content_type == "application/x-www-form-urlencoded":
        return _form(raw)
    if request.content_type == "application/json" or raw.lstrip()[:1] in (b"{", b"["):
        return _json(raw)
    return _form(raw)  # no or another content type: form fields, as curl -d sends them


def _json(raw: bytes) -> Fields:
    try:
        data = json_input.loads(raw)
    except ValueError:
        raise bad_request("body: not valid JSON") from None
    if not isinstance(data, dict):
        raise bad_request("body: a JSON object is expected")
    return data


def _form(raw: bytes) -> Fields:
    try:
        text = raw.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=True, max_num_fields=100)
    except (UnicodeDecodeError, ValueError):
        raise bad_request("body: neither a JSON object nor form fields") from None
    return dict(pairs)


def text(fields: Fields, name: str, *, required: bool = False, limit: int = 200) -> str | None:
    """A short text field; JSON numbers are taken as their digits (`"phone": 79101234567`)."""
    value = fields.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise bad_request(f"{name}: required")
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise bad_request(f"{name}: must be a string")
    result = str(value).strip()
    if len(result) > min(limit, MAX_TEXT) or not result.isprintable():
        raise bad_request(f"{name}: at most {min(limit, MAX_TEXT)} printable characters")
    return result


def required_text(fields: Fields, name: str, *, limit: int = 200) -> str:
    value = text(fields, name, required=True, limit=limit)
    if value is None:  # text() raised already; this keeps the type plain str
        raise bad_request(f"{name}: required")
    return value


def boolean(fields: Fields, name: str) -> bool | None:
    """true/false as JSON, or as form fields write them (true, false, 1, 0, on, off)."""
    value = fields.get(name)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "1", "on", "yes"):
        return True
    if isinstance(value, str) and value.strip().lower() in ("false", "0", "off", "no"):
        return False
    raise bad_request(f"{name}: must be true or false")


def integer(fields: Fields, name: str) -> int | None:
    """A whole number, as a JSON number or its digits."""
    value = fields.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise bad_request(f"{name}: must be a whole number")
    try:
        return int(str(value).strip())
    except ValueError:
        raise bad_request(f"{name}: must be a whole number") from None


def mapping(fields: Fields, name: str) -> Fields | None:
    """A JSON object field (None when absent)."""
    value = fields.get(name)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise bad_request(f"{name}: must be an object")
    return value
