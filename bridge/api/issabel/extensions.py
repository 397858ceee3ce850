"""`extensions`: the PBX's phones, as Issabel's pbxapi shows and writes them.

An extension is an employee of the directory with a phone: Issabel's fields map onto the
directory's provisioning fields (bridge.store.directory.User):

    extension               ext (and the login of an extension made here)
    name                    name (the phone's caller ID name; "Extension" when not given)
    secret                  secret (the SIP password; 16 random characters when not given)
    tech                    sip or pjsip: the phone is rendered for [asterisk] channel_driver
                            and shown with it; iax2, dahdi, ... cannot be provisioned (422)
    dial                    shown, never written: PJSIP/<ext> or SIP/<ext>
    ringtimer               ring_time (0: [provision] ring_time)
    voicemail               novm -> no mailbox; default -> mailbox <ext>@default
    recording_in_internal   record_in_internal (always, dontcare, never), and the other three
    recording_in_external   likewise; Issabel 5's nested names (recording.inbound_external,
    recording_out_internal  extension_options.ring_time, voicemail.enabled) are taken too
    recording_out_external

Lists show every employee with an extension (secret and context only for the phones the
bridge provisions: Asterisk's own phones keep theirs in its own files). Writes make the
phone one the bridge provisions (rendered, reloaded, confirmed); a phone Asterisk has in its
own config (learnt from it) is not the bridge's to change or delete: 409.
"""

from __future__ import annotations

import secrets
import string
from dataclasses import replace
from typing import Any

import asyncpg
from aiohttp import web

from ...config import Settings
from ...provision.render import DRIVERS, PHONES_CONTEXT
from ...provision.rules import EXTENSION, user_problems
from ...store import directory as store
from ...store.directory import RECORDING_RULES, User
from ...store.queries import QUERIES
from ..services import services_of
from ..writes import commit, delete_employees, provisioning
from . import body
from .errors import IssabelError, success
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

FIRST = 200  # Issabel's first extension number
DEFAULTS = ("extension", "name", "tech", "dial", "secret", "context")
RECORDING = {
    "recording_in_internal": "record_in_internal",
    "recording_in_external": "record_in_external",
    "recording_out_internal": "record_out_internal",
    "recording_out_external": "record_out_external",
}
EVERYTHING = (*DEFAULTS, "ringtimer", "voicemail", *RECORDING)
ALIASES = {  # Issabel 5's nested field names
    "extension_options.ring_time": "ringtimer",
    "voicemail.enabled": "voicemail",
    "recording.inbound_internal": "recording_in_internal",
    "recording.inbound_external": "recording_in_external",
    "recording.outbound_internal": "recording_out_internal",
    "recording.outbound_external": "recording_out_external",
}
IN_USE = "Extension number already in use"
_ALPHABET = string.ascii_letters + string.digits


def record(u: User, settings: Settings) -> dict[str, Any]:
    tech = settings.asterisk.channel_driver
    found: dict[str, Any] = {
        "extension": u.ext,
        "name": u.name,
        "tech": tech,
        "dial": f"{DRIVERS[tech]}/{u.ext}",
        "secret": u.secret if u.provisioned else "",
        "context": PHONES_CONTEXT if u.provisioned else "",
        "ringtimer": u.ring_time,
        "voicemail": u.voicemail or "novm",
    }
    found.update({field: getattr(u, ours) for field, ours in RECORDING.items()})
    return found


def new_secret() -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(16))


def changes(fields: body.Fields) -> dict[str, Any]:
    """The User fields a write body sets (Issabel names in, directory names out)."""
    for alias, field in ALIASES.items():
        if alias in fields and field not in fields:
            fields[field] = fields[alias]
    found: dict[str, Any] = {}
    name = body.text(fields, "name")
    if name is not None:
        found["name"] = name
    secret = body.text(fields, "secret", limit=200)
    if secret is not None:
        found["secret"] = secret
    tech = body.text(fields, "tech")
    if tech is not None and tech.lower() not in DRIVERS:
        raise IssabelError(
            422,
            "Not in list of allowed values (sip, pjsip: the bridge provisions SIP phones)",
            source="tech",
        )
    ring = body.whole(fields, "ringtimer", 0, 600)
    if ring is not None:
        found["ring_time"] = ring
    voicemail = body.choice(fields, "voicemail", ("novm", "default"))
    if voicemail is not None:
        found["voicemail"] = "" if voicemail == "novm" else voicemail
    for field, ours in RECORDING.items():
        rule = body.choice(fields, field, RECORDING_RULES)
        if rule is not None:
            found[ours] = rule
    return found


def checked(u: User) -> User:
    problems = user_problems(u)
    if problems:
        raise IssabelError(400, "; ".join(problems))
    return u


def _by_ext(users: list[User]) -> dict[str, User]:
    return {u.ext: u for u in users if u.ext}


def _own(u: User) -> bool:
    """Whether the bridge may change this employee's phone: one an API client made."""
    return u.provisioned or u.source == "api"


