"""Query parameters read strictly: a bad value is a 400 naming the parameter, never a 500.

Lists are repeated parameters or comma-separated (`user=a&user=b`, `user=a,b`); times are
ISO 8601 (`2026-11-28T08:00:00Z`, a date alone is its midnight UTC) or the VPBX form
`20261128T080000Z`; numbers are normalised to E.164 digits.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from aiohttp import web

from ..tracker.numbers import PhoneNormalizer
from .errors import bad_request

MAX_VALUES = 100  # items of one list parameter
MAX_TEXT = 200  # characters of a text parameter
# control characters (C0, DEL, C1) and lone surrogates: neither PostgreSQL text nor a log
# line should hold them; everything else is text (names in any script, emoji, ...)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
# the same rule as a JSON Schema (ECMA 262) pattern, for API documents
TEXT_PATTERN = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"


def is_text(value: str) -> bool:
    """Whether `value` holds no control character (and no lone surrogate)."""
    return _CONTROL.search(value) is None


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
    """`strict`: a parameter that is given must say something (`name=` or blanks are a
    400, not "left out") and is taken as written (no trimming): what an API documented
    by an OpenAPI schema promises. Otherwise (the compatibility dialects, whose clients
    send `user=&diversion=`), blank means absent and values are trimmed."""

    def __init__(self, request: web.Request, region: str = "RU", *, strict: bool = False) -> None:
        self.query = request.query
        self.numbers = PhoneNormalizer(region)
        self.strict = strict

    def check_names(self, scalars: Iterable[str], lists: Iterable[str] = ()) -> None:
        """A parameter this endpoint does not know, or a single-valued one given twice, is
        a 400 (a misspelt filter would otherwise widen the answer silently)."""
        single, many = set(scalars), set(lists)
        for name in self.query:
            if name not in single and name not in many:
                shown = name[:40] if is_text(name) else repr(name[:40])
                raise bad_request(f"{shown}: unknown parameter")
            if name in single and len(self.query.getall(name)) > 1:
                raise bad_request(f"{name}: give it once")

    def raw(self, name: str) -> str | None:
        value = self.query.get(name)
        if value is None:
            return None
        if len(value) > MAX_TEXT * 10:
            raise bad_request(f"{name}: too long")
        if value.strip() == "":
            if self.strict:
                raise bad_request(f"{name}: empty (leave the parameter out instead)")
            return None
        return value if self.strict else value.strip()

    def text(self, name: str) -> str | None:
        value = self.raw(name)
        if value is not None and (len(value) > MAX_TEXT or not is_text(value)):
            raise bad_request(f"{name}: at most {MAX_TEXT} characters, no control characters")
        return value

    def strings(self, name: str) -> tuple[str, ...]:
        raws = self.query.getall(name, [])
        if self.strict and any(not part.strip() for raw in raws for part in raw.split(",")):
            raise bad_request(f"{name}: empty value (leave the parameter out instead)")
        values = [part.strip() for raw in raws for part in raw.split(",") if part.strip()]
        if len(values) > MAX_VALUES:
            raise bad_request(f"{name}: at most {MAX_VALUES} values")
        if any(len(v) > MAX_TEXT or not is_text(v) for v in values):
            raise bad_request(f"{name}: values must be short text without control characters")
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

    def boolean(self, name: str, default: bool) -> bool:
        value = self.raw(name)
        if value is None:
            return default
        if value.lower() in ("true", "1", "yes"):
            return True
        if value.lower() in ("false", "0", "no"):
            return False
        raise bad_request(f"{name}: {value[:40]!r} is not true or false")

    def time(self, name: str) -> datetime | None:
        value = self.raw(name)
        if value is None:
            return None
        try:
            parsed = parse_time(value)
            parsed.astimezone(UTC)  # year 1 or 9999 with an offset: out of range in UTC
            return parsed
        except (ValueError, OverflowError):
            raise bad_request(
                f"{name}: {value[:40]!r} is not a time (ISO 8601 or YYYYmmddTHHMMSSZ)"
            ) from None

    def phone(self, name: str) -> str | None:
        value = self.text(name)
        if value is None:
            return None
        digits = self.numbers.normalize(value)
        if not any("0" <= c <= "9" for c in value) or not digits.isdigit():
            raise bad_request(f"{name}: {value[:40]!r} is not a phone number")
        return digits
