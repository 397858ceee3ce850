"""The directory in PostgreSQL: employees, ring groups and queues, company numbers.

Seeded from Asterisk (its endpoints and queues) and from `[pbx]` config, editable through
the APIs; what an API client wrote wins over what is learnt again later (`source`).

Employees, ring groups and company numbers an API client marks `provisioned` are rendered
into Asterisk's config by bridge.provision (their phone, ring time, voicemail, recording
rules; a ring group's strategy and no-answer destination; a number's route).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Collection, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field, replace
from typing import Any, TypeAlias

import asyncpg

from .queries import QUERIES

Db: TypeAlias = asyncpg.Pool | asyncpg.Connection
SOURCES = ("pbx", "config", "api")
RECORDING_RULES = ("always", "dontcare", "never")  # Issabel's recording_in/out_* values


@dataclass(frozen=True, slots=True)
class User:
    login: str
    name: str = ""
    ext: str = ""
    telnum: str = ""
    mobile: str = ""
    email: str = ""
    position: str = ""
    source: str = "pbx"
    # provisioning (bridge.provision): written only by API clients (source api)
    provisioned: bool = False  # the bridge renders this employee's phone and extension
    secret: str = field(default="", repr=False)  # the phone's SIP password
    ring_time: int = 0  # seconds the phone rings; 0: [provision] ring_time
    voicemail: str = ""  # voicemail.conf context of mailbox <ext>@<context>; '' none
    record_in_internal: str = "dontcare"  # always / dontcare / never
    record_in_external: str = "dontcare"
    record_out_internal: str = "dontcare"
    record_out_external: str = "dontcare"

    def as_dict(self) -> dict[str, Any]:
        """The employee as the directory APIs show them: never the provisioning fields
        (the secret among them); `provisioning()` has those."""
        return {k: v for k, v in asdict(self).items() if k not in _USER_PROVISIONING}

    def provisioning(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in _USER_PROVISIONING}


@dataclass(frozen=True, slots=True)
class Group:
    id: int
    kind: str  # ringgroup / queue
    name: str
    ext: str = ""
    strategy: str = "ringall"
    ring_time: int = 20
    members: tuple[str, ...] = ()  # logins
    source: str = "pbx"
    provisioned: bool = False  # a ring group the bridge renders (bridge.provision)
    # where an unanswered call goes: '' or hangup, busy, user:<login>, group:<id>,
    # voicemail:<login>, number:<digits>, ivr:<context> (bridge.provision.rules)
    noanswer: str = ""

    def as_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in asdict(self).items() if k not in ("provisioned", "noanswer")}
        d["members"] = list(self.members)
        return d


@dataclass(frozen=True, slots=True)
class Number:
    telnum: str
    name: str = ""
    route_type: str = ""  # user / group / ivr / ''
    route_to: str = ""
    ivr: list[dict[str, Any]] = field(default_factory=list)
    source: str = "config"
    provisioned: bool = False  # the bridge renders its route (bridge.provision)
    disabled: bool = False  # takes no calls: rendered to refuse them (set_number_disabled)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k not in ("provisioned", "disabled")}


_USER_PROVISIONING = (
    "provisioned",
    "secret",
    "ring_time",
    "voicemail",
    "record_in_internal",
    "record_in_external",
    "record_out_internal",
    "record_out_external",
)


def _user(r: asyncpg.Record) -> User:
    return User(**dict(r))


def _group(r: asyncpg.Record) -> Group:
    d = dict(r)
    d["members"] = tuple(d["members"])
    return Group(**d)


def _number(r: asyncpg.Record) -> Number:
    d = dict(r)
    d["ivr"] = json.loads(d["ivr"])
    return Number(**d)


async def users(db: Db, pbx_id: str) -> list[User]:
    return [_user(r) for r in await db.fetch(QUERIES["directory_users"], pbx_id)]


async def user(db: Db, pbx_id: str, login_or_ext: str) -> User | None:
    r = await db.fetchrow(QUERIES["directory_user"], pbx_id, login_or_ext)
    return _user(r) if r is not None else None


async def groups(db: Db, pbx_id: str) -> list[Group]:
    return [_group(r) for r in await db.fetch(QUERIES["directory_groups"], pbx_id)]


async def group(db: Db, pbx_id: str, group_id: int) -> Group | None:
    r = await db.fetchrow(QUERIES["directory_group"], pbx_id, group_id)
    return _group(r) if r is not None else None


async def numbers(db: Db, pbx_id: str) -> list[Number]:
    return [_number(r) for r in await db.fetch(QUERIES["company_numbers"], pbx_id)]


async def number(db: Db, pbx_id: str, telnum: str) -> Number | None:
    r = await db.fetchrow(QUERIES["company_number"], pbx_id, telnum)
    return _number(r) if r is not None else None


@asynccontextmanager
async def _transaction(db: Db) -> AsyncIterator[asyncpg.Connection]:
    if isinstance(db, asyncpg.Pool):
        async with db.acquire() as conn, conn.transaction():
            yield conn
    else:
        async with db.transaction():
            yield db


async def upsert_user(db: Db, pbx_id: str, u: User) -> None:
    """What an API client (or the CLI) says of an employee; an extension it gives is
    taken from whichever learnt row had it. An API client's row also carries its
    provisioning fields (all of them: read, change, write back)."""
    async with _transaction(db) as conn:
        if u.source == "api" and u.ext:
            await conn.execute(QUERIES["yield_extension"], pbx_id, u.ext, u.login)
        await _upsert_user(conn, pbx_id, u)
        if u.source == "api":
            await conn.execute(QUERIES["provision_user"], pbx_id, u.login, *_provisioning(u))


def _provisioning(u: User) -> tuple[Any, ...]:
    """The employee's provisioning fields, in the order the queries take them."""
    return (
        u.provisioned,
        u.secret,
        u.ring_time,
        u.voicemail,
        u.record_in_internal,
        u.record_in_external,
        u.record_out_internal,
        u.record_out_external,
    )


