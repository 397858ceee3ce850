"""What Asterisk says about its phones and queues: the directory's `pbx` source.

The actions, with the shapes Asterisk's own source gives their answers:
- `PJSIPShowEndpoints` (res/res_pjsip/pjsip_configuration.c, ami_show_endpoints): one
  `EndpointList` event per endpoint (`ObjectName` is the endpoint), `EndpointListComplete`;
  `Response: Error` "No endpoints found" when there are none.
- `PJSIPShowEndpoint` with `Endpoint: <name>` (ami_show_endpoint): an `EndpointDetail`
  event whose `Callerid` is `"Ivan Petrov" <1001>` (caller_id_to_str, ast_callerid_merge),
  then `AorDetail`, `AuthDetail`, ... and `EndpointDetailComplete`.
- `SIPpeers` (channels/chan_sip.c, manager_sip_show_peers; Asterisk 13-20): one `PeerEntry`
  event per peer (`ObjectName`), `PeerlistComplete`.
- `SIPshowpeer` with `Peer: <name>` (manager_sip_show_peer): a single response carrying
  `Callerid: "Ivan Petrov" <1001>`.
- `QueueStatus` (apps/app_queue.c, manager_queues_status): per queue a `QueueParams`
  event (`Queue`, `Strategy`), its `QueueMember`s (`Name`, `Location`, `StateInterface`)
  and waiting callers (`QueueEntry`), then `QueueStatusComplete`.
An action whose module is not loaded (chan_sip is gone since Asterisk 21) answers
`Invalid/unknown command`: that technology simply has nothing to list.

Which endpoints are employees' phones is the channel classifier's call (`[pbx] trunks`
and `extensions`), the same rule the tracker applies to their channels.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Container, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..observability.logs import get_logger
from ..tracker.channels import ChannelClass, Kind
from .parser import AmiMessage

log = get_logger("bridge.directory")

DETAILS_AT_ONCE = 8  # PJSIPShowEndpoint / SIPshowpeer requests in flight together


class AmiLink(Protocol):
    async def send_action(self, action: dict[str, Any], within: float = 10.0) -> Any: ...


Classify = Callable[[str], ChannelClass]


@dataclass(frozen=True, slots=True)
class Endpoint:
    ext: str
    name: str  # from the endpoint's caller ID; '' when it has none
    tech: str  # PJSIP / SIP: what click-to-call dials


@dataclass(frozen=True, slots=True)
class Queue:
    name: str
    strategy: str
    members: tuple[str, ...]  # extensions


@dataclass(frozen=True, slots=True)
class PbxDirectory:
    """None: that part could not be read in full this time (nothing of it is forgotten)."""

    endpoints: list[Endpoint] | None
    queues: list[Queue] | None


class Refused(Exception):
    """Asterisk answered `Response: Error` (`message` says why)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# ------------------------------------------------------------------ plain parsing

_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"\s*<([^>]*)>')
_BARE = re.compile(r"([^<]*?)\s*<([^>]*)>")


def name_from_callerid(value: str) -> str:
    """`"Ivan Petrov" <1001>` -> `Ivan Petrov`; a number alone, `<unknown>` or a name that
    only repeats the number -> ''."""
    text = value.strip()
    found = _QUOTED.fullmatch(text)
    if found is not None:
        name, number = re.sub(r"\\(.)", r"\1", found.group(1)), found.group(2)
    elif (found := _BARE.fullmatch(text)) is not None:
        name, number = found.group(1), found.group(2)
    else:
        name, number = text, ""
    name = name.strip()
    if not name or name == number.strip() or name.lstrip("+").isdigit():
        return ""
    return name


def ext_of(classify: Classify, device: str) -> str:
    """The extension of a phone's device (`PJSIP/1001`), '' for trunks and plumbing."""
    found = classify(f"{device}-00000000")
    return found.ext if found.kind is Kind.EXTENSION else ""


_LOCAL = re.compile(r"Local/([^@/;]+)@[^/;]+(?:/n)?")


def member_ext(member: AmiMessage, classify: Classify, known: Container[str]) -> str:
    """A queue member's extension: its state interface or interface when that is a phone,
    else the extension a `Local/<ext>@context` member dials, if it is a known phone."""
    for interface in (member.get("StateInterface", ""), member.get("Location", "")):
        if interface and not interface.startswith("Local/"):
            ext = ext_of(classify, interface)
            if ext:
                return ext
    local = _LOCAL.fullmatch(member.get("Location", ""))
    if local is not None and local.group(1) in known:
        return local.group(1)
    return ""


def queues_from(
    messages: Sequence[AmiMessage], classify: Classify, known: Container[str]
) -> list[Queue]:
    """`QueueStatus` events -> queues with their members' extensions, in Asterisk's order."""
    strategies: dict[str, str] = {}
    members: dict[str, list[str]] = {}
    for m in messages:
        event, queue = m.get("Event"), m.get("Queue", "")
        if not queue:
            continue
        if event == "QueueParams":
            strategies[queue] = m.get("Strategy", "")
            members.setdefault(queue, [])
        elif event == "QueueMember":
            ext = member_ext(m, classify, known)
            listed = members.setdefault(queue, [])
            if ext and ext not in listed:
                listed.append(ext)
    return [Queue(q, strategies.get(q, ""), tuple(exts)) for q, exts in members.items()]


def _plain(message: Any) -> AmiMessage:
    """A panoramisk Message (or our dict) as plain `str` headers; a repeated header keeps
    its first value."""
    plain: AmiMessage = {}
    for key, value in message.items():
        if isinstance(value, list):
            value = value[0] if value else ""
        if isinstance(value, str):
            plain[key] = value
    return plain


