"""What the fake Asterisk has configured (endpoints, SIP peers, queues) and its answers to
the directory's actions, in the shapes Asterisk's source writes them:

- PJSIPShowEndpoints / PJSIPShowEndpoint: res/res_pjsip/pjsip_configuration.c
  (ami_show_endpoints, ami_show_endpoint; AorDetail from res/res_pjsip/location.c);
- SIPpeers / SIPshowpeer: channels/chan_sip.c (manager_sip_show_peers,
  _sip_show_peers_one, _sip_show_peer), Asterisk 13-20;
- QueueStatus / QueueSummary: apps/app_queue.c (manager_queues_status,
  manager_queues_summary);
- an action of a module that is not loaded: main/manager.c's "Invalid/unknown command".

`FakePbx.from_config(dir)` reads a lab's pjsip.conf or sip.conf and queues.conf, so the
fake answers as the Asterisk that recorded the traces would.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

Headers = dict[str, str]


@dataclass
class QueueMember:
    name: str  # MemberName
    location: str  # the interface rung, e.g. Local/1001@queue-members/n
    state_interface: str = ""  # e.g. PJSIP/1001


@dataclass
class FakeQueue:
    strategy: str = "ringall"
    members: list[QueueMember] = field(default_factory=list)


@dataclass
class FakePbx:
    """`endpoints` / `sip_peers`: name -> caller ID as configured (`"Ivan Petrov" <1001>`,
    '' for none). `pjsip` / `chan_sip`: whether that module is loaded."""

    pjsip: bool = True
    chan_sip: bool = False
    endpoints: dict[str, str] = field(default_factory=dict)
    sip_peers: dict[str, str] = field(default_factory=dict)
    queues: dict[str, FakeQueue] = field(default_factory=dict)

    @classmethod
    def from_config(cls, directory: str | Path) -> FakePbx:
        """A lab's Asterisk config folder (traces/asterisk22/asterisk-config, ...)."""
        folder = Path(directory)
        pbx = cls(pjsip=False)
        if (folder / "pjsip.conf").exists():
            pbx.pjsip = True
            pbx.endpoints = _callerids(folder / "pjsip.conf", {"endpoint"})
        if (folder / "sip.conf").exists():
            pbx.chan_sip = True
            pbx.sip_peers = _callerids(folder / "sip.conf", {"friend", "peer"})
        if (folder / "queues.conf").exists():
            pbx.queues = _queues(folder / "queues.conf")
        return pbx

    def answer(
        self, action: str, headers: Headers, id_line: str, seen: Iterable[str] = ()
    ) -> list[str] | None:
        """The messages answering `action` (lower case), or None when it is not one of the
        directory's. `seen`: devices (`PJSIP/1001`) the replay has shown, listed too."""
        seen = set(seen)
        if action in ("pjsipshowendpoints", "pjsipshowendpoint"):
            if not self.pjsip:
                return [_unknown(headers, id_line)]
            names = self._names(self.endpoints, "PJSIP/", seen)
            if action == "pjsipshowendpoints":
                return _endpoint_list(names, id_line)
            return _endpoint_detail(_header(headers, "Endpoint"), names, id_line)
        if action in ("sippeers", "sipshowpeer"):
            if not self.chan_sip:
                return [_unknown(headers, id_line)]
            names = self._names(self.sip_peers, "SIP/", seen)
            if action == "sippeers":
                return _peer_list(names, id_line)
            return _peer_detail(_header(headers, "Peer"), names, id_line)
        if action == "queuestatus":
            return _queue_status(self.queues, _header(headers, "Queue"), id_line)
        if action == "queuesummary":
            return _queue_summary(self.queues, _header(headers, "Queue"), id_line)
        return None

    @staticmethod
    def _names(configured: dict[str, str], prefix: str, seen: set[str]) -> dict[str, str]:
        names = dict(configured)
        for device in seen:
            if device.startswith(prefix):
                names.setdefault(device[len(prefix) :], "")
        return dict(sorted(names.items()))


def _header(headers: Headers, name: str) -> str:
    name = name.lower()
    return next((v for k, v in headers.items() if k.lower() == name), "")


def _unknown(headers: Headers, id_line: str) -> str:
    """main/manager.c: an action no loaded module registered."""
    action = _header(headers, "Action")
    return _error(
        id_line,
        f"Invalid/unknown command: {action}. Use Action: ListCommands to show available commands.",
    )


def _fields(pairs: Iterable[tuple[str, object]]) -> str:
    return "".join(f"{k}: {v}\r\n" for k, v in pairs)


def _error(id_line: str, message: str) -> str:
    """astman_send_error: messages given with a trailing newline keep it."""
    return f"Response: Error\r\n{id_line}Message: {message}\r\n"


def _listack(id_line: str, message: str) -> str:
    """astman_send_listack(..., "start")."""
    return f"Response: Success\r\n{id_line}EventList: start\r\nMessage: {message}\r\n"