async def _upsert_user(db: Db, pbx_id: str, u: User) -> None:
    await db.execute(QUERIES["upsert_user"], pbx_id, *_fields(u))


def _fields(u: User) -> tuple[str, ...]:
    """The employee's own fields, in the order the queries take them."""
    return (u.login, u.name, u.ext, u.telnum, u.mobile, u.email, u.position, u.source)


async def upsert_group(db: Db, pbx_id: str, g: Group) -> int:
    """A group by (kind, ext); its id. An API client's group also carries its ring time
    and provisioning fields."""
    async with _transaction(db) as conn:
        group_id: int = await conn.fetchval(
            QUERIES["upsert_group"],
            pbx_id,
            g.kind,
            g.name,
            g.ext,
            g.strategy,
            g.ring_time,
            list(g.members),
            g.source,
        )
        if g.source == "api":
            await conn.execute(
                QUERIES["provision_group"], pbx_id, group_id, g.provisioned, g.ring_time, g.noanswer
            )
    return group_id


async def upsert_number(db: Db, pbx_id: str, n: Number) -> None:
    async with _transaction(db) as conn:
        await conn.execute(QUERIES["upsert_number"], pbx_id, *_number_fields(n))
        if n.source == "api":
            await conn.execute(QUERIES["provision_number"], pbx_id, n.telnum, n.provisioned)


async def set_number_disabled(db: Db, pbx_id: str, telnum: str, disabled: bool) -> bool:
    """Whether there is such a number; a disabled one takes no calls."""
    return await db.fetchval(QUERIES["number_disabled"], pbx_id, telnum, disabled) is not None


async def delete_user(db: Db, pbx_id: str, login: str) -> bool:
    """Whether there was such an employee (their DND and recording exception go too)."""
    return await db.fetchval(QUERIES["delete_user"], pbx_id, login) is not None


async def restore_user(db: Db, pbx_id: str, u: User) -> None:
    """An undo: the employee's row exactly as `u` (the upserts keep what an API client
    wrote, so they cannot give a learnt employee back to Asterisk's config)."""
    await db.execute(QUERIES["restore_user"], pbx_id, *_fields(u), *_provisioning(u))


async def restore_number(db: Db, pbx_id: str, n: Number) -> None:
    """An undo: the number's row exactly as `n`."""
    await db.execute(
        QUERIES["restore_number"], pbx_id, *_number_fields(n), n.provisioned, n.disabled
    )


def _number_fields(n: Number) -> tuple[str, ...]:
    """The number's own fields, in the order the queries take them."""
    return (n.telnum, n.name, n.route_type, n.route_to, json.dumps(n.ivr), n.source)


async def delete_group(db: Db, pbx_id: str, group_id: int) -> bool:
    return await db.fetchval(QUERIES["delete_group"], pbx_id, group_id) is not None


