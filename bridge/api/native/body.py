"""JSON request bodies read strictly: a wrong type or an unknown field is a 400 naming it.

Every write endpoint of the native API takes `Content-Type: application/json` (anything
else is a 415) holding one JSON object; `Fields` takes it apart field by field and refuses
what is left over.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .. import json_input
from ..errors import ApiError, bad_request
from ..params import is_text

MAX_TEXT = 2000  # characters of one string field (URLs are the longest)
MAX_ITEMS = 1000  # items of one list field
MAX_ID = (1 << 63) - 1  # a bigint


async def json_object(request: web.Request) -> dict[str, Any]:
    """The body as a JSON object; 415 when it is not JSON, 400 when it does not parse."""
    if request.content_type != "application/json":
        raise ApiError(415, "Send a JSON body (Content-Type: application/json)")
    raw = await request.read()  # over the root's client_max_size: 413
    try:
        data = json_input.loads(raw)
    except ValueError:
        raise bad_request("body: not valid JSON") from None
    if not isinstance(data, dict):
        raise bad_request("body: a JSON object is expected")
    return data


def _text_ok(value: str, limit: int) -> bool:
    return len(value) <= limit and is_text(value)  # no NUL: PostgreSQL text cannot hold it


def _whole(value: Any) -> bool:
    """An integer as JSON has it: `5` and `5.0` alike (never `true`)."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


class Fields:
    """Typed reads of a JSON object's fields; `done()` refuses the fields nobody read."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.read: set[str] = set()

    def _get(self, name: str, nullable: bool = False) -> Any:
        """The field's value; None when absent (or null, where null is allowed)."""
        self.read.add(name)
        if name in self.data and self.data[name] is None and not nullable:
            raise bad_request(f"{name}: null is not allowed (leave the field out)")
        return self.data.get(name)

    def string(
        self, name: str, *, required: bool = False, default: str = "", limit: int = MAX_TEXT
    ) -> str:
        value = self._get(name)
        if value is None:
            if required:
                raise bad_request(f"{name}: required")
            return default
        if not isinstance(value, str):
            raise bad_request(f"{name}: a string is expected")
        if not _text_ok(value, limit):
            raise bad_request(f"{name}: at most {limit} characters, no control characters")
        if required and not value:
            raise bad_request(f"{name}: must not be empty")
        return value

    def optional_string(self, name: str, *, limit: int = MAX_TEXT) -> str | None:
        """A string or null (absent: null); an empty string is refused (null says none)."""
        if self._get(name, nullable=True) is None:
            return None
        value = self.string(name, limit=limit)
        if not value:
            raise bad_request(f"{name}: must not be empty (null for none)")
        return value

    def strings(self, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
        value = self._get(name)
        if value is None:
            return default
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise bad_request(f"{name}: a list of strings is expected")
        if len(value) > MAX_ITEMS or not all(_text_ok(v, 200) for v in value):
            raise bad_request(f"{name}: at most {MAX_ITEMS} short strings, no control characters")
        return tuple(value)

    def ids(self, name: str) -> list[int] | None:
        value = self._get(name)
        if value is None:
            return None
        if not isinstance(value, list) or not all(_whole(v) for v in value):
            raise bad_request(f"{name}: a list of whole numbers is expected")
        if len(value) > MAX_ITEMS or not all(1 <= v <= MAX_ID for v in value):
            raise bad_request(f"{name}: at most {MAX_ITEMS} ids, each a positive whole number")
        return [int(v) for v in value]

    def boolean(self, name: str, default: bool = False) -> bool:
        value = self._get(name)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise bad_request(f"{name}: true or false is expected")
        return value

    def done(self) -> None:
        unknown = [k for k in self.data if k not in self.read]
        if unknown:
            shown = unknown[0][:40] if is_text(unknown[0]) else repr(unknown[0][:40])
            raise bad_request(f"{shown}: unknown field")
