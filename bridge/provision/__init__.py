"""Provisioning that Asterisk obeys (README, "Provisioning").

What API clients write into the directory (employees' phones, ring groups, company
numbers: bridge.store.directory with `provisioned=True`) is rendered into Asterisk's config
(render), applied over AMI and confirmed, or rolled back (apply); runtime state (DND, the
black list, recording) lives in Asterisk's AstDB (runtime). `Provisioning` is the one
object the API dialects use; the daemon puts it on the root app:

    from bridge.provision import provisioning_of
    prov = provisioning_of(request)          # None where provisioning is not wired
    await store.upsert_user(pool, pbx_id, user)
    result = await prov.after_write("extension 1005 created")   # view reloaded, applied
    await prov.set_dnd("ivanov", True)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from aiohttp import web

from ..ami.directory_source import AmiLink
from ..config import Settings
from ..observability.logs import get_logger
from ..store.errors import DB_ERRORS_OR_TIMEOUT
from ..store.queries import QUERIES
from .apply import DEFERRED, ApplyError, ApplyResult, NotRendered, Provisioner, ProvisionError
from .rules import group_problems, noanswer_problem, number_problems, user_problems
from .runtime import BadNumber, Blocked, Recording, Runtime, StateResult, UnknownEmployee

__all__ = [
    "PROVISIONING",
    "ApplyError",
    "ApplyResult",
    "BadNumber",
    "Blocked",
    "NotRendered",
    "ProvisionError",
    "Provisioning",
    "Recording",
    "StateResult",
    "UnknownEmployee",
    "group_problems",
    "noanswer_problem",
    "number_problems",
    "provisioning_of",
    "user_problems",
]

log = get_logger("bridge.provision")


class Provisioning:
    """Config (apply) and runtime state (AstDB) of one PBX.

    `ami()`: this bridge's AMI link while it leads and is logged in, else None (writes
    are then stored only). `reload_view()`: re-reads the directory into this process's
    DirectoryView (the tracker's `user` / `groupRealName`, AGI routing, `telnum_name`)."""

    def __init__(
        self,
        settings: Settings,
        pool: asyncpg.Pool,
        ami: Callable[[], AmiLink | None],
        reload_view: Callable[[], Awaitable[Any]] | None = None,
    ) -> None:
        self.settings = settings
        self.provisioner = Provisioner(settings, pool, ami)
        self.runtime = Runtime(settings, pool, ami)
        self.pool = pool
        self._reload_view = reload_view

    async def reload_view(self) -> None:
        """The directory, as just written, seen by this process at once."""
        if self._reload_view is not None:
            await self._reload_view()

    async def after_write(self, reason: str, *, apply: bool = True) -> ApplyResult:
        """Call after every directory write: the view at once, then (apply=False: later,
        by `crm-bridge apply` or the next apply) Asterisk's config. Raises NotRendered,
        ApplyError (rolled back; the write stays stored and pending)."""
        await self.reload_view()
        if not apply:
            await self.pool.execute(
                QUERIES["provision_mark_pending"], self.settings.pbx.id, reason, DEFERRED
            )
            return ApplyResult("stored", "stored, not applied (reload=false)")
        return await self.provisioner.apply(reason)

    async def apply(self, reason: str) -> ApplyResult:
        return await self.provisioner.apply(reason)

    async def on_login(self) -> None:
        """After each AMI login of the leading bridge: AstDB made what was asked, and a
        pending or never-applied change applied. Never raises."""
        await self._catch_up("AMI login", everything=True)

    async def catch_up(self) -> None:
        """The leader, every 30 s: what a standby bridge stored (it has no AMI link) or an
        earlier failure left pending is applied; not what a client asked to keep for later
        (`reload=false`: the next write with reload, `crm-bridge apply` or the next AMI
        login applies it). Never raises."""
        await self._catch_up("pending change", everything=False)

    async def _catch_up(self, reason: str, everything: bool) -> None:
        try:
            if everything or await self.pool.fetchval(QUERIES["astdb_wanted"], self.runtime.pbx_id):
                await self.sync_astdb()
            if self.provisioner.enabled and (
                everything or await self.provisioner.pending(include_deferred=False)
            ):
                result = await self.provisioner.apply(reason)
                if result.warnings:
                    log.warning("provision_warnings", warnings=list(result.warnings))
        except ProvisionError as exc:
            log.error("provision_not_applied", reason=reason, error=exc.message)
        except DB_ERRORS_OR_TIMEOUT as exc:
            log.warning("provision_database_unavailable", error=repr(exc)[:300])

    # --------------------------------------------------------- runtime state (AstDB)

    async def sync_astdb(self) -> bool:
        """AstDB follows the stored DND and recording keys now; False (said in the log)
        when Asterisk or the database could not: the next AMI login tries again. A change
        already committed stands either way (a warning, not an error)."""
        try:
            synced = await self.runtime.sync()
        except DB_ERRORS_OR_TIMEOUT as exc:
            log.warning("astdb_not_synced", error=repr(exc)[:300])
            return False
        if not synced.applied:
            log.warning("astdb_not_synced", error=synced.message)
        return synced.applied

    async def set_dnd(self, login: str, on: bool) -> StateResult:
        return await self.runtime.set_dnd(login, on)

    async def get_dnd(self, login: str) -> bool:
        return await self.runtime.get_dnd(login)

    async def block(self, number: str, comment: str = "") -> StateResult:
        return await self.runtime.block(number, comment)

    async def unblock(self, number: str) -> StateResult | None:
        return await self.runtime.unblock(number)

    async def blocked(self) -> list[Blocked]:
        return await self.runtime.blocked()

    async def set_block_anonymous(self, on: bool) -> StateResult:
        return await self.runtime.set_block_anonymous(on)

    async def get_block_anonymous(self) -> bool:
        return await self.runtime.get_block_anonymous()

    async def set_recording(
        self, external: bool | None = None, internal: bool | None = None
    ) -> StateResult:
        return await self.runtime.set_recording(external, internal)

    async def get_recording(self) -> Recording:
        return await self.runtime.get_recording()

    async def set_recording_exception(self, login: str, on: bool) -> StateResult:
        return await self.runtime.set_recording_exception(login, on)


PROVISIONING = web.AppKey("provisioning", Provisioning)


def provisioning_of(request: web.Request) -> Provisioning | None:
    """The provisioning of the bridge serving this request (any dialect's sub-app)."""
    return request.config_dict.get(PROVISIONING)
