"""Turn the CRM's ``responsible`` (a login, an extension or a direct number) into an extension.

Only extensions the directory knows come out: the value is dialled by the dialplan
(``Dial(PJSIP/${CRM_RESPONSIBLE})``), so a CRM typo or a hostile answer must never become
a dial string. Unknown values resolve to None and the call goes to the ring group.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ..tracker.numbers import PhoneNormalizer

__all__ = ["Directory"]

_PHONE = re.compile(r"\+?[\d\s().-]*\d[\d\s().-]*")  # how people write numbers, nothing else


class Directory:
    """``users`` maps extensions to logins (``[pbx] users``, then the bridge's directory);
    ``direct`` maps employees' direct numbers to their extensions."""

    def __init__(
        self,
        users: Mapping[str, str],
        direct: Mapping[str, str] | None = None,
        region: str = "RU",
    ) -> None:
        self._normalizer = PhoneNormalizer(region)
        self._learnt: set[str] = set()
        self.on_change: Callable[[], None] | None = None  # told after each change
        self.replace(users, direct)

    def replace(self, users: Mapping[str, str], direct: Mapping[str, str] | None = None) -> None:
        """The directory as it is now (the bridge's directory was refreshed); extensions
        learnt meanwhile stay known."""
        self._direct = dict(direct or {})
        logins = {ext.strip(): login.strip() for ext, login in users.items()}
        by_login = {login.casefold(): ext for ext, login in logins.items()}
        by_number: dict[str, str] = {}
        for number, ext in (direct or {}).items():
            key = self._normalizer.normalize(number)
            if key:
                by_number[key] = ext.strip()
        self._logins, self._by_login, self._by_number = logins, by_login, by_number
        self._extensions = set(logins) | set(by_number.values()) | self._learnt
        if self.on_change is not None:
            self.on_change()

    def add_extensions(self, extensions: Iterable[str]) -> None:
        """Extensions learnt from the PBX (its endpoints, the phones seen in calls)."""
        new = {ext.strip() for ext in extensions} - self._learnt - {""}
        if new:
            self._learnt |= new
            self._extensions |= new
            if self.on_change is not None:
                self.on_change()

    def state(self) -> dict[str, Any]:
        """What :meth:`load` needs to make an equal directory (JSON-friendly)."""
        return {"users": self._logins, "direct": self._direct, "learnt": sorted(self._learnt)}

    def load(self, state: Mapping[str, Any]) -> None:
        """Become a copy of the directory whose :meth:`state` this is."""
        self._learnt = set(state.get("learnt", ()))
        self.replace(state.get("users", {}), state.get("direct", {}))

    def resolve(self, responsible: str | None) -> str | None:
        """The extension to ring, or None when the value names nobody we know."""
        value = (responsible or "").strip()
        if not value:
            return None
        if value in self._extensions:
            return value
        ext = self._by_login.get(value.casefold())
        if ext is not None:
            return ext
        if _PHONE.fullmatch(value):
            number = self._normalizer.normalize(value)
            if number in self._extensions:  # "+101" or "101 " written by hand
                return number
            return self._by_number.get(number)
        return None

    def login(self, ext: str) -> str:
        """The directory login of an extension (falls back to the extension, as for `user`)."""
        return self._logins.get(ext, ext)