def _complete(event: str, id_line: str, count: int) -> str:
    """astman_send_list_complete_start/_end."""
    return f"Event: {event}\r\n{id_line}EventList: Complete\r\nListItems: {count}\r\n"


# ------------------------------------------------------------------ PJSIP


def _endpoint_list(names: dict[str, str], id_line: str) -> list[str]:
    if not names:
        return [_error(id_line, "No endpoints found\n")]
    items = [
        f"Event: EndpointList\r\n{id_line}"
        + _fields(
            [
                ("ObjectType", "endpoint"),
                ("ObjectName", name),
                ("Transport", "transport-udp"),
                ("Aor", name),
                ("Auths", ""),
                ("OutboundAuths", ""),
                ("Contacts", f"{name}/sip:{name}@127.0.0.1:5060,"),
                ("DeviceState", "Not in use"),
                ("ActiveChannels", 0),
            ]
        )
        for name in names
    ]
    return [
        _listack(id_line, "A listing of Endpoints follows, presented as EndpointList events"),
        *items,
        _complete("EndpointListComplete", id_line, len(items)),
    ]


def _endpoint_detail(name: str, names: dict[str, str], id_line: str) -> list[str]:
    name = name[6:] if name.lower().startswith("pjsip/") else name
    if not name:
        return [_error(id_line, "PJSIPShowEndpoint requires an endpoint name\n")]
    if name not in names:
        return [_error(id_line, f"Unable to retrieve endpoint {name}\n")]
    detail = f"Event: EndpointDetail\r\n{id_line}" + _fields(
        [
            ("ObjectType", "endpoint"),
            ("ObjectName", name),
            ("Context", "from-internal"),
            ("Disallow", ""),
            ("Allow", "(alaw|ulaw)"),
            ("DtmfMode", "rfc4733"),
            ("Aors", name),
            ("Auth", ""),
            ("OutboundAuth", ""),
            ("Callerid", names[name] or "<unknown>"),
            ("CalleridPrivacy", "allowed_not_screened"),
            ("CalleridTag", ""),
            ("Transport", "transport-udp"),
            ("DeviceState", "Not in use"),
            ("ActiveChannels", 0),
        ]
    )
    aor = f"Event: AorDetail\r\n{id_line}" + _fields(
        [
            ("ObjectType", "aor"),
            ("ObjectName", name),
            ("MinimumExpiration", 60),
            ("MaximumExpiration", 7200),
            ("DefaultExpiration", 3600),
            ("QualifyFrequency", 0),
            ("MaxContacts", 0),
            ("RemoveExisting", "false"),
            ("Contacts", f"sip:{name}@127.0.0.1:5060"),
            ("TotalContacts", 1),
            ("ContactsRegistered", 0),
            ("EndpointName", name),
        ]
    )
    return [
        _listack(id_line, "Following are Events for each object associated with the Endpoint"),
        detail,
        aor,
        _complete("EndpointDetailComplete", id_line, 2),
    ]


# ------------------------------------------------------------------ chan_sip


def _peer_list(names: dict[str, str], id_line: str) -> list[str]:
    items = [
        f"Event: PeerEntry\r\n{id_line}"
        + _fields(
            [
                ("Channeltype", "SIP"),
                ("ObjectName", name),
                ("ChanObjectType", "peer"),
                ("IPaddress", "127.0.0.1"),
                ("IPport", "5060"),
                ("Dynamic", "no"),
                ("AutoForcerport", "no"),
                ("Forcerport", "no"),
                ("AutoComedia", "no"),
                ("Comedia", "no"),
                ("VideoSupport", "no"),
                ("TextSupport", "no"),
                ("ACL", "no"),
                ("Status", "Unmonitored"),
                ("RealtimeDevice", "no"),
                ("Description", ""),
                ("Accountcode", ""),
            ]
        )
        for name in names
    ]
    return [
        _listack(id_line, "Peer status list will follow"),
        *items,
        _complete("PeerlistComplete", id_line, len(items)),
    ]


def _peer_detail(name: str, names: dict[str, str], id_line: str) -> list[str]:
    if not name:
        return [_error(id_line, "Peer: <name> missing.")]
    if name not in names:
        return [_error(id_line, f"Peer {name} not found.")]
    return [
        f"Response: Success\r\n{id_line}"
        + _fields(
            [
                ("Channeltype", "SIP"),
                ("ObjectName", name),
                ("ChanObjectType", "peer"),
                ("SecretExist", "N"),
                ("RemoteSecretExist", "N"),
                ("MD5SecretExist", "N"),
                ("Context", "from-internal"),
                ("Language", "en"),
                ("ToneZone", "<Not set>"),
                ("AMAflags", "Unknown"),
                ("CID-CallingPres", "Presentation Allowed, Not Screened"),
                ("Callgroup", "1"),
                ("Pickupgroup", "1"),
                ("Named Callgroup", ""),
                ("Named Pickupgroup", ""),
                ("MOHSuggest", ""),
                ("VoiceMailbox", ""),
                ("TransferMode", "open"),
                ("LastMsgsSent", 0),
                ("Maxforwards", 0),
                ("Call-limit", 2147483647),
                ("Busy-level", 0),
                ("MaxCallBR", "384 kbps"),
                ("Dynamic", "N"),
                ("Callerid", names[name]),
                ("RegExpire", "-1 seconds"),
                ("SIP-AuthInsecure", "no"),
                ("SIP-DTMFmode", "rfc2833"),
                ("Status", "Unmonitored"),
            ]
        )
    ]


