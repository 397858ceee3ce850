"""Wire profiles: how one CRM target wants its payloads (SPEC section 4).

- `vpbx`: `application/x-www-form-urlencoded`, the fields of the VPBX "REST API for CRM",
  the token both as `crm_token` in the body and in an `X-CRM-Token` header (some receivers
  read only one of them);
- `vpbx-legacy`: the 2017 spec's strict receivers answer 400 to any field they do not
  know, so exactly the newer fields are left out, and they never get `rating`;
- `json`: the `vpbx` fields as a JSON object, with `duration`, `wait`, `rating` and
  `missedStatus` as JSON numbers (the spec types them as numbers, its example sends
  `"duration": 124`: a typed receiver refuses `"124"` or `""`), and those left out when
  empty (a history has no rating yet, most calls no missedStatus);
- `sangoma`: a Sangoma CRM REST webhook subscription: the call object of `sangoma_call.py`
  as a JSON body at call start and/or end (commands `call_start`, `call_end`), no token.
Every field of the profile is sent, empty or not (receivers index them blindly), except
`second_callid`, which only TRANSFERRED carries, and the empty numbers of `json`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlencode

from .sangoma_call import COMMANDS as SANGOMA_COMMANDS

PROFILES = ("vpbx", "vpbx-legacy", "json", "sangoma")

FIELDS: dict[str, tuple[str, ...]] = {
    "history": (
        "cmd",
        "crm_token",
        "type",
        "user",
        "ext",
        "groupRealName",
        "telnum",
        "phone",
        "diversion",
        "start",
        "duration",
        "wait",
        "callid",
        "link",
        "status",
        "rating",
        "missedStatus",
    ),
    "event": (
        "cmd",
        "crm_token",
        "type",
        "callid",
        "phone",
        "user",
        "direction",
        "diversion",
        "groupRealName",
        "ext",
        "telnum",
        "telnum_name",
        "second_callid",
    ),
    "contact": ("cmd", "crm_token", "phone", "callid", "diversion"),
    "rating": ("cmd", "crm_token", "callid", "rating", "phone", "user", "ext"),
}

NUMBERS = frozenset({"duration", "wait", "rating", "missedStatus"})  # numbers in `json`

LEGACY_LEFT_OUT: dict[str, frozenset[str]] = {
    "history": frozenset({"rating", "wait", "missedStatus"}),
    "event": frozenset({"direction", "telnum_name", "second_callid"}),
    "contact": frozenset({"diversion"}),
}


@dataclass(frozen=True, slots=True)
class WireRequest:
    body: bytes
    content_type: str
    headers: dict[str, str]


def sends(profile: str, cmd: str) -> bool:
    """Whether a target of this profile gets this command at all."""
    if profile == "sangoma" or cmd in SANGOMA_COMMANDS:
        return profile == "sangoma" and cmd in SANGOMA_COMMANDS
    return not (profile == "vpbx-legacy" and cmd == "rating") and cmd in FIELDS


def wire_fields(profile: str, fields: Mapping[str, object], token: str) -> dict[str, str]:
    """The exact fields, in the spec's order, as strings."""
    cmd = str(fields["cmd"])
    names = FIELDS[cmd]
    left_out = LEGACY_LEFT_OUT.get(cmd, frozenset()) if profile == "vpbx-legacy" else frozenset()
    values = {**fields, "crm_token": token}
    out: dict[str, str] = {}
    for name in names:
        if name in left_out:
            continue
        if name == "second_callid" and values.get("type") != "TRANSFERRED":
            continue
        value = values.get(name)
        out[name] = "" if value is None else str(value)
    return out


def json_fields(fields: Mapping[str, object], token: str) -> dict[str, str | int]:
    """The `json` profile's object: the `vpbx` fields with the numbers as numbers, an
    empty number left out."""
    typed: dict[str, str | int] = {}
    for name, value in wire_fields("json", fields, token).items():
        if name not in NUMBERS:
            typed[name] = value
        elif value:
            typed[name] = int(value)
    return typed


def encode(profile: str, fields: Mapping[str, object], token: str) -> WireRequest:
    if profile not in PROFILES:
        raise ValueError(f"unknown CRM profile {profile!r}")
    if profile == "sangoma":  # the call object as it is; Sangoma subscriptions carry no token
        body = json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode()
        return WireRequest(body, "application/json", {})
    headers = {"X-CRM-Token": token} if token else {}
    if profile == "json":
        typed = json_fields(fields, token)
        body = json.dumps(typed, ensure_ascii=False, separators=(",", ":")).encode()
        return WireRequest(body, "application/json", headers)
    wire = wire_fields(profile, fields, token)
    return WireRequest(urlencode(wire).encode(), "application/x-www-form-urlencoded", headers)
