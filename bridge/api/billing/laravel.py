"""What a Laravel 8 application answers, for the billing dialect's clients.

- validation failures: 422 `{"message": "The given data was invalid.", "errors": {field:
  [messages]}}` with Laravel's own wording (`The email field is required.`, `The from is
  not a valid date.`, `The selected domain name is invalid.`);
- no or a bad token: 401 `{"message": "Unauthenticated."}`;
- other errors: `{"message": ...}`.

Input is read the way `$request->all()` reads it: the query string, then the body as JSON
(an unreadable or non-object body counts as no input) or as a form.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from ..params import parse_time

INVALID = "The given data was invalid."
UNAUTHENTICATED = "Unauthenticated."
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+")

Rule = Callable[[str, Any], str | None]


class ValidationFailed(Exception):
    """Answered 422 with Laravel's `errors` object (by `validation_errors`)."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__(INVALID)
        self.errors = errors


@web.middleware
async def validation_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except ValidationFailed as failed:
        return web.json_response({"message": INVALID, "errors": failed.errors}, status=422)


def laravel_shape(status: int, message: str) -> dict[str, str]:
    return {"message": message}


def _words(field: str) -> str:
    return field.replace("_", " ")


def string(field: str, value: Any) -> str | None:
    return None if isinstance(value, str) else f"The {_words(field)} must be a string."


def email(field: str, value: Any) -> str | None:
    ok = isinstance(value, str) and len(value) <= 254 and _EMAIL.fullmatch(value) is not None
    return None if ok else f"The {_words(field)} must be a valid email address."


def date(field: str, value: Any) -> str | None:
    if isinstance(value, str) and len(value) <= 64:
        try:
            parse_time(value)
            return None
        except ValueError:
            pass
    return f"The {_words(field)} is not a valid date."


def validate(data: dict[str, Any], rules: dict[str, tuple[Rule, ...]]) -> dict[str, Any]:
    """Every field `required` plus its rules; raises ValidationFailed with every message.

    As Laravel does, a missing or empty value only gets "is required" (the other rules do
    not run on it); a present value gets the message of every rule it breaks."""
    errors: dict[str, list[str]] = {}
    for field, checks in rules.items():
        value = data.get(field)
        if value is None or (isinstance(value, str) and value.strip() == "") or value == []:
            errors[field] = [f"The {_words(field)} field is required."]
            continue
        found = [m for m in (check(field, value) for check in checks) if m is not None]
        if found:
            errors[field] = found
    if errors:
        raise ValidationFailed(errors)
    return {field: data[field] for field in rules}


async def read_input(request: web.Request) -> dict[str, Any]:
    """Query string and body merged (the body wins), like Laravel's `$request->all()`."""
    data: dict[str, Any] = {k: request.query.getall(k)[-1] for k in request.query}
    if not request.body_exists:
        return data
    if request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.post()
        data.update({k: v for k, v in form.items() if isinstance(v, str)})
        return data
    raw = await request.read()
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return data  # Laravel reads an unparseable JSON body as no input
    if isinstance(body, dict):
        data.update(body)
    return data
