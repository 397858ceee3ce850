"""`ringgroups`: the PBX's ring groups, as Issabel's pbxapi shows and writes them.

A ring group is a group of the directory (kind ringgroup), named by its extension in URLs:

    extension                   ext (POST: the next free number from 600 when not given)
    name (or description)       name: the call's groupRealName
    strategy                    any of Issabel's eight, kept as sent; rung as the nearest
                                the bridge renders (rules.STRATEGIES: ringall, hunt or
                                memoryhunt)
    ring_time                   ring_time, 1 to 300 seconds as Issabel allows (ringall: in all;
                                hunt, memoryhunt: per step)
    extension_list              members: each an extension of this PBX, kept as its login
    destination_if_no_answer    noanswer: app-blackhole,hangup,1 / app-blackhole,busy,1 /
                                from-did-direct,<ext>,1 (an employee) / ext-group,<ext>,1 /
                                ext-local,vmu<ext>,1 (a mailbox) / from-internal,<number>,1
                                (an outside number) / <context>,s,1 (an IVR)

The other fields Issabel shows (`?fields=*`: announcements, caller-ID prefixes, call
confirmation, ...) are given their neutral value; written, they are ignored. A ring group
the bridge learnt from Asterisk's config becomes the API client's once it writes it.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from aiohttp import web

from ...config import Settings
from ...provision.render import EXTENSIONS_CONTEXT
from ...provision.rules import CONTEXT, EXTENSION, STRATEGIES, TELNUM, group_problems
from ...store import directory as store
from ...store.directory import Group, Snapshot
from ...store.queries import QUERIES
from ..services import services_of
from ..writes import commit, provisioning
from . import body
from .errors import IssabelError, success
from .extensions import IN_USE
from .records import (
    add_resource_routes,
    chosen,
    ids_of,
    next_free,
    one_id,
    pick,
    snapshot,
    used_extensions,
    written,
)

FIRST = 600  # Issabel's first ring group number
KIND = "ringgroup"
DEFAULTS = (
    "change_callerid",
    "destination",
    "extension",
    "extension_list",
    "fixed_callerid",
    "id",
    "name",
    "strategy",
)
NEUTRAL: dict[str, Any] = {  # what Issabel shows of options the bridge does not have
    "alert_info": "",
    "announce_id": 0,
    "cid_name_prefix": "",
    "confirm_calls": "off",
    "enable_call_pickup": "off",
    "ignore_call_forward_settings": "off",
    "music_on_hold_ringing": "Ring",
    "recording": "dontcare",
    "remote_announce_id": 0,
    "skip_busy_agent": "off",
    "too_late_announce_id": 0,
}
EVERYTHING = tuple(sorted({*DEFAULTS, *NEUTRAL, "destination_if_no_answer", "ring_time"}))
HANGUP = "app-blackhole,hangup,1"


class Where:
    """Who is where in this PBX's directory, both ways (extension <-> login or group id)."""

    def __init__(self, snap: Snapshot) -> None:
        self.ext_of = {u.login: u.ext for u in snap.users if u.ext}
        self.login_at = {u.ext: u.login for u in snap.users if u.ext}
        self.groups = {str(g.id): g for g in snap.groups}
        self.group_at = {g.ext: g for g in snap.groups if g.kind == KIND and g.ext}

    def member_ext(self, member: str) -> str:
        return self.ext_of.get(member, member)

    def destination(self, noanswer: str) -> str:
        kind, _, target = noanswer.partition(":")
        if kind == "busy":
            return "app-blackhole,busy,1"
        if kind == "user" and target in self.ext_of:
            return f"from-did-direct,{self.ext_of[target]},1"
        if kind == "group" and target in self.groups:
            return f"ext-group,{self.groups[target].ext},1"
        if kind == "voicemail" and target in self.ext_of:
            return f"ext-local,vmu{self.ext_of[target]},1"
        if kind == "number":
            return f"from-internal,{target},1"
        if kind == "ivr":
            return f"{target},s,1"
        return HANGUP

    def noanswer(self, destination: str) -> str:
        """Issabel's `context,exten,priority` as the directory's no-answer destination."""
        if destination in ("", HANGUP):
            return "hangup"
        parts = destination.split(",")
        if len(parts) == 3:
            context, exten, _ = parts
            if context == "app-blackhole" and exten in ("hangup", "busy"):
                return exten
            if context == "ext-group" and exten in self.group_at:
                return f"group:{self.group_at[exten].id}"
            if context == "ext-local" and exten[:3] in ("vmu", "vmb", "vms"):
                if exten[3:] in self.login_at:
                    return f"voicemail:{self.login_at[exten[3:]]}"
            elif exten in self.login_at:
                return f"user:{self.login_at[exten]}"
            elif exten in self.group_at:
                return f"group:{self.group_at[exten].id}"
            elif exten == "s" and CONTEXT.fullmatch(context):
                return f"ivr:{context}"
            elif TELNUM.fullmatch(exten):
                return f"number:{exten}"
        raise IssabelError(
            422,
            "Not a destination the bridge can render (app-blackhole,hangup,1; "
            "app-blackhole,busy,1; from-did-direct,<extension>,1; ext-group,<group>,1; "
            "ext-local,vmu<extension>,1; from-internal,<number>,1; <context>,s,1)",
            source="destination_if_no_answer",
        )