async def restore_group(db: Db, pbx_id: str, g: Group) -> None:
    """A group back as it was before a refused write: a deleted one under its own id (what
    routes to it finds it again), a changed one exactly as it was, owner included."""
    await db.execute(
        QUERIES["restore_group"],
        pbx_id,
        g.id,
        g.kind,
        g.name,
        g.ext,
        g.strategy,
        g.ring_time,
        list(g.members),
        g.source,
        g.provisioned,
        g.noanswer,
    )


async def delete_number(db: Db, pbx_id: str, telnum: str) -> bool:
    return await db.fetchval(QUERIES["delete_number"], pbx_id, telnum) is not None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The whole directory of one PBX, for the in-memory look-ups (who is ext 1002, what
    is company number 74957654321 called)."""

    users: list[User]
    groups: list[Group]
    numbers: list[Number]

    def login_of(self) -> dict[str, str]:
        return {u.ext: u.login for u in self.users if u.ext}

    def user_by_login(self) -> dict[str, User]:
        return {u.login: u for u in self.users}

    def number_names(self) -> dict[str, str]:
        return {n.telnum: n.name for n in self.numbers if n.name}


async def snapshot(db: Db, pbx_id: str) -> Snapshot:
    return Snapshot(await users(db, pbx_id), await groups(db, pbx_id), await numbers(db, pbx_id))


# ------------------------------------------------------------------ learning
# The directory sync writes what Asterisk and the config show (sources pbx and config).
# Rows an API client wrote (source api) are never changed or removed by it, and learnt
# rows that would collide with them are not written. `complete`: the sources that were
# read in full this time; their rows that were not learnt again are removed (a PBX that
# did not answer removes nothing).


@asynccontextmanager
async def learning(pool: asyncpg.Pool, pbx_id: str) -> AsyncIterator[asyncpg.Connection]:
    """A transaction in which this PBX's directory is written by one sync at a time."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(QUERIES["lock_directory"], pbx_id)
        yield conn


async def learn_users(
    conn: asyncpg.Connection, pbx_id: str, learnt: Sequence[User], complete: Collection[str]
) -> None:
    rows = await conn.fetch(QUERIES["directory_user_keys"], pbx_id)
    api_logins = {r["login"] for r in rows if r["source"] == "api"}
    api_exts = {r["ext"] for r in rows if r["source"] == "api" and r["ext"]}
    # a phone's name stays with its extension when the config gives it another login
    # while Asterisk could not be read
    names = {r["ext"]: r["name"] for r in rows if r["source"] != "api" and r["ext"] and r["name"]}
    wanted: dict[str, User] = {}
    taken: set[str] = set()
    for u in learnt:
        if u.login in api_logins or u.login in wanted or u.ext in api_exts or u.ext in taken:
            continue  # an API client's row wins; the first of two claims wins
        if not u.name and u.ext in names:
            u = replace(u, name=names[u.ext])
        wanted[u.login] = u
        if u.ext:
            taken.add(u.ext)
    forget: list[str] = []
    release: list[str] = []
    for r in rows:
        login, ext, source = r["login"], r["ext"], r["source"]
        if source == "api":
            continue
        if login in wanted:
            if ext and ext != wanted[login].ext:
                release.append(login)
        elif source in complete or ext in taken:
            forget.append(login)
    if forget:
        await conn.execute(QUERIES["forget_users"], pbx_id, forget)
    if release:
        await conn.execute(QUERIES["release_extensions"], pbx_id, release)
    await conn.executemany(
        QUERIES["learn_user"],
        [(pbx_id, u.login, u.name, u.ext, u.source) for u in wanted.values()],
    )


async def learn_groups(
    conn: asyncpg.Connection, pbx_id: str, learnt: Sequence[Group], complete: Collection[str]
) -> None:
    await conn.executemany(
        QUERIES["learn_group"],
        [(pbx_id, g.kind, g.name, g.ext, g.strategy, list(g.members), g.source) for g in learnt],
    )
    keys = [f"{g.kind}:{g.ext}" for g in learnt]
    await conn.execute(QUERIES["forget_groups"], pbx_id, list(complete), keys)


async def learn_numbers(
    conn: asyncpg.Connection, pbx_id: str, learnt: Sequence[Number], complete: Collection[str]
) -> None:
    await conn.executemany(
        QUERIES["learn_number"],
        [(pbx_id, n.telnum, n.name, n.route_type, n.route_to, n.source) for n in learnt],
    )
    await conn.execute(
        QUERIES["forget_numbers"], pbx_id, list(complete), [n.telnum for n in learnt]
    )
