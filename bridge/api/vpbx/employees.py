"""Employees written (sections 6.3-6.5) and their do-not-disturb mode (6.9).

- `POST users`: `name` (required), `login` (default "u" + the extension), `ext` (default
  the next free extension), `telnum` (direct number), `mobile`, `email`, `position`
  (default "Manager", as 6.3 says), `record` (false: the employee's conversations are never
  recorded); `password`, `role` and `mobile_redirect` are accepted and ignored (the PBX has
  no web logins, roles or mobile forwarding of the bridge's). Answers the employee.
- `PUT`/`PATCH users/{login}` (login or extension): only the fields sent change (6.4). An
  employee whose phone the bridge provisions (made through the Issabel API) keeps it, on
  the new extension when `ext` changes.
- `DELETE users/{login}`: 204; the employee leaves the ring groups API clients made, and
  their DND and recording exception leave AstDB.
- `GET users/{login}/dnd`: `state` is whether the employee receives calls, as 6.9 names
  it: `true` while do-not-disturb is off. `PUT` (or `POST`) enables receiving calls (DND
  off), `DELETE` disables it (DND on); a body `{"state": false}` sets what it says. 204.

An employee Asterisk's own config names (learnt from it) may be renamed and given contact
fields here (it becomes the API client's); deleting one is refused (400): the next sync
would learn it again.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import asyncpg
from aiohttp import web

from ...provision.rules import EXTENSION, user_problems
from ...store import directory as store
from ...store.directory import User
from ...store.queries import QUERIES
from ...tracker.numbers import PhoneNormalizer
from ..errors import bad_request, not_found
from ..services import services_of
from ..writes import Outcome, commit, delete_employees, provisioning
from . import body
from . import names as names_mod
from .directory import user_json
from .names import Names
from .writing import answer

_LOGIN = re.compile(r"[^\s/\\?#%]{1,64}")
FIRST_EXT = 100  # the first extension handed out when the directory has none
CONTACTS = ("telnum", "mobile", "email", "position")


def _login(value: str) -> str:
    if not _LOGIN.fullmatch(value) or not value.isprintable():
        raise bad_request("login: 1 to 64 characters, no blanks, '/', '\\', '?', '#' or '%'")
    return value


def _phone(numbers: PhoneNormalizer, name: str, value: str) -> str:
    if not value:
        return ""
    digits = numbers.normalize(value)
    if not digits or not digits.isdigit():
        raise bad_request(f"{name}: {value[:40]!r} is not a phone number")
    return digits


def _changes(fields: body.Fields, numbers: PhoneNormalizer) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for name in ("name", "email", "position"):
        value = body.text(fields, name)
        if value is not None or (name in fields and fields[name] in ("", None)):
            found[name] = value or ""
    for name in ("telnum", "mobile"):
        value = body.text(fields, name, limit=40)
        if value is not None or fields.get(name) == "":
            found[name] = _phone(numbers, name, value or "")
    ext = body.text(fields, "ext", limit=20)
    if ext is not None:
        if not EXTENSION.fullmatch(ext):
            raise bad_request(f"ext: {ext[:20]!r} is not 1 to 20 digits")
        found["ext"] = ext
    return found


def _check(u: User, names: Names, taken_by_groups: set[str]) -> User:
    problems = user_problems(u)
    if problems:
        raise bad_request("; ".join(problems))
    if u.ext:
        holder = names.user(u.ext)
        if u.ext in taken_by_groups:
            raise bad_request(f"ext: {u.ext} is a group's extension")
        if holder is not None and holder.ext == u.ext and holder.login != u.login:
            if holder.source == "api":
                raise bad_request(f"ext: {u.ext} is {holder.login!r}'s extension")
    return u


async def _names(request: web.Request) -> Names:
    s = services_of(request)
    return await names_mod.load(s.pool, s.pbx_id)


def _employee(names: Names, request: web.Request) -> User:
    u = names.user(request.match_info["login"])
    if u is None:
        raise not_found("User not found")
    return u


async def _record(request: web.Request, login: str, record: bool | None) -> Outcome | None:
    """The employee's recording exception (`record` false: never recorded), in AstDB."""
    if record is None:
        return None
    return Outcome.of(await provisioning(request).set_recording_exception(login, not record))


async def _store(conn: asyncpg.Connection, pbx_id: str, u: User) -> None:
    async with conn.transaction():
        await store.upsert_user(conn, pbx_id, u)
        await conn.execute(
            QUERIES["api_user_contacts"], pbx_id, u.login, u.telnum, u.mobile, u.email, u.position
        )


def _shown(u: User, names: Names, record: bool | None) -> dict[str, Any]:
    body_ = user_json(u, names)
    if record is not None:
        body_["record"] = record
    return body_


