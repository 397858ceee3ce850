"""What a Laravel 8 application answers, for the billing dialect's clients.

- validation failures: 422 `{"message": "The given data was invalid.", "errors": {field:
  [messages]}}` with Laravel's own wording (`The email field is required.`, `The from is
  not a valid date.`, `The selected domain name is invalid.`);
- no or a bad token: 401 `{"message": "Unauthenticated."}`;
- other errors: `{"message": ...}`;
- every failure also carries `"success": false, "data": ""`: the API's documentation
  gives one error format (`{"message": string, "success": bool, "data": string}`), so a
  client may read `success` or `data` of any failure.

Input is read the way `$request->all()` reads it: the query string, then the body as JSON
(an unreadable or non-object body counts as no input) or as a form.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from .. import json_input
from ..params import parse_time

INVALID = "The given data was invalid."
UNAUTHENTICATED = "Unauthenticated."
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+")
# PHP's slashed dates, `Y/m/d` and the American `m/d/Y`, each maybe followed by a time
_SLASHED = re.compile(r"(?:(\d{4})/(\d{1,2})/(\d{1,2})|(\d{1,2})/(\d{1,2})/(\d{4}))( .+)?")

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
        body = {**laravel_shape(422, INVALID), "errors": failed.errors}
        return web.json_response(body, status=422)


def laravel_shape(status: int, message: str) -> dict[str, Any]:
    return failure(message)


def failure(message: str) -> dict[str, Any]:
    """A failure as the API's documentation describes every one (`data` holds nothing)."""
    return {"message": message, "success": False, "data": ""}


def _words(field: str) -> str:
    return field.replace("_", " ")


def string(field: str, value: Any) -> str | None:
    return None if isinstance(value, str) else f"The {_words(field)} must be a string."


def email(field: str, value: Any) -> str | None:
    ok = isinstance(value, str) and len(value) <= 254 and _EMAIL.fullmatch(value) is not None
    return None if ok else f"The {_words(field)} must be a valid email address."


def parse_date(value: str) -> datetime:
    """A date as billing clients send it to Laravel's `date` rule (PHP's strtotime) and
    the original hands on to PostgreSQL: ISO 8601 (`2026-11-22`, `2026-11-22 10:00:00`,
    with or without an offset), `2026/11/22` and the American `11/22/2026`, those two
    with a time too. Naive times are UTC, like the stamps this API answers. ValueError
    (or OverflowError: year 1 with an offset) when it is none of these."""
    text = value.strip()
    slashed = _SLASHED.fullmatch(text)
    if slashed is not None:
        year, month, day, us_month, us_day, us_year, rest = slashed.groups()
        ymd = (int(year or us_year), int(month or us_month), int(day or us_day))
        text = "{:04d}-{:02d}-{:02d}".format(*ymd) + (rest or "")
    parsed = parse_time(text)
    parsed.astimezone(UTC)  # representable in UTC, as PostgreSQL compares it
    return parsed


def date(field: str, value: Any) -> str | None:
    if isinstance(value, str) and len(value) <= 64:
        try:
            parse_date(value)
            return None
        except (ValueError, OverflowError):
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
        body = json_input.loads(raw)
    except ValueError:
        return data  # Laravel reads an unparseable JSON body as no input
    if isinstance(body, dict):
        data.update(body)
    return data
