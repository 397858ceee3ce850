"""The directory, rendered as Asterisk config: pure functions, directory in, text out.

Three files, written into `[provision] config_dir` and #included once by the admin:

- `pjsip_crm_bridge.conf` (chan_pjsip) or `sip_crm_bridge.conf` (chan_sip, Asterisk 13-20):
  one phone per provisioned employee. PJSIP gets explicit `endpoint`, `auth` and `aor`
  sections rather than the pjsip wizard: they load on every Asterisk since 13 without
  res_pjsip_config_wizard, read the same as the admin's own pjsip.conf, and are what
  `PJSIPShowEndpoint` reports back, which is how an apply is confirmed. `auth_type` is not
  written: its default is right on every version (userpass before 22, digest since, where
  userpass is deprecated). The aor takes one registration (`max_contacts = 1`,
  `remove_existing = yes`), so `PJSIP/<ext>` reaches the phone as `SIP/<ext>` does.
- `extensions_crm_bridge.conf`: each provisioned employee's extension (ring time, voicemail
  when unanswered or busy, do-not-disturb), each provisioned ring group (ringall, hunt or
  memoryhunt: the nearest to its strategy; ring time, no-answer destination) and each
  provisioned company number's route (an employee, a group or queue, an IVR context; a
  disabled number refuses its calls with cause 21). The logic lives in the helper contexts
  of config/asterisk/crm_bridge_dialplan.conf (crm-bridge-dial-user, crm-bridge-dial-group,
  crm-bridge-screen, crm-bridge-record): the rendered file only says who is where.

Recording rules travel on the phone's own channel variables (`set_var` / `setvar`), which
Asterisk sets on every channel of that endpoint, ringing or calling: the helpers read the
calling and the answering employee's rules from them (see crm_bridge_dialplan.conf).

Values from the directory are checked by bridge.provision.rules; what breaks a rule is not
rendered (RenderError), and a route or destination that names nobody is left out with a
warning.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ..store.directory import Group, Snapshot, User
from .rules import STRATEGIES, RenderError, group_problems, number_problems, user_problems

PJSIP_FILE = "pjsip_crm_bridge.conf"
SIP_FILE = "sip_crm_bridge.conf"
DIALPLAN_FILE = "extensions_crm_bridge.conf"
FILES = (PJSIP_FILE, SIP_FILE, DIALPLAN_FILE)

PHONES_CONTEXT = "crm-bridge-phones"  # the context of the provisioned phones
EXTENSIONS_CONTEXT = "crm-bridge-extensions"  # provisioned extensions and ring groups
NUMBERS_CONTEXT = "crm-bridge-numbers"  # provisioned company numbers
STAMP_CONTEXT = "crm-bridge-stamp"  # the rendered dialplan's digest: proves a reload
# The helper contexts of config/asterisk/crm_bridge_dialplan.conf the rendered dialplan uses.
HELPER_CONTEXTS = (
    "crm-bridge-dial-user",
    "crm-bridge-dial-group",
    "crm-bridge-screen",
    "crm-bridge-record",
)
DRIVERS = {"pjsip": "PJSIP", "sip": "SIP"}  # [asterisk] channel_driver -> technology

_REC_VARS = (
    ("record_in_internal", "CRM_REC_IN_INTERNAL"),
    ("record_in_external", "CRM_REC_IN_EXTERNAL"),
    ("record_out_internal", "CRM_REC_OUT_INTERNAL"),
    ("record_out_external", "CRM_REC_OUT_EXTERNAL"),
)


@dataclass(frozen=True, slots=True)
class Target:
    """What the rendering depends on besides the directory (config, see ProvisionSettings)."""

    pbx_id: str = "main"
    driver: str = "pjsip"  # pjsip / sip
    internal_context: str = "from-internal"  # '' none
    inbound_context: str = "from-trunk"  # '' none
    endpoint_template: str = ""
    ring_time: int = 20

    @property
    def tech(self) -> str:
        return DRIVERS[self.driver]

    @property
    def phone_file(self) -> str:
        return PJSIP_FILE if self.driver == "pjsip" else SIP_FILE


@dataclass(frozen=True, slots=True)
class Phone:
    """A rendered phone, as Asterisk reports it back (PJSIPShowEndpoint / SIPshowpeer)."""

    ext: str
    name: str  # of its caller ID, '' for none
    context: str


@dataclass(frozen=True, slots=True)
class Rendered:
    files: dict[str, str]  # file name -> text
    phones: dict[str, Phone]  # ext -> phone, of the technology in use
    stamp: str  # the dialplan's digest, in context crm-bridge-stamp
    warnings: tuple[str, ...] = ()

    @property
    def digest(self) -> str:
        whole = hashlib.sha256()
        for name in sorted(self.files):
            whole.update(name.encode() + b"\0" + self.files[name].encode() + b"\0")
        return whole.hexdigest()


def render(snapshot: Snapshot, target: Target) -> Rendered:
    """Every file; RenderError when a provisioned object breaks a rule."""
    problems = [
        *(p for u in snapshot.users for p in user_problems(u)),
        *(p for g in snapshot.groups for p in group_problems(g)),
        *(p for n in snapshot.numbers for p in number_problems(n)),
    ]
    users = [u for u in snapshot.users if u.provisioned]
    taken: dict[str, str] = {}
    for u in users:
        if u.ext in taken:
            problems.append(f"user {u.login!r}: extension {u.ext} is {taken[u.ext]!r}'s too")
        taken[u.ext] = u.login
    for g in snapshot.groups:
        if g.provisioned and g.ext in taken:
            problems.append(f"group {g.id} ({g.name!r}): extension {g.ext} is {taken[g.ext]!r}'s")
        taken.setdefault(g.ext, f"group {g.id}")
    if problems:
        raise RenderError(problems)
    warnings: list[str] = []
    phones = {u.ext: _phone(u) for u in users}
    pjsip = render_pjsip(users, target) if target.driver == "pjsip" else _header(PJSIP_FILE, "")
    sip = render_sip(users, target) if target.driver == "sip" else _header(SIP_FILE, "")
    dialplan, stamp = render_dialplan(snapshot, target, warnings)
    files = {PJSIP_FILE: pjsip, SIP_FILE: sip, DIALPLAN_FILE: dialplan}
    return Rendered(files, phones, stamp, tuple(warnings))


# ------------------------------------------------------------------ phones


def _header(name: str, include_in: str, lines: Sequence[str] = ()) -> str:
    head = [
        f"; {name}: rendered by asterisk-crm-bridge from its directory.",
        f"; Do not edit: every apply overwrites it (the previous version stays as {name}.prev).",
    ]
    if include_in:
        head.append(f"; {include_in} includes it once:  #include {name}")
    return "\n".join([*head, *lines]) + "\n"


def _callerid(u: User) -> str:
    return f'"{u.name}" <{u.ext}>' if u.name else f"<{u.ext}>"


def _phone(u: User) -> Phone:
    return Phone(u.ext, u.name, PHONES_CONTEXT)


def _who(u: User) -> str:
    return f"; user {u.login}" + (f": {u.name}" if u.name else "")


def _channel_vars(u: User) -> list[str]:
    found = [f"CRM_EXT={u.ext}"]
    found += [f"{var}={getattr(u, f)}" for f, var in _REC_VARS if getattr(u, f) != "dontcare"]
    return found


def _section(name: str, template: str = "") -> str:
    return f"[{name}]({template})" if template else f"[{name}]"


def render_pjsip(users: Iterable[User], target: Target) -> str:
    blocks: list[str] = []
    for u in sorted(users, key=lambda u: (len(u.ext), u.ext)):
        endpoint = [_who(u), _section(u.ext, target.endpoint_template), "type = endpoint"]
        endpoint.append(f"context = {PHONES_CONTEXT}")
        if not target.endpoint_template:
            endpoint += ["disallow = all", "allow = ulaw,alaw"]
        endpoint += [f"auth = {u.ext}", f"aors = {u.ext}", f"callerid = {_callerid(u)}"]
        if u.voicemail:
            endpoint.append(f"mailboxes = {u.ext}@{u.voicemail}")
        endpoint += [f"set_var = {v}" for v in _channel_vars(u)]
        auth = [f"[{u.ext}]", "type = auth", f"username = {u.ext}", f"password = {u.secret}"]
        aor = [f"[{u.ext}]", "type = aor", "max_contacts = 1", "remove_existing = yes"]
        blocks.append("\n".join(endpoint + [""] + auth + [""] + aor))
    return _header(PJSIP_FILE, "pjsip.conf") + "".join(f"\n{b}\n" for b in blocks)


def render_sip(users: Iterable[User], target: Target) -> str:
    blocks: list[str] = []
    for u in sorted(users, key=lambda u: (len(u.ext), u.ext)):
        peer = [_who(u), _section(u.ext, target.endpoint_template), "type = friend"]
        peer += ["host = dynamic", f"secret = {u.secret}", f"context = {PHONES_CONTEXT}"]
        peer.append(f"callerid = {_callerid(u)}")
        if not target.endpoint_template:
            peer += ["disallow = all", "allow = ulaw,alaw"]
        if u.voicemail:
            peer.append(f"mailbox = {u.ext}@{u.voicemail}")
        peer += [f"setvar = {v}" for v in _channel_vars(u)]
        blocks.append("\n".join(peer))
    return _header(SIP_FILE, "sip.conf") + "".join(f"\n{b}\n" for b in blocks)


# ------------------------------------------------------------------ dialplan


@dataclass
class _Where:
    """Who is where, for routes and no-answer destinations."""

    target: Target
    users: Mapping[str, User]  # by login
    groups: Mapping[str, Group]  # by id (text)
    warnings: list[str] = field(default_factory=list)

    def user_goto(self, login: str, why: str) -> list[str] | None:
        u = self.users.get(login)
        if u is None or not u.ext:
            self.warnings.append(f"{why}: user {login!r} has no extension")
            return None
        if u.provisioned:
            return [f"Goto({EXTENSIONS_CONTEXT},{u.ext},1)"]
        return self._own(u.ext, f"{why}: user {login!r} (extension {u.ext})")

    def group_goto(self, group_id: str, why: str) -> list[str] | None:
        g = self.groups.get(group_id)
        if g is None:
            self.warnings.append(f"{why}: there is no group {group_id}")
            return None
        if g.kind == "queue":
            return [f"Queue({g.ext})", "Hangup()"]
        if g.provisioned:
            return [f"Goto({EXTENSIONS_CONTEXT},{g.ext},1)"]
        return self._own(g.ext, f"{why}: ring group {g.ext}")

    def _own(self, ext: str, why: str) -> list[str] | None:
        """Somewhere the PBX's own dialplan knows: its internal context."""
        context = self.target.internal_context
        if not context or not ext.isdigit():
            self.warnings.append(f"{why} is not provisioned and there is no internal_context")
            return None
        return [f"Goto({context},{ext},1)"]

    def noanswer(self, g: Group) -> list[str]:
        why = f"group {g.id} ({g.name}) no-answer"
        kind, _, target = g.noanswer.partition(":")
        found: list[str] | None
        if kind in ("", "hangup"):
            return ["Hangup()"]
        if kind == "busy":
            return ["Busy(20)", "Hangup()"]
        if kind == "user":
            found = self.user_goto(target, why)
        elif kind == "group":
            found = self.group_goto(target, why)
        elif kind == "voicemail":
            u = self.users.get(target)
            if u is not None and u.ext and u.voicemail:
                found = [f"VoiceMail({u.ext}@{u.voicemail},u)", "Hangup()"]
            else:
                self.warnings.append(f"{why}: user {target!r} has no voicemail")
                found = None
        elif kind == "number":
            found = self._own(target, f"{why}: number {target}")
        else:  # ivr
            found = [f"Goto({target},s,1)"]
        return found if found is not None else ["Hangup()"]