# ------------------------------------------------------------------ queues


def _queue_status(queues: dict[str, FakeQueue], only: str, id_line: str) -> list[str]:
    items: list[str] = []
    for name, queue in queues.items():
        if only and only.lower() != name.lower():
            continue
        items.append(
            "Event: QueueParams\r\n"
            + _fields(
                [
                    ("Queue", name),
                    ("Max", 0),
                    ("Strategy", queue.strategy),
                    ("Calls", 0),
                    ("Holdtime", 0),
                    ("TalkTime", 0),
                    ("Completed", 0),
                    ("Abandoned", 0),
                    ("ServiceLevel", 0),
                    ("ServicelevelPerf", "0.0"),
                    ("ServicelevelPerf2", "0.0"),
                    ("Weight", 0),
                ]
            )
            + id_line
        )
        for m in queue.members:
            items.append(
                "Event: QueueMember\r\n"
                + _fields(
                    [
                        ("Queue", name),
                        ("Name", m.name),
                        ("Location", m.location),
                        ("StateInterface", m.state_interface or m.location),
                        ("Membership", "static"),
                        ("Penalty", 0),
                        ("CallsTaken", 0),
                        ("LastCall", 0),
                        ("LastPause", 0),
                        ("LoginTime", 0),
                        ("InCall", 0),
                        ("Status", 1),
                        ("Paused", 0),
                        ("PausedReason", ""),
                        ("Wrapuptime", 0),
                    ]
                )
                + id_line
            )
    return [
        _listack(id_line, "Queue status will follow"),
        *items,
        _complete("QueueStatusComplete", id_line, len(items)),
    ]


def _queue_summary(queues: dict[str, FakeQueue], only: str, id_line: str) -> list[str]:
    items = [
        "Event: QueueSummary\r\n"
        + _fields(
            [
                ("Queue", name),
                ("LoggedIn", len(queue.members)),
                ("Available", len(queue.members)),
                ("Callers", 0),
                ("HoldTime", 0),
                ("TalkTime", 0),
                ("LongestHoldTime", 0),
            ]
        )
        + id_line
        for name, queue in queues.items()
        if not only or only.lower() == name.lower()
    ]
    return [
        _listack(id_line, "Queue summary will follow"),
        *items,
        _complete("QueueSummaryComplete", id_line, len(items)),
    ]


# ------------------------------------------------------------------ reading a lab's config

_SECTION = re.compile(r"\[([^\]]+)\](?:\(([^)]*)\))?")


def _sections(path: Path) -> list[tuple[str, bool, dict[str, list[str]]]]:
    """(name, is a template, options with templates applied) of an Asterisk .conf file."""
    raw: list[tuple[str, list[str], dict[str, list[str]]]] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split(";", 1)[0].strip()
        if not line:
            continue
        found = _SECTION.fullmatch(line)
        if found is not None:
            marks = [t.strip() for t in (found.group(2) or "").split(",") if t.strip()]
            raw.append((found.group(1), marks, {}))
        elif raw and "=" in line:
            key, _, value = line.partition("=")
            raw[-1][2].setdefault(key.strip(), []).append(value.lstrip(">").strip())
    templates = {name: options for name, marks, options in raw if "!" in marks}
    sections = []
    for name, marks, options in raw:
        merged: dict[str, list[str]] = {}
        for template in marks:
            merged.update(templates.get(template, {}))
        merged.update(options)
        sections.append((name, "!" in marks, merged))
    return sections


def _callerids(path: Path, types: set[str]) -> dict[str, str]:
    return {
        name: options.get("callerid", [""])[-1]
        for name, template, options in _sections(path)
        if not template and options.get("type", [""])[-1] in types
    }


def _queues(path: Path) -> dict[str, FakeQueue]:
    queues = {}
    for name, template, options in _sections(path):
        if template or name == "general":
            continue
        members = []
        for member in options.get("member", []):
            parts = [p.strip() for p in member.split(",")]
            interface = parts[0]
            member_name = parts[2] if len(parts) > 2 and parts[2] else interface
            state = parts[3] if len(parts) > 3 else ""
            members.append(QueueMember(member_name, interface, state))
        queues[name] = FakeQueue(options.get("strategy", ["ringall"])[-1], members)
    return queues