def record(g: Group, where: Where, settings: Settings) -> dict[str, Any]:
    context = EXTENSIONS_CONTEXT if g.provisioned else settings.provision.internal_context
    return {
        **NEUTRAL,
        "change_callerid": "default",
        "destination": f"{context or EXTENSIONS_CONTEXT},{g.ext},1",
        "destination_if_no_answer": where.destination(g.noanswer),
        "extension": g.ext,
        "extension_list": [where.member_ext(m) for m in g.members],
        "fixed_callerid": "",
        "id": g.ext,
        "name": g.name,
        "ring_time": g.ring_time,
        "strategy": g.strategy,
    }


def _members(fields: body.Fields, where: Where) -> tuple[str, ...] | None:
    value = fields.get("extension_list")
    if value is None:
        return None
    if isinstance(value, str):
        value = [v for v in value.replace(",", "-").split("-") if v.strip()]
    if not isinstance(value, list) or len(value) > 500:
        raise IssabelError(400, "extension_list: a list of extensions", source="extension_list")
    members: list[str] = []
    for item in value:
        if isinstance(item, bool) or not isinstance(item, str | int):
            raise IssabelError(400, "extension_list: a list of extensions", source="extension_list")
        ext = str(item).strip()
        if ext not in where.login_at:
            shown = ext[:20] if ext.isprintable() else repr(ext[:20])
            raise IssabelError(
                422, f"Not an extension of this PBX: {shown}", source="extension_list"
            )
        members.append(where.login_at[ext])
    return tuple(dict.fromkeys(members))


def changes(fields: body.Fields, where: Where) -> dict[str, Any]:
    found: dict[str, Any] = {}
    name = body.text(fields, "name")
    if name is None:
        name = body.text(fields, "description")
    if name is not None:
        found["name"] = name
    strategy = body.choice(fields, "strategy", tuple(STRATEGIES))
    if strategy is not None:
        found["strategy"] = strategy
    ring = body.whole(fields, "ring_time", 1, 300)
    if ring is not None:
        found["ring_time"] = ring
    members = _members(fields, where)
    if members is not None:
        found["members"] = members
    destination = body.text(fields, "destination_if_no_answer")
    if destination is not None:
        found["noanswer"] = where.noanswer(destination)
    return found


def checked(g: Group) -> Group:
    problems = group_problems(g)
    if problems:
        raise IssabelError(400, "; ".join(problems))
    return g


# ---------------------------------------------------------------- handlers


def _ringgroups(snap: Snapshot) -> list[Group]:
    return sorted(
        (g for g in snap.groups if g.kind == KIND and g.ext),
        key=lambda g: (len(g.ext), g.ext),
    )


async def list_ringgroups(request: web.Request) -> web.Response:
    s = services_of(request)
    snap = await snapshot(request)
    where, fields = Where(snap), chosen(request, DEFAULTS, EVERYTHING)
    return success([pick(record(g, where, s.settings), fields) for g in _ringgroups(snap)])


async def get_ringgroup(request: web.Request) -> web.Response:
    s = services_of(request)
    ext = one_id(request)
    snap = await snapshot(request)
    where = Where(snap)
    found = where.group_at.get(ext)
    if found is None:
        raise IssabelError(404, "Record not found")
    return success([pick(record(found, where, s.settings), chosen(request, DEFAULTS, EVERYTHING))])