# ------------------------------------------------------------------ asking Asterisk


async def ask(ami: AmiLink, action: dict[str, Any], within: float) -> list[AmiMessage]:
    """The answer to one action: its response, then its events (for a list action).
    Raises Refused on `Response: Error`; TimeoutError / ConnectionError on a bad link."""
    reply = await ami.send_action(action, within)
    messages = [_plain(m) for m in (reply if isinstance(reply, list) else [reply])]
    first = messages[0] if messages else {}
    if first.get("Response", "").lower() in ("error", "fail", "failure"):
        raise Refused(first.get("Message", ""))
    return messages


def _nothing_to_list(refused: Refused) -> bool:
    """Refusals that mean "none": no endpoints, or the module is not loaded."""
    text = refused.message.lower()
    return text.startswith(("no endpoints found", "invalid/unknown command"))


class PbxReader:
    """Reads endpoints and queues over one AMI link (see the module docstring)."""

    def __init__(self, ami: AmiLink, classify: Classify, within: float = 10.0) -> None:
        self.ami = ami
        self.classify = classify
        self.within = within

    async def read(self, known: Container[str] = ()) -> PbxDirectory:
        """`known`: extensions from elsewhere (the config) a `Local/<ext>@...` queue member
        may name. Raises ConnectionError when the link went away meanwhile."""
        endpoints = await self.endpoints()
        phones = {e.ext for e in endpoints or ()}
        queues = await self.queues(_Either(phones, known))
        return PbxDirectory(endpoints, queues)

    async def endpoints(self) -> list[Endpoint] | None:
        pjsip = await self._listed("PJSIP", {"Action": "PJSIPShowEndpoints"}, "EndpointList")
        sip = await self._listed("SIP", {"Action": "SIPpeers"}, "PeerEntry")
        if pjsip is None or sip is None:
            return None
        found: dict[str, Endpoint] = {}
        for e in pjsip + sip:  # an extension on both technologies: PJSIP's
            found.setdefault(e.ext, e)
        return list(found.values())

    async def _listed(self, tech: str, action: dict[str, str], event: str) -> list[Endpoint] | None:
        try:
            messages = await ask(self.ami, action, self.within)
        except Refused as refused:
            if _nothing_to_list(refused):
                return []
            log.warning(
                "directory_endpoints_refused",
                action=action["Action"],
                answer=refused.message,
            )
            return None
        except TimeoutError:
            log.warning("directory_endpoints_timeout", action=action["Action"])
            return None
        phones: list[tuple[str, str]] = []  # (object name, ext)
        for m in messages:
            name = m.get("ObjectName", "")
            if m.get("Event") == event and name:
                ext = ext_of(self.classify, f"{tech}/{name}")
                if ext:
                    phones.append((name, ext))
        names = await self._names(tech, [name for name, _ in phones])
        return [Endpoint(ext, names.get(name, ""), tech) for name, ext in phones]

    async def _names(self, tech: str, objects: list[str]) -> dict[str, str]:
        """Each phone's caller ID name, a few requests at a time; a phone Asterisk cannot
        show just has no name."""
        gate = asyncio.Semaphore(DETAILS_AT_ONCE)
        lost: list[ConnectionError] = []

        async def one(name: str) -> tuple[str, str]:
            if tech == "PJSIP":
                action, event = {"Action": "PJSIPShowEndpoint", "Endpoint": name}, "EndpointDetail"
            else:
                action, event = {"Action": "SIPshowpeer", "Peer": name}, ""
            async with gate:
                if lost:
                    return name, ""
                try:
                    messages = await ask(self.ami, action, self.within)
                except (Refused, TimeoutError):
                    return name, ""
                except ConnectionError as exc:
                    lost.append(exc)
                    return name, ""
            for m in messages:
                if (m.get("Event") == event if event else "Event" not in m) and "Callerid" in m:
                    return name, name_from_callerid(m["Callerid"])
            return name, ""

        names = dict(await asyncio.gather(*(one(n) for n in objects)))
        if lost:
            raise lost[0]
        return names

    async def queues(self, known: Container[str]) -> list[Queue] | None:
        try:
            messages = await ask(self.ami, {"Action": "QueueStatus"}, self.within)
        except Refused as refused:
            if _nothing_to_list(refused):
                return []
            log.warning("directory_queues_refused", answer=refused.message)
            return None
        except TimeoutError:
            log.warning("directory_queues_timeout")
            return None
        return queues_from(messages, self.classify, known)


# ------------------------------------------------------------------ registration

# device states of a phone Asterisk cannot reach: not registered or failing its qualify
# (UNAVAILABLE), or nothing known of it
_OFFLINE = frozenset({"UNAVAILABLE", "UNKNOWN", "INVALID"})


async def online_phones(ami: AmiLink, classify: Classify, within: float) -> set[str]:
    """Extensions whose phone Asterisk can reach now, from `DeviceStateList`
    (res/res_manager_devicestate.c: a `DeviceStateChange` event per device it knows,
    `Device: PJSIP/1001`, `State: NOT_INUSE`, then `DeviceStateListComplete`); a phone it
    does not list is not online. Raises Refused, TimeoutError, ConnectionError."""
    online: set[str] = set()
    for m in await ask(ami, {"Action": "DeviceStateList"}, within):
        if m.get("Event") != "DeviceStateChange" or m.get("State", "").upper() in _OFFLINE:
            continue
        ext = ext_of(classify, m.get("Device", ""))
        if ext:
            online.add(ext)
    return online


@dataclass(frozen=True, slots=True)
class _Either:
    first: Container[str]
    second: Container[str]

    def __contains__(self, item: object) -> bool:
        return item in self.first or item in self.second
