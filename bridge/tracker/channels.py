"""Who a channel belongs to: the carrier (trunk), an employee's phone, or plumbing.

Classification is by channel name only (SPEC section 3): the context says little, because
carriers' channels often keep one context both ways.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from enum import Enum


class Kind(Enum):
    TRUNK = "trunk"
    EXTENSION = "extension"
    LOCAL = "local"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class ChannelClass:
    kind: Kind
    ext: str = ""  # the extension for EXTENSION channels


_PLUMBING = ChannelClass(Kind.OTHER)
_LOCAL = ChannelClass(Kind.LOCAL)


def _compile(patterns: list[str]) -> re.Pattern[str] | None:
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns))


_HEX = "0123456789abcdefABCDEF"


def device_of(channel: str) -> str:
    """`PJSIP/1001-0000002e` -> `PJSIP/1001`; `Local/x@ctx-0001;2` -> `Local/x@ctx`."""
    base = channel.split(";", 1)[0]
    head, sep, tail = base.rpartition("-")
    if sep and tail and not tail.strip(_HEX):  # every character a hex digit
        return head
    return base


class ChannelClassifier:
    """Trunk patterns are tried first (`SIP/*` also matches a SIP trunk)."""

    def __init__(self, trunks: list[str], extensions: list[str]) -> None:
        self._trunks = _compile(trunks)
        self._extensions = _compile(extensions)
        self._cache: dict[str, ChannelClass] = {}

    def classify(self, channel: str) -> ChannelClass:
        device = device_of(channel)
        found = self._cache.get(device)
        if found is None:
            found = self._classify(channel, device)
            if len(self._cache) > 50_000:  # bounded: devices are few, garbage is not
                self._cache.clear()
            self._cache[device] = found
        return found

    def _classify(self, channel: str, device: str) -> ChannelClass:
        if channel.startswith("Local/"):
            return _LOCAL
        if self._trunks is not None and (self._trunks.match(channel) or self._trunks.match(device)):
            return ChannelClass(Kind.TRUNK)
        if self._extensions is not None and (
            self._extensions.match(channel) or self._extensions.match(device)
        ):
            _, _, resource = device.partition("/")
            ext = resource.split("@", 1)[0]
            if ext:
                return ChannelClass(Kind.EXTENSION, ext)
        return _PLUMBING


def local_peer_name(channel: str) -> str | None:
    """The other half of a Local channel pair (`;1` <-> `;2`)."""
    if channel.endswith(";1"):
        return channel[:-1] + "2"
    if channel.endswith(";2"):
        return channel[:-1] + "1"
    return None