def _lines(exten: str, apps: Sequence[str]) -> list[str]:
    return [f"exten => {exten},1,{apps[0]}", *(f" same => n,{app}" for app in apps[1:])]


def render_dialplan(
    snapshot: Snapshot, target: Target, warnings: list[str] | None = None
) -> tuple[str, str]:
    """The dialplan file and its stamp (the digest written in context crm-bridge-stamp)."""
    where = _Where(
        target,
        {u.login: u for u in snapshot.users},
        {str(g.id): g for g in snapshot.groups},
    )
    tech = target.tech
    out: list[str] = [
        _header(
            DIALPLAN_FILE,
            "extensions.conf",
            [
                "; It uses the helper contexts of crm_bridge_dialplan.conf, which extensions.conf",
                "; includes too:  #include crm_bridge_dialplan.conf",
            ],
        ).rstrip("\n")
    ]

    out += [
        "",
        f"[{PHONES_CONTEXT}]",
        "; The context of the phones the bridge provisions: the provisioned extensions and ring",
        "; groups first, then the PBX's own dialplan.",
        f"include => {EXTENSIONS_CONTEXT}",
    ]
    if target.internal_context:
        out.append(f"include => {target.internal_context}")

    out += ["", f"[{EXTENSIONS_CONTEXT}]"]
    for u in sorted(
        (u for u in snapshot.users if u.provisioned), key=lambda u: (len(u.ext), u.ext)
    ):
        ring = u.ring_time or target.ring_time
        mailbox = f"{u.ext}@{u.voicemail}" if u.voicemail else ""
        out.append(_who(u))
        args = ",".join([f"{tech}/{u.ext}", str(ring), *([mailbox] if mailbox else [])])
        out += _lines(u.ext, [f"Gosub(crm-bridge-dial-user,{u.ext},1({args}))", "Hangup()"])
    for g in sorted(
        (g for g in snapshot.groups if g.provisioned), key=lambda g: (len(g.ext), g.ext)
    ):
        members: list[str] = []
        for login in g.members:
            member = where.users.get(login)
            if member is None or not member.ext or not member.ext.isdigit():
                where.warnings.append(f"group {g.id} ({g.name}): member {login!r} has no extension")
            elif member.ext not in members:
                members.append(member.ext)
        rung = STRATEGIES[g.strategy]
        how = g.strategy if rung == g.strategy else f"{g.strategy} (rung as {rung})"
        ringing = f"{how} {g.ring_time} s, members {' '.join(members)}"
        out.append(f"; ring group {g.id}: {g.name}; " + (ringing if members else "no members"))
        args = f"{rung},{g.ring_time},{tech},{'&'.join(members)}"
        dial = [f"Gosub(crm-bridge-dial-group,{g.ext},1({args}))"] if members else []
        out += _lines(g.ext, [*dial, *where.noanswer(g)])

    out += ["", f"[{NUMBERS_CONTEXT}]"]
    for n in sorted((n for n in snapshot.numbers if n.provisioned), key=lambda n: n.telnum):
        why = f"number {n.telnum}"
        route: list[str] | None
        if n.disabled:  # takes no calls: refused as the carrier's "call rejected"
            out.append(f"; {n.telnum}" + (f": {n.name}" if n.name else "") + " -> disabled")
            out += _lines(n.telnum, ["Hangup(21)"])
            continue
        if n.route_type == "user":
            route = where.user_goto(n.route_to, why)
        elif n.route_type == "group":
            route = where.group_goto(n.route_to, why)
        else:
            route = [f"Goto({n.route_to},s,1)"]
        if route is None:
            continue  # warned: calls to it go on to the inbound context's other matches
        named = f": {n.name}" if n.name else ""
        out.append(f"; {n.telnum}{named} -> {n.route_type} {n.route_to}")
        out += _lines(n.telnum, ["Gosub(crm-bridge-screen,s,1)", *route])

    for context, include, why in (
        (target.internal_context, EXTENSIONS_CONTEXT, "reaches the provisioned extensions"),
        (target.inbound_context, NUMBERS_CONTEXT, "reaches the provisioned company numbers"),
    ):
        if context:
            out += ["", f"[{context}]", f"; the PBX's own context {why} (after its own)"]
            out.append(f"include => {include}")

    body = "\n".join(out) + "\n"
    stamp = hashlib.sha256(body.encode()).hexdigest()[:16]
    body += (
        "\n".join(
            [
                "",
                f"[{STAMP_CONTEXT}]",
                "; The digest of what is above: after a reload the bridge asks Asterisk for it.",
                f"exten => s,1,NoOp({stamp})",
            ]
        )
        + "\n"
    )
    if warnings is not None:
        warnings += where.warnings
    return body, stamp
