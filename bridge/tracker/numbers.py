"""Phone numbers as the CRM wants them: E.164 digits without `+` (SPEC section 3)."""

from __future__ import annotations

from functools import lru_cache

import phonenumbers

# what carriers and Asterisk put there when they have no name to give
NO_NAME = frozenset(
    ("<unknown>", "unknown", "anonymous", "private", "restricted", "unavailable", "withheld")
)
NAME_LIMIT = 80  # characters of a presented name kept (SIP allows more; no phone shows it)


class PhoneNormalizer:
    def __init__(self, region: str) -> None:
        self.region = region
        self.normalize = lru_cache(maxsize=65_536)(self._normalize)

    def _normalize(self, raw: str | None) -> str:
        if not raw:
            return ""
        raw = raw.strip()
        if raw in ("<unknown>", "anonymous", "Anonymous"):
            return ""
        digits = "".join(c for c in raw if c.isdigit())
        if len(digits) < 7:  # extensions, short codes: not worth a parse
            return digits if digits else raw
        candidate = raw if raw.startswith("+") else digits
        try:
            parsed = phonenumbers.parse(candidate, self.region)
        except phonenumbers.NumberParseException:
            return digits
        if phonenumbers.is_possible_number(parsed):
            return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)[1:]
        if not raw.startswith("+"):
            try:  # a national-prefix-less international number ("79101234567")
                parsed = phonenumbers.parse("+" + digits, None)
                if phonenumbers.is_possible_number(parsed):
                    return digits
            except phonenumbers.NumberParseException:
                pass
        return digits


def presented_name(raw: str | None) -> str:
    """The caller's name as the carrier presented it (CallerIDName), or "" when it is no
    name: Asterisk's `<unknown>`, or a number (many carriers repeat the number there)."""
    printable = "".join(c if c.isprintable() else " " for c in raw or "")
    name = " ".join(printable.split())  # control characters and runs of blanks: one space
    if name.lower() in NO_NAME or not any(map(str.isalpha, name)):
        return ""
    return name[:NAME_LIMIT]
