"""Runtime state kept in Asterisk's AstDB, read by the dialplan (crm_bridge_dialplan.conf):
do-not-disturb per employee, the black list and "block anonymous", recording exceptions
per employee and the PBX-wide recording settings.

Every write goes to PostgreSQL first (the mirror: what was asked for, with the black
list's comments), then to AstDB with AMI `DBPut` / `DBDel`. Without an AMI link the write
is stored only ("stored, not applied"); `sync()`, run at every AMI login and by
`crm-bridge apply`, makes AstDB what the mirror says (DBGetTree, Asterisk 16+, shows what is
there; before 16 every key is written again and stale ones stay). Reads ask Asterisk
(`DBGet`, `DBGetTree`): what it obeys; the mirror answers while it is away.

Keys, in family `crm-bridge` (AstDB keys are `/crm-bridge/<key>`):
  dnd/<ext> = 1                     norecord/<ext> = 1
  blacklist/<number> = <entry>      every form a carrier may present a blocked number in
  blacklist-prefix/<digits> = <entry>   a blocked range (entry `7900800*`), in both forms
  settings/block-anonymous = 1      settings/record-external = 1      settings/record-internal = 1
A key is there when the setting is on, absent when off. Writes of one PBX take turns (an
advisory lock held by the mirror's transaction), so a sync never undoes a write.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import asyncpg
import phonenumbers

from ..ami.directory_source import AmiLink
from ..config import Settings
from ..observability.logs import get_logger
from ..store import directory as store
from ..store.queries import QUERIES
from ..tracker.numbers import PhoneNormalizer
from .apply import ProvisionError, lock_key
from .asterisk import Asterisk, AsteriskError

log = get_logger("bridge.provision")

FAMILY = "crm-bridge"
ON = "1"
_NUMBER = re.compile(r"\+?[0-9][0-9 ()./-]*")


class UnknownEmployee(ProvisionError):
    """No employee with that login (or extension), or one without an extension."""


class BadNumber(ProvisionError):
    """Not a number or range the black list can hold."""


@dataclass(frozen=True, slots=True)
class StateResult:
    """`applied`: Asterisk has it now; else stored only (`message` says why)."""

    applied: bool
    message: str


@dataclass(frozen=True, slots=True)
class Blocked:
    telnum: str  # E.164 digits, or a range: its first digits and `*`
    comment: str = ""


@dataclass(frozen=True, slots=True)
class Recording:
    external: bool  # calls with customers
    internal: bool  # calls between employees
    exceptions: tuple[str, ...] = ()  # logins never recorded


APPLIED = StateResult(True, "applied")
STORED = StateResult(
    False,
    "stored, not applied: Asterisk is not reachable over AMI from this bridge; "
    "it is applied at the next AMI login or by `crm-bridge apply`",
)


# ------------------------------------------------------------------ numbers (pure)


def blacklist_entry(raw: str, region: str) -> str:
    """What the black list stores: E.164 digits (`+7 (910) 123-45-67` ->
    `79101234567`, national forms as the region writes them), or a range written as its
    first 3 to 15 digits and `*` (`7900800*`). BadNumber otherwise."""
    text = raw.strip()
    is_range = text.endswith("*")
    body = text[:-1].rstrip() if is_range else text
    if not _NUMBER.fullmatch(body):
        raise BadNumber(f"{raw!r} is not a phone number or a range like 7900800*")
    digits = re.sub(r"[^0-9]", "", body)
    if not 3 <= len(digits) <= 15:
        raise BadNumber(f"{raw!r} has {len(digits)} digits (3 to 15)")
    if is_range:
        return digits + "*"
    return PhoneNormalizer(region).normalize(body) or digits


def blacklist_keys(entry: str, region: str) -> list[str]:
    """The AstDB keys of one entry: the forms of the number a carrier may present (E.164
    digits, the national number, the national number with the trunk prefix), for a range
    the E.164 and national prefixes."""
    is_range = entry.endswith("*")
    digits = entry.rstrip("*")
    forms = [digits]
    code = str(phonenumbers.country_code_for_region(region))
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    trunk = (metadata.national_prefix or "") if metadata is not None else ""
    if digits.startswith(code) and len(digits) - len(code) >= (3 if is_range else 6):
        national = digits[len(code) :]
        if trunk:
            forms.append(trunk + national)
        if not is_range:
            forms.append(national)
    family = "blacklist-prefix" if is_range else "blacklist"
    return [f"{family}/{form}" for form in dict.fromkeys(forms)]


def desired(
    exts: Mapping[str, str],
    dnd: Iterable[str],
    norecord: Iterable[str],
    blacklist: Iterable[Blocked],
    block_anonymous: bool,
    record_external: bool,
    record_internal: bool,
    region: str,
) -> dict[str, str]:
    """Every key AstDB should hold (relative to family crm-bridge). `exts`: login -> ext."""
    keys: dict[str, str] = {}
    keys.update({f"dnd/{exts[login]}": ON for login in dnd if exts.get(login)})
    keys.update({f"norecord/{exts[login]}": ON for login in norecord if exts.get(login)})
    for b in blacklist:
        keys.update({key: b.telnum for key in blacklist_keys(b.telnum, region)})
    for name, on in (
        ("block-anonymous", block_anonymous),
        ("record-external", record_external),
        ("record-internal", record_internal),
    ):
        if on:
            keys[f"settings/{name}"] = ON
    return keys


def _split(key: str) -> tuple[str, str]:
    """`dnd/1001` -> (`crm-bridge/dnd`, `1001`): DBPut's Family and Key."""
    group, _, rest = key.partition("/")
    return f"{FAMILY}/{group}", rest


