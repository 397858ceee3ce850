"""The directory, seeded and refreshed from Asterisk and the config (SPEC section 6).

- The leading bridge writes it: the config (`[pbx] users`, `groups`, `numbers`) when its
  term starts, then after every AMI login and every `[pbx] directory_refresh` seconds also
  what Asterisk shows (`bridge.ami.directory_source`). Learnt rows have source `pbx` or
  `config`; a row an API client wrote (source `api`) wins and is never touched.
- Every bridge reads it back (`DirectoryView`) and hands it to whoever names employees:
  the tracker's extension -> login (the webhooks' `user`) and group names, the AGI
  directory (responsible-manager routing), the outbox's company-number names
  (`telnum_name`) and click-to-call's employee look-up. The tracker stays pure: it is
  given mappings, updated in place between two events.

Planning what to write is plain code (`plan_*`), tested without a database.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

import asyncpg

from .agi.directory import Directory
from .ami.directory_source import AmiLink, Endpoint, PbxDirectory, PbxReader, Queue
from .config import CompanyNumber, PbxSettings
from .observability.logs import get_logger
from .store import directory as store
from .store.directory import Group, Number, Snapshot, User
from .store.errors import DB_ERRORS_OR_TIMEOUT
from .tracker.channels import ChannelClassifier
from .tracker.tracker import CallTracker

log = get_logger("bridge.directory")

ROUTE_TYPES = {"user": "user", "queue": "group", "group": "group", "ivr": "ivr"}


# ------------------------------------------------------------------ planning (pure)


def plan_users(endpoints: Sequence[Endpoint] | None, config_users: Mapping[str, str]) -> list[User]:
    """Config users first (their logins win), then Asterisk's other phones under their
    extension; names come from the phones' caller IDs."""
    names = {e.ext: e.name for e in endpoints or ()}
    users: list[User] = []
    logins: set[str] = set()
    exts: set[str] = set()
    for ext, login in config_users.items():
        if login in logins:
            log.warning("directory_login_twice_in_config", login=login, ext=ext)
            continue
        users.append(User(login, names.get(ext, ""), ext, source="config"))
        logins.add(login)
        exts.add(ext)
    for e in endpoints or ():
        if e.ext not in exts and e.ext not in logins:
            users.append(User(e.ext, e.name, e.ext, source="pbx"))
            exts.add(e.ext)
    return users


def _is_number(key: str) -> bool:
    """A `[pbx] groups` key that is a company number (DID), not a ring group."""
    return key.isdigit() and len(key) >= 7


def plan_groups(
    queues: Sequence[Queue] | None,
    known_queues: Collection[str],
    config_groups: Mapping[str, str],
    login_of: Mapping[str, str],
) -> list[Group]:
    """Asterisk's queues (named by `[pbx] groups` when it names them), then the config's
    other groups as ring groups. `known_queues`: the queues already in the directory, for
    when Asterisk's could not be read (their names in the config are not ring groups)."""
    queue_names = {q.name for q in queues} if queues is not None else set(known_queues)
    groups = [
        Group(
            0,
            "queue",
            config_groups.get(q.name, q.name),
            q.name,
            q.strategy or "ringall",
            members=tuple(login_of.get(ext, ext) for ext in q.members),
            source="pbx",
        )
        for q in queues or ()
    ]
    groups += [
        Group(0, "ringgroup", name, key, source="config")
        for key, name in config_groups.items()
        if key not in queue_names and not _is_number(key)
    ]
    return groups


def plan_numbers(
    numbers: Mapping[str, CompanyNumber],
    main_number: str | None,
    users: Sequence[User],
    groups: Sequence[Group],
) -> list[Number]:
    """The config's company numbers (and `main_number`), routes resolved: a user route to
    a login, a queue or ring-group route to the group's id."""
    planned = [
        Number(telnum, entry.name, *_route(telnum, entry.route, users, groups), source="config")
        for telnum, entry in numbers.items()
    ]
    if main_number and main_number not in numbers:
        planned.append(Number(main_number, "", source="config"))
    return planned


