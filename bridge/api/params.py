"""Query parameters read strictly: a bad value is a 400 naming the parameter, never a 500.

Lists are repeated parameters or comma-separated (`user=a&user=b`, `user=a,b`); times are
ISO 8601 (`2026-11-28T08:00:00Z`, a date alone is its midnight UTC) or the VPBX form
`20261128T080000Z`; numbers are normalised to E.164 digits.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime

from aiohttp import web

from ..tracker.numbers import PhoneNormalizer
from .errors import bad_request

MAX_VALUES = 100  # items of one list parameter
MAX_TEXT = 200  # characters of a text parameter


def parse_time(value: str) -> datetime:
    """ISO 8601 or `YYYYmmddTHHMMSSZ`; naive times are UTC. ValueError when neither."""
    text = value.strip()
    for form in ("%Y%m%dT%H%M%SZ", "%Y%m%dT%H%M%S", "%Y%m%d"):
        try:
            return datetime.strptime(text, form).replace(tzinfo=UTC)
        except ValueError:
            pass
    # a "+" of an offset written unencoded in a query string arrives as a space
    text = re.sub(r" (\d{2}:?\d{2})$", r"+\1", text)
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class Params:
    def __init__(self, request: web.Request, region: str = "RU") -> None:
        self.query = request.query
        self.numbers = PhoneNormalizer(region)

    def raw(self, name: str) -> str | None:
        value = self.query.get(name)
        if value is None or value.strip() == "":
            return None
        if len(value) > MAX_TEXT * 10:
            raise bad_request(f"{name}: too long")
        return value.strip()

    def text(self, name: str) -> str | None:
        value = self.raw(name)
        if value is not None and (len(value) > MAX_TEXT or not value.isprintable()):
            raise bad_request(f"{name}: at most {MAX_TEXT} printable characters")
        return value

    def strings(self, name: str) -> tuple[str, ...]:
        values = [
            part.strip()
            for raw in self.query.getall(name, [])
            for part in raw.split(",")
            if part.strip()
        ]
        if len(values) > MAX_VALUES:
            raise bad_request(f"{name}: at most {MAX_VALUES} values")
        if any(len(v) > MAX_TEXT or not v.isprintable() for v in values):
            raise bad_request(f"{name}: values must be short printable text")
        return tuple(values)

    def choices(self, name: str, allowed: Sequence[str]) -> tuple[str, ...]:
        values = self.strings(name)
        wrong = [v for v in values if v not in allowed]
        if wrong:
            raise bad_request(f"{name}: {wrong[0]!r} is not one of {', '.join(allowed)}")
        return values

    def choice(self, name: str, allowed: Sequence[str], default: str) -> str:
        value = self.raw(name)
        if value is None:
            return default
        if value not in allowed:
            raise bad_request(f"{name}: {value!r} is not one of {', '.join(allowed)}")
        return value

    def integer(
        self, name: str, default: int, *, minimum: int | None = None, maximum: int | None = None
    ) -> int:
        value = self.raw(name)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError:
            raise bad_request(f"{name}: {value[:40]!r} is not a whole number") from None
        if minimum is not None and number < minimum:
            raise bad_request(f"{name}: must be at least {minimum}")
        if maximum is not None and number > maximum:
            raise bad_request(f"{name}: must be at most {maximum}")
        return number

    def time(self, name: str) -> datetime | None:
        value = self.raw(name)
        if value is None:
            return None
        try:
            return parse_time(value)
        except ValueError:
            raise bad_request(
                f"{name}: {value[:40]!r} is not a time (ISO 8601 or YYYYmmddTHHMMSSZ)"
            ) from None

    def phone(self, name: str) -> str | None:
        value = self.text(name)
        if value is None:
            return None
        digits = self.numbers.normalize(value)
        if not digits:
            raise bad_request(f"{name}: {value[:40]!r} is not a phone number")
        return digits