def _new(ext: str, values: dict[str, Any]) -> Group:
    group = Group(0, KIND, ext, ext, "ringall", 20, (), "api", provisioned=True)
    return checked(replace(group, **values))


async def create_ringgroup(request: web.Request) -> web.Response:
    fields = await body.read_input(request)
    apply = body.reload(fields)
    if "extension_list" not in fields:
        raise IssabelError(422, "Required field missing", source="extension_list")
    given = body.text(fields, "extension", limit=20)
    if given is not None and not EXTENSION.fullmatch(given):
        raise IssabelError(
            400, f"extension: {given[:20]!r} is not 1 to 20 digits", source="extension"
        )
    s = services_of(request)
    prov = provisioning(request)
    async with s.pool.acquire() as conn, conn.transaction():
        await conn.execute(QUERIES["lock_directory"], s.pbx_id)
        snap = await store.snapshot(conn, s.pbx_id)
        where = Where(snap)
        values = changes(fields, where)
        used = await used_extensions(conn, s.pbx_id)
        if given is None:
            given = next_free(used, (g.ext for g in _ringgroups(snap)), FIRST)
        elif given in used:
            raise IssabelError(409, IN_USE)
        group = _new(given, values)
        group_id = await store.upsert_group(conn, s.pbx_id, group)
        group = replace(group, id=group_id)

    async def undo() -> None:
        await store.delete_group(s.pool, s.pbx_id, group_id)

    outcome = await commit(prov, f"ring group {group.ext} created", undo, apply=apply)
    return written(request, outcome, [record(group, where, s.settings)], created=group.ext)


async def put_ringgroup(request: web.Request) -> web.Response:
    ext = one_id(request)
    fields = await body.read_input(request)
    apply = body.reload(fields)
    s = services_of(request)
    prov = provisioning(request)
    async with s.pool.acquire() as conn, conn.transaction():
        await conn.execute(QUERIES["lock_directory"], s.pbx_id)
        where = Where(await store.snapshot(conn, s.pbx_id))
        values = changes(fields, where)
        before = where.group_at.get(ext)
        if before is None:
            if ext in await used_extensions(conn, s.pbx_id):
                raise IssabelError(409, IN_USE)
            group = _new(ext, values)
        else:
            group = checked(replace(before, **values, source="api", provisioned=True))
        group = replace(group, id=await store.upsert_group(conn, s.pbx_id, group))

    async def undo() -> None:
        if before is None:
            await store.delete_group(s.pool, s.pbx_id, group.id)
        else:
            await store.restore_group(s.pool, s.pbx_id, before)

    what = "created" if before is None else "changed"
    outcome = await commit(prov, f"ring group {ext} {what}", undo, apply=apply)
    created = ext if before is None else None
    return written(request, outcome, [record(group, where, s.settings)], created=created)


async def delete_ringgroups(request: web.Request) -> web.Response:
    ids = ids_of(request)
    fields = await body.read_input(request)
    apply = body.reload(fields)
    s = services_of(request)
    prov = provisioning(request)
    where = Where(await snapshot(request))
    gone: list[Group] = []
    for ext in ids:
        found = where.group_at.get(ext)
        if found is None:
            raise IssabelError(404, "Could not find a record to delete")
        if found.source != "api":
            raise IssabelError(
                409,
                f"ring group {ext} is one of Asterisk's own config (learnt from it): change it "
                "with PUT first to make it the bridge's, or delete it where it is configured",
            )
        gone.append(found)
    async with s.pool.acquire() as conn, conn.transaction():
        for g in gone:
            await store.delete_group(conn, s.pbx_id, g.id)

    async def undo() -> None:
        for g in gone:
            await store.restore_group(s.pool, s.pbx_id, g)

    reason = "ring group(s) " + ",".join(g.ext for g in gone) + " deleted"
    outcome = await commit(prov, reason, undo, apply=apply)
    return written(request, outcome, [g.ext for g in gone])


def add_routes(app: web.Application) -> None:
    add_resource_routes(
        app,
        "/ringgroups",
        list_all=list_ringgroups,
        create=create_ringgroup,
        get_one=get_ringgroup,
        put_one=put_ringgroup,
        delete=delete_ringgroups,
    )