def _route(
    telnum: str, route: str, users: Sequence[User], groups: Sequence[Group]
) -> tuple[str, str]:
    if not route:
        return "", ""
    kind, _, target = route.partition(":")
    found = ""
    if kind == "user":
        found = next((u.login for u in users if target in (u.login, u.ext)), "")
    elif kind == "ivr":
        found = target
    else:
        kinds = ("queue",) if kind == "queue" else ("ringgroup", "queue")
        found = next(
            (str(g.id) for k in kinds for g in groups if g.kind == k and g.ext == target), ""
        )
    if not found:
        log.warning("company_number_route_unknown", telnum=telnum, route=route)
        return "", ""
    return ROUTE_TYPES[kind], found


# ------------------------------------------------------------------ in memory


@dataclass(frozen=True, slots=True)
class Employee:
    login: str
    ext: str
    tech: str  # PJSIP / SIP


class DirectoryView:
    """The directory in memory, as this bridge last read it (the config until then).

    Its mappings are updated in place, so whoever was handed one (the outbox's
    `number_names` and `direct_numbers`, the tracker's `users` and `groups`) sees every
    refresh."""

    def __init__(self, pbx: PbxSettings, agi: Directory | None = None) -> None:
        self.config_groups = dict(pbx.groups)
        self.agi = agi
        self.tracker: CallTracker | None = None
        self.logins: dict[str, str] = {}  # ext -> login (the webhooks' `user`)
        self.groups: dict[str, str] = {}  # queue name / ring-group ext / DID -> name
        self.number_names: dict[str, str] = {}  # company number -> its name (`telnum_name`)
        self.direct_numbers: dict[str, str] = {}  # ext -> employee's direct number (`telnum`)
        self.techs: dict[str, str] = {}  # ext -> PJSIP / SIP, as Asterisk listed it
        self._users: dict[str, User] = {}  # by login
        self.default_tech = _first_tech(pbx.extensions)
        self.loaded = False  # read from PostgreSQL at least once
        self._set(
            [User(login, ext=ext, source="config") for ext, login in pbx.users.items()],
            [],
            [Number(n, e.name) for n, e in pbx.numbers.items()],
        )

    def attach(self, tracker: CallTracker) -> None:
        """A new term's tracker: it names employees and groups as the directory does."""
        self.tracker = tracker
        self._to_tracker()

    def apply(self, snapshot: Snapshot) -> None:
        self._set(snapshot.users, snapshot.groups, snapshot.numbers)
        self.loaded = True

    def learn_techs(self, endpoints: Iterable[Endpoint]) -> None:
        found = {e.ext: e.tech for e in endpoints}
        self.techs.clear()
        self.techs.update(found)
        if self.agi is not None:
            self.agi.add_extensions(found)

    def employee(self, key: str) -> Employee | None:
        """By login (exact, then in any case) or extension; None: nobody we know."""
        key = key.strip()
        user = self._users.get(key)
        if user is None:
            folded = key.casefold()
            user = next(
                (u for u in self._users.values() if u.login.casefold() == folded or u.ext == key),
                None,
            )
        if user is None or not user.ext:
            return None
        return Employee(user.login, user.ext, self.techs.get(user.ext, self.default_tech))

    def _set(
        self, users: Sequence[User], groups: Sequence[Group], numbers: Sequence[Number]
    ) -> None:
        self._users = {u.login: u for u in users}
        _replace(self.logins, {u.ext: u.login for u in users if u.ext})
        _replace(self.groups, {**self.config_groups, **{g.ext: g.name for g in groups if g.ext}})
        _replace(self.number_names, {n.telnum: n.name for n in numbers if n.name})
        _replace(self.direct_numbers, {u.ext: u.telnum for u in users if u.ext and u.telnum})
        if self.agi is not None:
            direct = {u.telnum: u.ext for u in users if u.telnum and u.ext}
            self.agi.replace(self.logins, direct)
        self._to_tracker()

    def _to_tracker(self) -> None:
        if self.tracker is not None:
            _replace(self.tracker.users, self.logins)
            _replace(self.tracker.groups, self.groups)


