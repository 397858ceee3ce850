"""Read a CRM's answer to ``contact`` the way real CRMs write it, not the way the spec does.

The spec says ``{"contact_name": "...", "responsible": "..."}`` or ``{}``. In the field:
unquoted keys (``{contact_name: "Ivan"}``), single quotes, trailing commas, Python-ish
``True``/``None``, ``{"ok": true}`` meaning "no such contact", the object wrapped in a
list or one level down, form-encoded bodies. No ``contact_name`` means no contact. The
parser never raises: a caller-ID name is a nicety, an exception would only lose it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

__all__ = ["NO_CONTACT", "Contact", "clean_name", "parse_contact_answer"]

MAX_NAME = 80  # phones show ~20 characters; anything longer is not a name
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_KEYWORDS = {
    "true": "true",
    "false": "false",
    "null": "null",
    "True": "true",
    "False": "false",
    "None": "null",
}
_TRAILING_COMMA = re.compile(r",\s*([}\]])")


@dataclass(frozen=True, slots=True)
class Contact:
    """What the dialplan gets: a display name and the responsible (as the CRM wrote it)."""

    name: str = ""
    responsible: str = ""

    @property
    def found(self) -> bool:
        return bool(self.name)


NO_CONTACT = Contact()


def clean_name(value: str) -> str:
    """One line of at most MAX_NAME characters: safe for CALLERID(name) and a phone display."""
    return " ".join(_CONTROL.sub(" ", value).split())[:MAX_NAME].strip()


def _text(value: Any) -> str:
    if isinstance(value, bool) or value is None or isinstance(value, dict | list):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _read_string(text: str, start: int) -> tuple[str, int]:
    """A quoted string at ``start`` (either quote) -> its JSON form and the index after it."""
    quote_char = text[start]
    i, parts = start + 1, []
    while i < len(text) and text[i] != quote_char:
        if text[i] == "\\" and i + 1 < len(text):
            pair = text[i : i + 2]
            parts.append("'" if pair == "\\'" else pair)
            i += 2
            continue
        parts.append('\\"' if text[i] == '"' else text[i])
        i += 1
    return '"' + "".join(parts) + '"', i + 1


def _repair(text: str) -> str:
    """JavaScript-ish object text -> JSON: quote bare keys and words, fix quotes and commas."""
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch in "\"'":
            token, i = _read_string(text, i)
            out.append(token)
        elif ch.isalpha() or ch in "_$":
            j = i
            while j < len(text) and (text[j].isalnum() or text[j] in "_$-."):
                j += 1
            word = text[i:j]
            k = j
            while k < len(text) and text[k].isspace():
                k += 1
            is_key = k < len(text) and text[k] == ":"
            out.append(
                _KEYWORDS.get(word, "")
                if not is_key and word in _KEYWORDS
                else json.dumps(word, ensure_ascii=False)
            )
            i = j
        else:
            out.append(ch)
            i += 1
    return _TRAILING_COMMA.sub(r"\1", "".join(out))


def _load(text: str) -> Any:
    for candidate in (text, None):
        try:
            return json.loads(candidate if candidate is not None else _repair(text))
        except (ValueError, RecursionError):
            continue
    return None


def _find_object(obj: Any) -> dict[str, Any] | None:
    """The dict holding ``contact_name``: the top level, the first list item, or one level down."""
    if isinstance(obj, list):
        obj = obj[0] if obj else None
    if not isinstance(obj, dict):
        return None
    if "contact_name" in obj:
        return obj
    for value in obj.values():
        if isinstance(value, dict) and "contact_name" in value:
            return value
    return obj


def _scan(text: str, key: str) -> str:
    """Last resort for broken JSON: ``key`` followed by ``:`` or ``=`` and a value."""
    match = re.search(
        rf"""["']?{key}["']?\s*[:=]\s*(?:"((?:[^"\\]|\\.)*)"|'([^']*)'|([^,}}\]\n&]*))""", text
    )
    if match is None:
        return ""
    value = next((g for g in match.groups() if g is not None), "")
    return value.strip()


def parse_contact_answer(body: str | bytes) -> Contact:
    """Whatever the CRM answered -> Contact (NO_CONTACT when it names nobody)."""
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    text = text.strip().lstrip("\ufeff")
    if not text:
        return NO_CONTACT
    if not text.startswith(("{", "[")) and "=" in text and "contact_name" in text:
        form = parse_qs(text, keep_blank_values=True)
        fields: dict[str, Any] = {key: values[0] for key, values in form.items()}
    else:
        found = _find_object(_load(text))
        if found is None:
            fields = {
                "contact_name": _scan(text, "contact_name"),
                "responsible": _scan(text, "responsible"),
            }
        else:
            fields = found
    name = clean_name(_text(fields.get("contact_name")))
    responsible = clean_name(_text(fields.get("responsible")))
    return Contact(name, responsible)
