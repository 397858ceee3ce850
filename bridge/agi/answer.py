"""Read a CRM's answer to ``contact``: the forms real CRMs write, and nothing else.

The spec says ``{"contact_name": "...", "responsible": "..."}`` or ``{}``. Known forms in
the field, all accepted: that JSON object; JavaScript-ish text (unquoted keys, single
quotes, trailing commas, ``True``/``None``: see :mod:`.loose_json`); ``{"ok": true}``
meaning "no such contact"; the object wrapped in a list or one level down
(``{"data": {...}}``); a form-encoded body (``contact_name=Ivan+Petrov&responsible=101``).
No ``contact_name`` means no contact, and so does an empty body.

Anything else names nobody and says why (:attr:`Answer.rejected`, which the caller
logs): a body that is not one complete value of a known form (broken JSON, HTML, two
objects, a body cut at the read limit), and values that are no name: not text, markup
characters (``<>{}``), longer than :data:`MAX_NAME` once control characters are gone.
Such values are rejected whole rather than trimmed into something that looks like a name.
The reader never raises: a caller-ID name is a nicety, an exception would only lose it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from . import loose_json
from .wire import MAX_ANSWER_BYTES

__all__ = [
    "MAX_NAME",
    "NO_CONTACT",
    "Answer",
    "Contact",
    "clean_text",
    "parse_contact_answer",
    "read_contact_answer",
]

MAX_NAME = 80  # phones show ~20 characters; anything longer is not a name
MARKUP = frozenset("<>{}")
_FORM_KEY = re.compile(r"[A-Za-z_][\w.\[\]-]*")
_FORM_FIELDS = 100


@dataclass(frozen=True, slots=True)
class Contact:
    """What the dialplan gets: a display name and the responsible (as the CRM wrote it)."""

    name: str = ""
    responsible: str = ""

    @property
    def found(self) -> bool:
        return bool(self.name)


NO_CONTACT = Contact()


@dataclass(frozen=True, slots=True)
class Answer:
    """A read answer: the contact, or NO_CONTACT and ``rejected`` saying why it was refused."""

    contact: Contact
    rejected: str = ""


class _Rejected(Exception):
    pass


def clean_text(value: str) -> str:
    """One line: whitespace of any kind becomes one space, other unprintables go."""
    if value.isprintable() and "  " not in value and value == value.strip():
        return value  # the usual case, without building anything
    chars = (" " if ch.isspace() else ch for ch in value)
    return " ".join("".join(ch for ch in chars if ch == " " or ch.isprintable()).split())


def _field(fields: dict[str, Any], key: str) -> str:
    """``contact_name``/``responsible`` as display text; _Rejected when it is no such text."""
    value = fields.get(key)
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _Rejected(f"{key} is a {_kind(value)}, not text")
    if isinstance(value, float):
        text = str(int(value)) if value.is_integer() else str(value)
    else:
        text = clean_text(str(value))
    if MARKUP.intersection(text):
        raise _Rejected(f"{key} contains markup characters")
    if len(text) > MAX_NAME:
        raise _Rejected(f"{key} is longer than {MAX_NAME} characters ({len(text)})")
    return text


def _form(text: str) -> dict[str, Any]:
    """``a=1&b=2`` exactly: no spaces or line breaks, every pair ``key=value``."""
    if any(ch.isspace() for ch in text):
        raise _Rejected("neither JSON nor a form-encoded body")
    try:
        pairs = parse_qsl(
            text, keep_blank_values=True, strict_parsing=True, max_num_fields=_FORM_FIELDS
        )
    except ValueError as exc:
        raise _Rejected("neither JSON nor a form-encoded body") from exc
    fields: dict[str, Any] = {}
    for key, value in pairs:
        if _FORM_KEY.fullmatch(key) is None:
            raise _Rejected("neither JSON nor a form-encoded body")
        fields.setdefault(key, value)
    return fields


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        pass
    try:
        return loose_json.load(text)
    except loose_json.LooseJsonError as exc:
        raise _Rejected(f"not JSON, even leniently: {exc}") from exc


def _kind(value: Any) -> str:
    """A JSON value's kind, as a log line should name it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "list" if isinstance(value, list) else "object"


def _contact_object(value: Any) -> dict[str, Any] | None:
    """The object holding ``contact_name``: the top level, a list's first item, one level down.

    None for an empty list (no contact); _Rejected for anything that is not an object.
    """
    if isinstance(value, list):
        if not value:
            return None
        value = value[0]
    if not isinstance(value, dict):
        raise _Rejected(f"the answer is a {_kind(value)}, not an object")
    if "contact_name" not in value:
        for inner in value.values():
            if isinstance(inner, dict) and "contact_name" in inner:
                return inner
    return value


def _read(body: str | bytes, limit: int) -> Contact:
    size = len(body) if isinstance(body, bytes) else len(body.encode("utf-8", "surrogatepass"))
    if size >= limit:
        raise _Rejected(f"the body reached the {limit}-byte read limit: cut off")
    if isinstance(body, bytes):
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _Rejected("the body is not UTF-8") from exc
    text = body.strip().lstrip("\ufeff").strip()
    if not text:
        return NO_CONTACT
    if text[0] in "{[":
        fields = _contact_object(_json(text))
    else:
        try:
            scalar = json.loads(text)  # `null`, `"Ivan"`, `42`: JSON, but no known form
        except ValueError:
            fields = _form(text)
        else:
            raise _Rejected(f"the answer is a {_kind(scalar)}, not an object")
    if fields is None:
        return NO_CONTACT
    return Contact(_field(fields, "contact_name"), _field(fields, "responsible"))


def read_contact_answer(body: str | bytes, limit: int = MAX_ANSWER_BYTES) -> Answer:
    """Whatever the CRM answered -> Answer; ``limit`` is the size the body was read up to."""
    try:
        return Answer(_read(body, limit))
    except _Rejected as exc:
        return Answer(NO_CONTACT, str(exc))


def parse_contact_answer(body: str | bytes) -> Contact:
    """The contact alone (NO_CONTACT when the CRM names nobody or the answer is rejected)."""
    return read_contact_answer(body).contact