def _worst(*outcomes: Outcome | None) -> Outcome:
    found = [o for o in outcomes if o is not None]
    return next((o for o in found if not o.applied), found[0])


async def add_user(request: web.Request) -> web.Response:
    s = services_of(request)
    prov = provisioning(request)
    fields = await body.read_fields(request)
    numbers = PhoneNormalizer(s.settings.pbx.region)
    values = _changes(fields, numbers)
    if not values.get("name"):
        raise bad_request("name: required")
    record = body.boolean(fields, "record")
    given = body.text(fields, "login", limit=64)
    async with s.pool.acquire() as conn, conn.transaction():
        await conn.execute(QUERIES["lock_directory"], s.pbx_id)  # one add at a time
        names = await names_mod.load(conn, s.pbx_id)
        groups = {g.ext for g in names.groups if g.ext}
        ext = values.pop("ext", None)
        if ext is None:
            used = {u.ext for u in names.users if u.ext} | groups
            own = [int(u.ext) for u in names.users if u.ext.isdigit() and len(u.ext) <= 18]
            n = min(own) + 1 if own else FIRST_EXT
            while str(n) in used:
                n += 1
            ext = str(n)
        login = _login(given or f"u{ext}")
        existing = names.user(login)
        if existing is not None and existing.login == login:
            raise bad_request(f"login: {login!r} exists")
        values.setdefault("position", "Manager")
        user = _check(User(login, ext=ext, source="api", **values), names, groups)
        await _store(conn, s.pbx_id, user)

    async def undo() -> None:
        await store.delete_user(s.pool, s.pbx_id, login)

    outcome = await commit(prov, f"employee {login} added", undo)
    recorded = await _record(request, login, record)
    return answer(_worst(outcome, recorded), _shown(user, await _names(request), record))


async def edit_user(request: web.Request) -> web.Response:
    s = services_of(request)
    prov = provisioning(request)
    fields = await body.read_fields(request)
    values = _changes(fields, PhoneNormalizer(s.settings.pbx.region))
    if "name" in values and not values["name"]:
        raise bad_request("name: must not be empty")
    record = body.boolean(fields, "record")
    names = await _names(request)
    before = _employee(names, request)
    user = _check(
        replace(before, **values, source="api"), names, {g.ext for g in names.groups if g.ext}
    )
    async with s.pool.acquire() as conn:
        await _store(conn, s.pbx_id, user)

    async def undo() -> None:
        async with s.pool.acquire() as conn, conn.transaction():
            await _store(conn, s.pbx_id, before)
            await store.restore_user(conn, s.pbx_id, before)  # a learnt one: Asterisk's again

    outcome = await commit(prov, f"employee {user.login} changed", undo)
    if user.ext != before.ext and before.login in names.dnd_or_norecord:
        await prov.sync_astdb()  # the DND and recording keys follow the extension
    recorded = await _record(request, user.login, record)
    return answer(_worst(outcome, recorded), _shown(user, await _names(request), record))


async def delete_user(request: web.Request) -> web.Response:
    s = services_of(request)
    prov = provisioning(request)
    u = _employee(await _names(request), request)
    if u.source != "api" and not u.provisioned:
        raise bad_request(
            f"employee {u.login!r} is learnt from Asterisk's own config: the next directory "
            "sync would bring them back; remove them there"
        )
    outcome = await delete_employees(prov, s.pool, s.pbx_id, [u], f"employee {u.login} deleted")
    return answer(outcome)


async def get_dnd(request: web.Request) -> web.Response:
    """`state`: receiving calls, the opposite of the AstDB key (`dnd/<ext>`: DND on)."""
    u = _employee(await _names(request), request)
    return web.json_response({"state": not await provisioning(request).get_dnd(u.login)})


async def set_dnd(request: web.Request) -> web.Response:
    """PUT/POST enable receiving calls (DND off), DELETE disables it; `state` wins."""
    u = _employee(await _names(request), request)
    fields = await body.read_fields(request)
    state = body.boolean(fields, "state")
    receiving = request.method != "DELETE" if state is None else state
    return answer(Outcome.of(await provisioning(request).set_dnd(u.login, not receiving)))


def add_routes(app: web.Application) -> None:
    app.router.add_post("/users", add_user)
    app.router.add_put("/users/{login}", edit_user)
    app.router.add_patch("/users/{login}", edit_user)
    app.router.add_delete("/users/{login}", delete_user)
    app.router.add_get("/users/{login}/dnd", get_dnd)
    app.router.add_put("/users/{login}/dnd", set_dnd)
    app.router.add_post("/users/{login}/dnd", set_dnd)
    app.router.add_delete("/users/{login}/dnd", set_dnd)
