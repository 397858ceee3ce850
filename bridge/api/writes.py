"""What every dialect's write endpoints share: a directory write made visible at once and
applied to Asterisk, or undone when Asterisk refuses it.

A write handler stores the change (bridge.store.directory), then calls `commit()`:
- the directory view of this process is reloaded (tracker `user`/`groupRealName`, AGI
  `responsible`, webhook `telnum`), then the change is rendered and applied over AMI
  (`apply=False`: stored only, applied by the next apply, as Issabel's `reload=false`);
- Asterisk refused it or did not show it (ApplyError: its files were rolled back), or it
  cannot be rendered (NotRendered): the handler's `undo` puts the directory back as it
  was, the view is reloaded again and WriteFailed says why, in plain words, for the
  dialect's error shape (status 502: the PBX did not take the change; 400: the change
  itself cannot be rendered);
- Asterisk not reachable (AMI down, or this bridge is a standby): the write stays stored
  and the answer says "stored, not applied" (`Outcome.applied` is False); it is applied at
  the next AMI login or by `crm-bridge apply`.

Runtime state (DND, the black list) goes to AstDB directly (bridge.provision.runtime) and
maps onto the same Outcome.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace

import asyncpg
from aiohttp import web

from ..observability.logs import get_logger
from ..provision import (
    ApplyError,
    ApplyResult,
    NotRendered,
    Provisioning,
    StateResult,
    provisioning_of,
)
from ..store import directory as store
from ..store.directory import User
from ..store.queries import QUERIES

log = get_logger("bridge.api")

NOT_WIRED = "provisioning is not available on this bridge"


class WriteFailed(Exception):
    """The write was not kept: `status` for the dialect's error answer, `message` why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class Outcome:
    """`status`: applied / unchanged (Asterisk runs it), stored (written, Asterisk not
    reached: applied later), disabled (provisioning is off: the directory only)."""

    status: str
    message: str

    @property
    def applied(self) -> bool:
        return self.status != "stored"

    @classmethod
    def of(cls, result: ApplyResult | StateResult) -> Outcome:
        if isinstance(result, StateResult):
            return cls("applied" if result.applied else "stored", result.message)
        return cls(result.status, result.message)


def provisioning(request: web.Request) -> Provisioning:
    """The bridge's provisioning; WriteFailed 503 where it is not wired."""
    prov = provisioning_of(request)
    if prov is None:
        raise WriteFailed(503, NOT_WIRED)
    return prov


Undo = Callable[[], Awaitable[None]]


async def commit(prov: Provisioning, reason: str, undo: Undo, *, apply: bool = True) -> Outcome:
    """After a directory write: see the module docstring."""
    try:
        return Outcome.of(await prov.after_write(reason, apply=apply))
    except NotRendered as exc:
        await _undo(prov, reason, undo)
        raise WriteFailed(400, "cannot be rendered: " + "; ".join(exc.problems)) from None
    except ApplyError as exc:
        await _undo(prov, reason, undo)
        raise WriteFailed(
            502, f"Asterisk did not take the change, so it is undone: {exc.message}"
        ) from None


async def _undo(prov: Provisioning, reason: str, undo: Undo) -> None:
    await undo()
    await prov.reload_view()
    log.warning("api_write_undone", reason=reason)


async def delete_employees(
    prov: Provisioning,
    pool: asyncpg.Pool,
    pbx_id: str,
    users: Sequence[User],
    reason: str,
    *,
    apply: bool = True,
) -> Outcome:
    """Employees gone from the directory, from the ring groups API clients made, and (once
    Asterisk took it) their DND and recording-exception keys from AstDB; all back as they
    were when Asterisk refuses the change."""
    logins = {u.login for u in users}
    keys = logins | {u.ext for u in users if u.ext}
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(QUERIES["lock_directory"], pbx_id)
        groups = [
            g
            for g in await store.groups(conn, pbx_id)
            if g.source == "api" and keys & set(g.members)
        ]
        dnd = logins & {r["login"] for r in await conn.fetch(QUERIES["dnd_logins"], pbx_id)}
        norecord = logins & {
            r["login"] for r in await conn.fetch(QUERIES["norecord_logins"], pbx_id)
        }
        for g in groups:
            members = tuple(m for m in g.members if m not in keys)
            await store.upsert_group(conn, pbx_id, replace(g, members=members))
        for u in users:
            await store.delete_user(conn, pbx_id, u.login)

    async def undo() -> None:
        async with pool.acquire() as conn, conn.transaction():
            for u in users:
                await store.upsert_user(conn, pbx_id, u)
            for g in groups:
                await store.upsert_group(conn, pbx_id, g)
            for login in dnd:
                await conn.execute(QUERIES["dnd_on"], pbx_id, login)
            for login in norecord:
                await conn.execute(QUERIES["norecord_on"], pbx_id, login)

    outcome = await commit(prov, reason, undo, apply=apply)
    if dnd or norecord:
        await prov.sync_astdb()  # their keys leave AstDB (or at the next AMI login)
    return outcome