# ------------------------------------------------------------------ the state


class Runtime:
    """See the module docstring. `ami()`: the AMI link while it is logged in, else None."""

    def __init__(
        self, settings: Settings, pool: asyncpg.Pool, ami: Callable[[], AmiLink | None]
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.ami = ami
        self.pbx_id = settings.pbx.id
        self.region = settings.pbx.region
        self.key = lock_key(self.pbx_id, "astdb")

    def _asterisk(self) -> Asterisk | None:
        link = self.ami()
        return Asterisk(link) if link is not None else None

    async def _employee(self, db: asyncpg.Connection | asyncpg.Pool, who: str) -> store.User:
        user = await store.user(db, self.pbx_id, who.strip())
        if user is None:
            raise UnknownEmployee(f"no employee with login or extension {who!r}")
        if not user.ext:
            raise UnknownEmployee(f"employee {user.login!r} has no extension")
        return user

    async def _write(
        self,
        conn: asyncpg.Connection,
        put: Mapping[str, str],
        delete: Iterable[str],
    ) -> StateResult:
        """AstDB writes, within the caller's locked transaction."""
        asterisk = self._asterisk()
        if asterisk is None:
            return STORED
        try:
            for key, value in put.items():
                await asterisk.db_put(*_split(key), value)
            for key in delete:
                await asterisk.db_del(*_split(key))
        except (AsteriskError, ConnectionError) as exc:
            message = exc.message if isinstance(exc, AsteriskError) else "AMI link lost"
            log.warning("astdb_not_written", error=message)
            return StateResult(False, f"stored, not applied: {message}; retried at the next login")
        return APPLIED

    # ------------------------------------------------------------ DND

    async def set_dnd(self, who: str, on: bool) -> StateResult:
        """Do-not-disturb on or off for an employee (login or extension)."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(QUERIES["provision_xact_lock"], self.key)
            user = await self._employee(conn, who)
            await conn.execute(QUERIES["dnd_on" if on else "dnd_off"], self.pbx_id, user.login)
            key = f"dnd/{user.ext}"
            return await self._write(conn, {key: ON} if on else {}, [] if on else [key])

    async def get_dnd(self, who: str) -> bool:
        user = await self._employee(self.pool, who)
        asterisk = self._asterisk()
        if asterisk is not None:
            try:
                return await asterisk.db_get(f"{FAMILY}/dnd", user.ext) is not None
            except (AsteriskError, ConnectionError):
                pass
        logins = {r["login"] for r in await self.pool.fetch(QUERIES["dnd_logins"], self.pbx_id)}
        return user.login in logins

    # ------------------------------------------------------------ black list

    async def block(self, number: str, comment: str = "") -> StateResult:
        """Refuse calls from a number (`79101234567`, `+7 910 123-45-67`) or a range
        (`7900800*`). BadNumber when it is neither."""
        entry = blacklist_entry(number, self.region)
        if not comment.isprintable():
            raise BadNumber("the comment must be one line of text")
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(QUERIES["provision_xact_lock"], self.key)
            await conn.execute(QUERIES["blacklist_add"], self.pbx_id, entry, comment)
            keys = blacklist_keys(entry, self.region)
            return await self._write(conn, dict.fromkeys(keys, entry), [])

    async def unblock(self, number: str) -> StateResult | None:
        """None when the number (or range) was not on the list."""
        entry = blacklist_entry(number, self.region)
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(QUERIES["provision_xact_lock"], self.key)
            if await conn.fetchval(QUERIES["blacklist_remove"], self.pbx_id, entry) is None:
                return None
            return await self._write(conn, {}, blacklist_keys(entry, self.region))

    async def blocked(self) -> list[Blocked]:
        """The black list as Asterisk holds it (DBGetTree), with the comments kept here;
        the stored list while Asterisk cannot be asked."""
        rows = await self.pool.fetch(QUERIES["blacklist"], self.pbx_id)
        comments = {r["telnum"]: r["comment"] for r in rows}
        asterisk = self._asterisk()
        tree = None
        if asterisk is not None:
            try:
                tree = await asterisk.db_tree(FAMILY)
            except (AsteriskError, ConnectionError):
                tree = None
        if tree is None:
            return [Blocked(t, c) for t, c in comments.items()]
        entries = {
            value
            for key, value in tree.items()
            if key.startswith(("blacklist/", "blacklist-prefix/")) and value
        }
        return [Blocked(t, comments.get(t, "")) for t in sorted(entries)]

    async def set_block_anonymous(self, on: bool) -> StateResult:
        return await self._setting("block_anonymous", "block-anonymous", on)

    async def get_block_anonymous(self) -> bool:
        return await self._read_setting("block_anonymous", "block-anonymous")

    # ------------------------------------------------------------ recording

    async def set_recording(
        self, external: bool | None = None, internal: bool | None = None
    ) -> StateResult:
        """The PBX-wide recording of calls with customers / between employees (None: as
        it is); a phone's own rule (always/never) wins over it."""
        result = APPLIED
        for column, name, on in (
            ("record_external", "record-external", external),
            ("record_internal", "record-internal", internal),
        ):
            if on is not None:
                done = await self._setting(column, name, on)
                if not done.applied:
                    result = done
        return result

    async def get_recording(self) -> Recording:
        rows = await self.pool.fetch(QUERIES["norecord_logins"], self.pbx_id)
        return Recording(
            await self._read_setting("record_external", "record-external"),
            await self._read_setting("record_internal", "record-internal"),
            tuple(r["login"] for r in rows),
        )

    async def set_recording_exception(self, who: str, on: bool) -> StateResult:
        """on: the employee's conversations are never recorded (VPBX users_exception)."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(QUERIES["provision_xact_lock"], self.key)
            user = await self._employee(conn, who)
            query = "norecord_on" if on else "norecord_off"
            await conn.execute(QUERIES[query], self.pbx_id, user.login)
            key = f"norecord/{user.ext}"
            return await self._write(conn, {key: ON} if on else {}, [] if on else [key])

    # ------------------------------------------------------------ settings

    async def _settings(self, db: asyncpg.Connection | asyncpg.Pool) -> dict[str, bool]:
        row = await db.fetchrow(QUERIES["provision_settings"], self.pbx_id)
        names = ("block_anonymous", "record_external", "record_internal")
        return {n: bool(row[n]) if row is not None else False for n in names}

    async def _setting(self, column: str, name: str, on: bool) -> StateResult:
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(QUERIES["provision_xact_lock"], self.key)
            values = await self._settings(conn)
            values[column] = on
            await conn.execute(
                QUERIES["save_provision_settings"],
                self.pbx_id,
                values["block_anonymous"],
                values["record_external"],
                values["record_internal"],
            )
            key = f"settings/{name}"
            return await self._write(conn, {key: ON} if on else {}, [] if on else [key])

    async def _read_setting(self, column: str, name: str) -> bool:
        asterisk = self._asterisk()
        if asterisk is not None:
            try:
                return await asterisk.db_get(f"{FAMILY}/settings", name) is not None
            except (AsteriskError, ConnectionError):
                pass
        return (await self._settings(self.pool))[column]

    # ------------------------------------------------------------ sync

    async def sync(self) -> StateResult:
        """Make AstDB what the mirror says (every AMI login, `crm-bridge apply`)."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(QUERIES["provision_xact_lock"], self.key)
            users = await store.users(conn, self.pbx_id)
            settings = await self._settings(conn)
            wanted = desired(
                {u.login: u.ext for u in users},
                [r["login"] for r in await conn.fetch(QUERIES["dnd_logins"], self.pbx_id)],
                [r["login"] for r in await conn.fetch(QUERIES["norecord_logins"], self.pbx_id)],
                [
                    Blocked(r["telnum"], r["comment"])
                    for r in await conn.fetch(QUERIES["blacklist"], self.pbx_id)
                ],
                settings["block_anonymous"],
                settings["record_external"],
                settings["record_internal"],
                self.region,
            )
            asterisk = self._asterisk()
            if asterisk is None:
                return STORED
            try:
                there = await asterisk.db_tree(FAMILY)
            except (AsteriskError, ConnectionError) as exc:
                return StateResult(False, f"AstDB not read: {exc}")
            if there is None:  # no DBGetTree: write everything, nothing known to delete
                put, delete = wanted, []
            else:
                put = {k: v for k, v in wanted.items() if there.get(k) != v}
                delete = [k for k in there if k not in wanted]
            result = await self._write(conn, put, delete)
            log.info("astdb_synced", put=len(put), deleted=len(delete), applied=result.applied)
            return result