def _replace(target: dict[str, str], values: Mapping[str, str]) -> None:
    if target != values:
        target.clear()
        target.update(values)


def _first_tech(patterns: Sequence[str]) -> str:
    """What a phone with no endpoint seen yet is dialled as: the first `[pbx] extensions`
    pattern's technology (PJSIP when it is a wildcard)."""
    for pattern in patterns:
        tech = pattern.partition("/")[0]
        if tech.isalnum():
            return tech
    return "PJSIP"


# ------------------------------------------------------------------ the sync


class DirectorySync:
    """Writes what Asterisk and the config say, then reloads the view (see the module
    docstring). One refresh at a time; database trouble is logged, never raised."""

    def __init__(self, pbx: PbxSettings, pool: asyncpg.Pool, view: DirectoryView) -> None:
        self.pbx = pbx
        self.pool = pool
        self.view = view
        self.classify = ChannelClassifier(list(pbx.trunks), list(pbx.extensions)).classify
        self.read_at: float | None = None  # monotonic time Asterisk was last read in full
        self._lock = asyncio.Lock()

    def due(self) -> bool:
        """Whether Asterisk is due to be read again."""
        return self.read_at is None or time.monotonic() - self.read_at >= self.pbx.directory_refresh

    async def refresh(self, ami: AmiLink | None) -> bool:
        """Read Asterisk (when `ami` is given), write it with the config, reload the view.
        False when the database could not be written."""
        async with self._lock:
            pbx = PbxDirectory(None, None)
            if ami is not None:
                try:
                    pbx = await PbxReader(ami, self.classify).read(known=self.pbx.users)
                except (ConnectionError, TimeoutError) as exc:
                    log.warning("directory_pbx_unread", error=repr(exc))
            try:
                async with store.learning(self.pool, self.pbx.id) as conn:
                    await self._write(conn, pbx)
                snapshot = await store.snapshot(self.pool, self.pbx.id)
            except DB_ERRORS_OR_TIMEOUT as exc:
                log.warning("directory_not_written", error=repr(exc)[:300])
                return False
            if pbx.endpoints is not None:
                self.view.learn_techs(pbx.endpoints)
                if pbx.queues is not None:
                    self.read_at = time.monotonic()
            self.view.apply(snapshot)
            log.info(
                "directory_refreshed",
                users=len(snapshot.users),
                groups=len(snapshot.groups),
                numbers=len(snapshot.numbers),
                endpoints=-1 if pbx.endpoints is None else len(pbx.endpoints),
                queues=-1 if pbx.queues is None else len(pbx.queues),
            )
            return True

    async def reload(self) -> bool:
        """The view from PostgreSQL (what the leader and API clients wrote)."""
        try:
            snapshot = await store.snapshot(self.pool, self.pbx.id)
        except DB_ERRORS_OR_TIMEOUT as exc:
            log.warning("directory_not_read", error=repr(exc)[:300])
            return False
        self.view.apply(snapshot)
        return True

    async def _write(self, conn: asyncpg.Connection, pbx: PbxDirectory) -> None:
        pbx_id, cfg = self.pbx.id, self.pbx
        read_users = ("config", "pbx") if pbx.endpoints is not None else ("config",)
        read_groups = ("config", "pbx") if pbx.queues is not None else ("config",)
        await store.learn_users(conn, pbx_id, plan_users(pbx.endpoints, cfg.users), read_users)
        users = await store.users(conn, pbx_id)
        login_of = {u.ext: u.login for u in users if u.ext}
        known_queues = [g.ext for g in await store.groups(conn, pbx_id) if g.kind == "queue"]
        planned = plan_groups(pbx.queues, known_queues, cfg.groups, login_of)
        await store.learn_groups(conn, pbx_id, planned, read_groups)
        groups = await store.groups(conn, pbx_id)
        numbers = plan_numbers(cfg.numbers, cfg.main_number, users, groups)
        await store.learn_numbers(conn, pbx_id, numbers, ("config",))
