"""Departments written (sections 8.3-8.5): ring groups the bridge provisions.

- `POST groups`: `name` (required), `ext` (default the next free number from 600),
  `call_order`, `call_duration`, `timeout`, `users`, `advanced` ("off" only). Answers the
  department as `groups/{id}` shows it.
- `PUT`/`PATCH groups/{id}` (id, extension or name): only the fields sent change (8.4).
  A ring group learnt from Asterisk's config becomes the API client's; a queue is refused
  (queues are Asterisk's queues.conf, not rendered by the bridge).
- `DELETE groups/{id}`: 204.
- `PUT groups/{id}/users` (8.6): `add` (logins, put at `position`: 0 the beginning, -1 the
  end, n before the n-th member), then `calls_disable`, then `remove`: 204. Members whose
  calls are disabled take none from the department, so they leave it.

How VPBX orders map onto what Asterisk's ring groups do (the bridge renders ringall, hunt
and memoryhunt):
    ALL        ringall: every member at once, for `timeout.time` seconds (default 120)
    BYORDER    hunt: one member after the other, `call_duration` seconds each (default 15)
    WATERFALL  memoryhunt: the first member, then the first two, ..., `call_duration` each
    EVENLY     ringall: Asterisk's ring groups have no round robin; ringing every free
               member lets whoever is free take the call, which spreads calls across
               members, while hunt and memoryhunt always start with the first member and
               load them most. Read back, such a department says ALL.
`timeout.target` (where an unanswered call goes): user (an employee), group (a department),
telnum (an outside number), msg_busy (busy), voicemail with `user` (that employee's
mailbox; without one the call ends: the PBX has no department mailbox). `users` items are
`{"login", "calls_enable"}` (or logins): a member with `calls_enable` false takes no calls
from the department, so they are left out of it.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from aiohttp import web

from ...provision.rules import EXTENSION, TELNUM, group_problems
from ...store import directory as store
from ...store.directory import Group
from ...store.queries import QUERIES
from ...tracker.numbers import PhoneNormalizer
from ..errors import bad_request, not_found
from ..services import services_of
from ..writes import commit, provisioning
from . import body
from . import names as names_mod
from .directory import group_json
from .names import Names
from .writing import answer

STRATEGIES = {"ALL": "ringall", "EVENLY": "ringall", "BYORDER": "hunt", "WATERFALL": "memoryhunt"}
DURATIONS = (5, 10, 15, 20, 25, 30)  # call_duration, section 8.3
TIMES = (15, 30, 60, 120, 300, 600)  # timeout.time, section 8.7
FIRST_EXT = 600


def _members(fields: body.Fields, names: Names) -> tuple[str, ...] | None:
    value = fields.get("users")
    if value is None:
        return None
    if not isinstance(value, list) or len(value) > 500:
        raise bad_request("users: a list of {login, calls_enable}")
    members: list[str] = []
    for i, item in enumerate(value):
        if isinstance(item, str):
            item = {"login": item}
        if not isinstance(item, dict):
            raise bad_request(f"users[{i}]: an object with login and calls_enable")
        login = body.required_text(item, "login", limit=64)
        u = names.user(login)
        if u is None:
            raise bad_request(f"users[{i}].login: {login[:64]!r} is not an employee")
        if body.boolean(item, "calls_enable") is not False:
            members.append(u.login)
    return tuple(dict.fromkeys(members))


def _noanswer(timeout: body.Fields, names: Names, region: str) -> str | None:
    target = body.text(timeout, "target")
    if target is None:
        return None
    if target == "msg_busy":
        return "busy"
    if target in ("user", "voicemail"):
        who = body.text(timeout, "user", limit=64)
        if who is None:
            if target == "voicemail":
                return "hangup"  # no department mailbox: the call ends
            raise bad_request("timeout.user: required for target user")
        u = names.user(who)
        if u is None:
            raise bad_request(f"timeout.user: {who[:64]!r} is not an employee")
        return f"{target}:{u.login}"
    if target == "group":
        ref = body.required_text(timeout, "group", limit=200)
        g = names.group(ref)
        if g is None:
            raise bad_request(f"timeout.group: {ref[:64]!r} is not a department")
        return f"group:{g.id}"
    if target == "telnum":
        number = PhoneNormalizer(region).normalize(body.required_text(timeout, "telnum", limit=40))
        if not TELNUM.fullmatch(number):
            raise bad_request("timeout.telnum: not a phone number")
        return f"number:{number}"
    raise bad_request("timeout.target: one of voicemail, user, group, telnum, msg_busy")


def _changes(
    fields: body.Fields, names: Names, region: str, before: Group | None
) -> dict[str, Any]:
    found: dict[str, Any] = {}
    name = body.text(fields, "name")
    if name is not None:
        found["name"] = name
    ext = body.text(fields, "ext", limit=20)
    if ext is not None:
        if not EXTENSION.fullmatch(ext):
            raise bad_request(f"ext: {ext[:20]!r} is not 1 to 20 digits")
        found["ext"] = ext
    order = body.text(fields, "call_order")
    if order is not None and order not in STRATEGIES:
        raise bad_request("call_order: one of ALL, EVENLY, BYORDER, WATERFALL")
    advanced = body.text(fields, "advanced")
    if advanced not in (None, "off"):
        raise bad_request("advanced: only off (the PBX has no busy message or callback of its own)")
    duration = body.integer(fields, "call_duration")
    if (
        duration is not None
        and duration not in DURATIONS
        and not (duration == 0 and order == "ALL")
    ):
        raise bad_request("call_duration: one of 5, 10, 15, 20, 25, 30")
    timeout = body.mapping(fields, "timeout") or {}
    time = body.integer(timeout, "time")
    if time is not None and time not in TIMES:
        raise bad_request("timeout.time: one of 15, 30, 60, 120, 300, 600")
    noanswer = _noanswer(timeout, names, region)
    if noanswer is not None:
        found["noanswer"] = noanswer
    members = _members(fields, names)
    if members is not None:
        found["members"] = members
    was = before.strategy if before is not None else None
    strategy = STRATEGIES[order] if order is not None else (was or "ringall")
    found["strategy"] = strategy
    if strategy == "ringall":
        kept = before.ring_time if before is not None and was == "ringall" else 120
        found["ring_time"] = time if time is not None else kept
    else:
        kept = before.ring_time if before is not None and was != "ringall" else 15
        found["ring_time"] = duration if duration else kept
    return found


def _checked(g: Group, names: Names) -> Group:
    problems = group_problems(g)
    if problems:
        raise bad_request("; ".join(problems))
    holder = names.user(g.ext)
    if holder is not None and holder.ext == g.ext:
        raise bad_request(f"ext: {g.ext} is {holder.login!r}'s extension")
    other = next((o for o in names.groups if o.ext == g.ext and o.id != g.id), None)
    if other is not None:
        raise bad_request(f"ext: {g.ext} is the extension of group {other.id}")
    return g


async def _names(request: web.Request) -> Names:
    s = services_of(request)
    return await names_mod.load(s.pool, s.pbx_id)


async def _answer_group(request: web.Request, group_id: int) -> dict[str, Any]:
    names = await _names(request)
    found = names.group(str(group_id))
    if found is None:  # deleted meanwhile
        raise not_found("Group not found")
    return group_json(found, names)


async def add_group(request: web.Request) -> web.Response:
    s = services_of(request)
    prov = provisioning(request)
    fields = await body.read_fields(request)
    async with s.pool.acquire() as conn, conn.transaction():
        await conn.execute(QUERIES["lock_directory"], s.pbx_id)  # one add at a time
        names = await names_mod.load(conn, s.pbx_id)
        values = _changes(fields, names, s.settings.pbx.region, None)
        if not values.get("name"):
            raise bad_request("name: required")
        if "ext" not in values:
            used = {u.ext for u in names.users if u.ext} | {g.ext for g in names.groups if g.ext}
            own = [int(g.ext) for g in names.groups if g.ext.isdigit() and len(g.ext) <= 18]
            n = min(own) + 1 if own else FIRST_EXT
            while str(n) in used:
                n += 1
            values["ext"] = str(n)
        group = Group(0, "ringgroup", "", source="api", provisioned=True)
        group = _checked(replace(group, **values), names)
        group_id = await store.upsert_group(conn, s.pbx_id, group)

    async def undo() -> None:
        await store.delete_group(s.pool, s.pbx_id, group_id)

    outcome = await commit(prov, f"department {group.ext} ({group.name}) added", undo)
    return answer(outcome, await _answer_group(request, group_id))


def _department(names: Names, request: web.Request) -> Group:
    g = names.group(request.match_info["id"])
    if g is None:
        raise not_found("Group not found")
    if g.kind != "ringgroup":
        raise bad_request(
            f"group {g.id} is a queue of Asterisk's own queues.conf: the bridge provisions "
            "ring groups only"
        )
    return g


async def edit_group(request: web.Request) -> web.Response:
    s = services_of(request)
    prov = provisioning(request)
    fields = await body.read_fields(request)
    names = await _names(request)
    before = _department(names, request)
    values = _changes(fields, names, s.settings.pbx.region, before)
    if "name" in values and not values["name"]:
        raise bad_request("name: must not be empty")
    group = _checked(replace(before, **values, source="api", provisioned=True), names)
    async with s.pool.acquire() as conn, conn.transaction():
        if group.ext != before.ext:  # the same group (its id) on a new extension
            await conn.execute(QUERIES["rekey_group"], s.pbx_id, before.id, group.ext)
        await store.upsert_group(conn, s.pbx_id, group)

    async def undo() -> None:
        await store.restore_group(s.pool, s.pbx_id, before)  # its extension too

    outcome = await commit(prov, f"department {group.ext} ({group.name}) changed", undo)
    return answer(outcome, await _answer_group(request, group.id))


async def delete_group(request: web.Request) -> web.Response:
    s = services_of(request)
    prov = provisioning(request)
    g = _department(await _names(request), request)
    if g.source != "api":
        raise bad_request(
            f"group {g.id} is learnt from Asterisk's own config: the next directory sync "
            "would bring it back; change it (it becomes the bridge's) or remove it there"
        )
    await store.delete_group(s.pool, s.pbx_id, g.id)

    async def undo() -> None:
        await store.restore_group(s.pool, s.pbx_id, g)

    return answer(await commit(prov, f"department {g.ext} ({g.name}) deleted", undo))


def _logins(fields: body.Fields, name: str, names: Names) -> list[str]:
    value = fields.get(name, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or len(value) > 500:
        raise bad_request(f"{name}: a list of logins")
    found: list[str] = []
    for i, item in enumerate(value):
        if not isinstance(item, str | int) or isinstance(item, bool):
            raise bad_request(f"{name}[{i}]: a login")
        u = names.user(str(item))
        if u is None:
            raise bad_request(f"{name}[{i}]: {str(item)[:64]!r} is not an employee")
        found.append(u.login)
    return found


async def change_members(request: web.Request) -> web.Response:
    s = services_of(request)
    prov = provisioning(request)
    fields = await body.read_fields(request)
    names = await _names(request)
    before = _department(names, request)
    add, off, remove = (_logins(fields, n, names) for n in ("add", "calls_disable", "remove"))
    position = body.integer(fields, "position")
    members = list(before.members)
    new = [m for m in dict.fromkeys(add) if m not in members]
    at = len(members) if position is None or position < 0 else min(position, len(members))
    members[at:at] = new
    gone = set(off) | set(remove)
    group = replace(
        before, members=tuple(m for m in members if m not in gone), source="api", provisioned=True
    )
    group = _checked(group, names)
    await store.upsert_group(s.pool, s.pbx_id, group)

    async def undo() -> None:
        await store.restore_group(s.pool, s.pbx_id, before)

    return answer(await commit(prov, f"department {group.ext} ({group.name}) members", undo))


def add_routes(app: web.Application) -> None:
    app.router.add_put("/groups/{id}/users", change_members)
    app.router.add_post("/groups", add_group)
    app.router.add_put("/groups/{id}", edit_group)
    app.router.add_patch("/groups/{id}", edit_group)
    app.router.add_delete("/groups/{id}", delete_group)