def _not_ours(u: User) -> IssabelError:
    return IssabelError(
        409,
        f"extension {u.ext} is a phone of Asterisk's own config (learnt from it), not one "
        "the bridge provisions: change it where it is configured",
    )


# ---------------------------------------------------------------- handlers


async def list_extensions(request: web.Request) -> web.Response:
    s = services_of(request)
    fields = chosen(request, DEFAULTS, EVERYTHING)
    users = sorted(
        (u for u in (await snapshot(request)).users if u.ext),
        key=lambda u: (len(u.ext), u.ext),
    )
    return success([pick(record(u, s.settings), fields) for u in users])


async def get_extension(request: web.Request) -> web.Response:
    s = services_of(request)
    ext = one_id(request)
    found = _by_ext((await snapshot(request)).users).get(ext)
    if found is None:
        raise IssabelError(404, "Record not found")
    return success([pick(record(found, s.settings), chosen(request, DEFAULTS, EVERYTHING))])


async def _new_user(
    conn: asyncpg.Connection, pbx_id: str, ext: str, values: dict[str, Any]
) -> User:
    if ext in await used_extensions(conn, pbx_id) or await store.user(conn, pbx_id, ext):
        raise IssabelError(409, IN_USE)
    user = User(
        ext,
        values.get("name", "Extension"),
        ext,
        source="api",
        provisioned=True,
        secret=values.get("secret") or new_secret(),
    )
    user = checked(
        replace(user, **{k: v for k, v in values.items() if k not in ("name", "secret")})
    )
    await store.upsert_user(conn, pbx_id, user)
    return user


async def create_extension(request: web.Request) -> web.Response:
    fields = await body.read_input(request)
    apply = body.reload(fields)
    values = changes(fields)
    given = body.text(fields, "extension", limit=20)
    if given is not None and not EXTENSION.fullmatch(given):
        raise IssabelError(
            400, f"extension: {given[:20]!r} is not 1 to 20 digits", source="extension"
        )
    s = services_of(request)
    prov = provisioning(request)
    async with s.pool.acquire() as conn, conn.transaction():
        await conn.execute(QUERIES["lock_directory"], s.pbx_id)
        if given is None:
            users = await store.users(conn, s.pbx_id)
            used = await used_extensions(conn, s.pbx_id)
            given = next_free(used, (u.ext for u in users), FIRST)
        user = await _new_user(conn, s.pbx_id, given, values)

    async def undo() -> None:
        await store.delete_user(s.pool, s.pbx_id, user.login)

    outcome = await commit(prov, f"extension {user.ext} created", undo, apply=apply)
    return written(request, outcome, [record(user, s.settings)], created=user.ext)


async def put_extension(request: web.Request) -> web.Response:
    ext = one_id(request)
    fields = await body.read_input(request)
    apply = body.reload(fields)
    values = changes(fields)
    s = services_of(request)
    prov = provisioning(request)
    async with s.pool.acquire() as conn, conn.transaction():
        await conn.execute(QUERIES["lock_directory"], s.pbx_id)
        before = _by_ext(await store.users(conn, s.pbx_id)).get(ext)
        if before is None:
            user = await _new_user(conn, s.pbx_id, ext, values)
        else:
            if not _own(before):
                raise _not_ours(before)
            user = replace(before, **values, source="api", provisioned=True)
            if not user.secret:
                user = replace(user, secret=new_secret())
            await store.upsert_user(conn, s.pbx_id, checked(user))

    async def undo() -> None:
        if before is None:
            await store.delete_user(s.pool, s.pbx_id, user.login)
        else:
            await store.upsert_user(s.pool, s.pbx_id, before)

    what = "created" if before is None else "changed"
    outcome = await commit(prov, f"extension {ext} {what}", undo, apply=apply)
    created = ext if before is None else None
    return written(request, outcome, [record(user, s.settings)], created=created)


async def delete_extensions(request: web.Request) -> web.Response:
    ids = ids_of(request)
    fields = await body.read_input(request)
    apply = body.reload(fields)
    s = services_of(request)
    prov = provisioning(request)
    by_ext = _by_ext((await snapshot(request)).users)
    gone: list[User] = []
    for ext in ids:
        found = by_ext.get(ext)
        if found is None:
            raise IssabelError(404, "Could not find a record to delete")
        if not _own(found):
            raise _not_ours(found)
        gone.append(found)
    reason = "extension(s) " + ",".join(u.ext for u in gone) + " deleted"
    outcome = await delete_employees(prov, s.pool, s.pbx_id, gone, reason, apply=apply)
    return written(request, outcome, [u.ext for u in gone])


def add_routes(app: web.Application) -> None:
    add_resource_routes(
        app,
        "/extensions",
        list_all=list_extensions,
        create=create_extension,
        get_one=get_extension,
        put_one=put_extension,
        delete=delete_extensions,
    )
