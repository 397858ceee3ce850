"""The JavaScript-ish object text some CRMs answer instead of JSON, read by a strict grammar.

Accepted, beyond JSON: unquoted keys (``{contact_name: "Ivan"}``), single-quoted strings
(``'O\\'Brien'``), trailing commas, Python's ``True``/``False``/``None``, and unquoted
values made of words (``{contact_name: Ivan Petrov, responsible: ivan.petrov}``).
Nothing else: the text must be exactly one object or list, complete, with nothing after
it, at most :data:`MAX_DEPTH` levels deep. Whatever does not fit raises
:class:`LooseJsonError` saying where and why; nothing is guessed from the remains.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["MAX_DEPTH", "LooseJsonError", "load"]

MAX_DEPTH = 16

_KEY = re.compile(r"[A-Za-z_$][\w$-]*")
# An unquoted value: words of letters, digits and ``_ . @ + - $``, single spaces between.
_WORDS = re.compile(r"[\w.@+$-]+(?:[ \t]+[\w.@+$-]+)*")
_INTEGER = re.compile(r"-?(?:0|[1-9]\d*)")
_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?")
_HEX4 = re.compile(r"[0-9a-fA-F]{4}")
_KEYWORDS: dict[str, Any] = {
    "true": True,
    "false": False,
    "null": None,
    "True": True,
    "False": False,
    "None": None,
}
_ESCAPES = {
    '"': '"',
    "'": "'",
    "\\": "\\",
    "/": "/",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
}
_SPACE = " \t\r\n"


class LooseJsonError(ValueError):
    """The text is not one complete value of the accepted grammar."""


class _Reader:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, why: str) -> LooseJsonError:
        return LooseJsonError(f"{why} at character {self.pos}")

    def skip_space(self) -> None:
        text, pos = self.text, self.pos
        while pos < len(text) and text[pos] in _SPACE:
            pos += 1
        self.pos = pos

    def peek(self) -> str:
        self.skip_space()
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def value(self, depth: int) -> Any:
        ch = self.peek()
        if ch in ("{", "["):
            if depth >= MAX_DEPTH:
                raise self.fail(f"nested deeper than {MAX_DEPTH} levels")
            return self.object(depth + 1) if ch == "{" else self.array(depth + 1)
        if ch in ('"', "'"):
            return self.string()
        match = _WORDS.match(self.text, self.pos)
        if match is None:
            raise self.fail("unexpected end" if not ch else f"unexpected {ch!r}")
        self.pos = match.end()
        word = match.group()
        if word in _KEYWORDS:
            return _KEYWORDS[word]
        if _INTEGER.fullmatch(word):
            return int(word)
        return float(word) if _NUMBER.fullmatch(word) else word

    def key(self) -> str:
        ch = self.peek()
        if ch in ('"', "'"):
            return self.string()
        match = _KEY.match(self.text, self.pos)
        if match is None:
            raise self.fail("expected a key")
        self.pos = match.end()
        return match.group()

    def expect(self, ch: str) -> None:
        if self.peek() != ch:
            raise self.fail(f"expected {ch!r}")
        self.pos += 1

    def object(self, depth: int) -> dict[str, Any]:
        self.expect("{")
        out: dict[str, Any] = {}
        while self.peek() != "}":
            key = self.key()
            self.expect(":")
            out[key] = self.value(depth)
            if self.peek() != ",":
                break
            self.pos += 1  # a trailing comma before "}" is fine
        self.expect("}")
        return out

    def array(self, depth: int) -> list[Any]:
        self.expect("[")
        out: list[Any] = []
        while self.peek() != "]":
            out.append(self.value(depth))
            if self.peek() != ",":
                break
            self.pos += 1
        self.expect("]")
        return out

    def string(self) -> str:
        text, quote = self.text, self.text[self.pos]
        start = self.pos
        i = start + 1
        parts: list[str] = []
        while i < len(text):
            ch = text[i]
            if ch == quote:
                self.pos = i + 1
                return "".join(parts)
            if ch != "\\":
                parts.append(ch)
                i += 1
                continue
            code = text[i + 1 : i + 2]
            if code == "u" and _HEX4.fullmatch(text, i + 2, i + 6):
                parts.append(chr(int(text[i + 2 : i + 6], 16)))
                i += 6
            elif code in _ESCAPES:
                parts.append(_ESCAPES[code])
                i += 2
            else:
                self.pos = i
                raise self.fail("bad escape in a string")
        self.pos = start
        raise self.fail("unterminated string")


def load(text: str) -> dict[str, Any] | list[Any]:
    """One object or list and nothing after it; LooseJsonError otherwise."""
    reader = _Reader(text)
    if reader.peek() not in ("{", "["):
        raise reader.fail("not an object or a list")
    value = reader.value(0)
    if reader.peek():
        raise reader.fail("text after the end of the answer")
    # \\uD83D\\uDE00 arrive as two surrogates: join them, replace lone ones.
    return _fix_surrogates(value)


def _fix_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        if any("\ud800" <= ch <= "\udfff" for ch in value):
            return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        return value
    if isinstance(value, dict):
        return {_fix_surrogates(k): _fix_surrogates(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_fix_surrogates(v) for v in value]
    return value
