"""Applying the rendered files: one apply at a time per PBX, confirmed, or rolled back.

`Provisioner.apply(reason)`:
1. takes the PBX's provisioning lock: a PostgreSQL advisory lock (so a `crm-bridge apply`
   and the daemon, or two bridges, take turns), held on one connection for the whole apply;
2. renders from the directory as it is *now*, inside the lock, so whoever applies last
   renders what was written last: two writers never leave files that disagree with it;
3. nothing to do when the files on disk are the rendered ones and Asterisk was seen to load
   them (their digest is the one stored as applied);
4. without an AMI link (Asterisk away, or this bridge is a standby) nothing is written: the
   change is marked pending ("stored, not applied") and applied at the next AMI login or by
   `crm-bridge apply`;
5. writes the changed files atomically (ConfigDir: the previous version kept), reloads what
   they belong to (`Reload` of res_pjsip.so or chan_sip.so, and pbx_config.so) and waits
   up to `[provision] confirm_timeout` for Asterisk to show the change: every phone of the
   phone file with its caller ID and context (PJSIPShowEndpoint / SIPshowpeer), phones no
   longer rendered gone, the dialplan's stamp (ShowDialPlan of crm-bridge-stamp: the digest
   of the very file written) and the helper contexts of crm_bridge_dialplan.conf;
6. on any refusal, a lost link or a change not seen in time, puts the previous files back,
   reloads them, marks the change pending and raises ApplyError with what went wrong.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import asyncpg

from ..ami.directory_source import AmiLink
from ..config import Settings
from ..observability.logs import get_logger
from ..store import directory as store
from ..store.errors import DB_ERRORS_OR_TIMEOUT
from ..store.queries import QUERIES
from .asterisk import Asterisk, AsteriskError, callerid_parts
from .files import ConfigDir
from .render import (
    DIALPLAN_FILE,
    HELPER_CONTEXTS,
    PJSIP_FILE,
    SIP_FILE,
    STAMP_CONTEXT,
    Rendered,
    Target,
    render,
)
from .rules import RenderError

log = get_logger("bridge.provision")

MODULES = {PJSIP_FILE: "res_pjsip.so", SIP_FILE: "chan_sip.so", DIALPLAN_FILE: "pbx_config.so"}
CONFIRM_AT_ONCE = 8  # endpoint look-ups in flight together
POLL_EVERY = 0.25  # seconds between two looks while Asterisk has not shown the change
DEFERRED = "kept for later (reload=false)"  # why a change waits, when a client asked so


class ProvisionError(Exception):
    """Base of what provisioning raises; `message` is for the API client, in plain words."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ApplyError(ProvisionError):
    """The change was not applied. `rolled_back`: the previous files were put back (and
    reloaded). The directory keeps what was written; it stays pending."""

    def __init__(self, message: str, rolled_back: bool = False) -> None:
        super().__init__(message)
        self.rolled_back = rolled_back


class NotRendered(ProvisionError):
    """The directory holds something that cannot be rendered (RenderError's problems)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("cannot be rendered: " + "; ".join(problems))
        self.problems = problems


Status = Literal["applied", "unchanged", "stored", "disabled"]


@dataclass(frozen=True, slots=True)
class ApplyResult:
    """`applied`: Asterisk showed the change; `unchanged`: it already had it; `stored`:
    written to the directory only, Asterisk not reachable (applied later); `disabled`:
    `[provision] config_dir` is empty."""

    status: Status
    message: str
    files: tuple[str, ...] = ()  # files written this time
    warnings: tuple[str, ...] = ()  # what names nobody and was left out

    @property
    def applied(self) -> bool:
        return self.status in ("applied", "unchanged")


def lock_key(pbx_id: str, what: str = "provision") -> int:
    """A stable signed 64-bit advisory-lock key (as bridge.store.leader.lock_key)."""
    digest = hashlib.sha256(f"asterisk-crm-bridge-{what}:{pbx_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def target_of(settings: Settings) -> Target:
    p = settings.provision
    return Target(
        pbx_id=settings.pbx.id,
        driver=settings.asterisk.channel_driver,
        internal_context=p.internal_context,
        inbound_context=p.inbound_context,
        endpoint_template=p.endpoint_template,
        ring_time=p.ring_time,
    )


_SECTION = re.compile(r"^\[([0-9]+)\]", re.MULTILINE)


def _phones_in(text: str | None) -> set[str]:
    return set(_SECTION.findall(text or ""))


class Provisioner:
    """See the module docstring. `ami()`: the AMI link while it is logged in, else None."""

    def __init__(
        self,
        settings: Settings,
        pool: asyncpg.Pool,
        ami: Callable[[], AmiLink | None],
    ) -> None:
        self.settings = settings
        self.pool = pool
        self.ami = ami
        self.key = lock_key(settings.pbx.id)
        self._local = asyncio.Lock()  # one waiter per process on the database lock

    @property
    def enabled(self) -> bool:
        return bool(self.settings.provision.config_dir)

    async def apply(self, reason: str) -> ApplyResult:
        """Render and apply now (see the module docstring). Raises NotRendered, ApplyError
        (not applied, rolled back when files were written), or a database error."""
        if not self.enabled:
            return ApplyResult("disabled", "provisioning is off ([provision] config_dir is empty)")
        p = self.settings.provision
        async with self._local, self.pool.acquire() as conn:
            try:
                await conn.execute(QUERIES["provision_lock"], self.key, timeout=p.lock_timeout)
            except TimeoutError:
                raise ApplyError(
                    f"another apply held the PBX's provisioning lock for over {p.lock_timeout:g} s"
                ) from None
            try:
                return await self._apply(conn, reason)
            finally:
                with contextlib.suppress(*DB_ERRORS_OR_TIMEOUT):
                    await conn.execute(QUERIES["provision_unlock"], self.key, timeout=5)

    async def pending(self, include_deferred: bool = True) -> bool:
        """Whether a change waits for Asterisk (not applied, or failed and rolled back;
        `include_deferred`: or kept for later by the client, `reload=false`)."""
        row = await self.pool.fetchrow(QUERIES["provision_applied"], self.settings.pbx.id)
        if row is None or row["pending_since"] is None:
            return False
        return include_deferred or row["last_error"] != DEFERRED

    async def _apply(self, conn: asyncpg.Connection, reason: str) -> ApplyResult:
        pbx_id = self.settings.pbx.id
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            snapshot = await store.snapshot(conn, pbx_id)  # one consistent view of it
            state = await conn.fetchrow(QUERIES["provision_applied"], pbx_id)
        try:
            rendered = render(snapshot, target_of(self.settings))
        except RenderError as exc:
            await self._pending(conn, reason, str(exc))
            raise NotRendered(exc.problems) from None
        folder = ConfigDir(self.settings.provision.config_dir)
        try:  # an error here is the folder's (not the database's, though both are OSError)
            changes = folder.changes(rendered.files)
            old_phones = _phones_in(folder.read(target_of(self.settings).phone_file))
        except OSError as exc:
            await self._pending(conn, reason, str(exc))
            raise ApplyError(
                f"cannot read {self.settings.provision.config_dir}: {exc.strerror or exc}"
            ) from None
        applied_digest = state["digest"] if state is not None else ""
        if not changes and applied_digest == rendered.digest:
            if state is not None and state["pending_since"] is not None:
                await conn.execute(
                    QUERIES["provision_mark_applied"], pbx_id, rendered.digest, reason
                )
            return ApplyResult("unchanged", "Asterisk already runs this", (), rendered.warnings)
        link = self.ami()
        if link is None:
            message = (
                "stored, not applied: Asterisk is not reachable over AMI from this bridge; "
                "it is applied at the next AMI login or by `crm-bridge apply`"
            )
            await self._pending(conn, reason, "AMI not connected")
            log.warning("provision_stored_not_applied", reason=reason)
            return ApplyResult("stored", message, (), rendered.warnings)
        # written or not (a previous run may have left them), reload what these files feed
        forced = changes or {name: rendered.files[name] for name in self._active_files()}
        try:
            previous = folder.write(changes)
        except OSError as exc:
            await self._pending(conn, reason, str(exc))
            raise ApplyError(
                f"cannot write {self.settings.provision.config_dir}: {exc.strerror or exc}"
            ) from None
        asterisk = Asterisk(link)
        modules = [module for name, module in MODULES.items() if name in forced]  # phones first
        started = time.monotonic()
        try:
            for module in modules:
                await self._reload(asterisk, module)
            await self._confirm(asterisk, rendered, old_phones)
        except (AsteriskError, ConnectionError) as exc:
            error = exc.message if isinstance(exc, AsteriskError) else f"AMI link lost ({exc})"
            folder.restore(previous)
            note = await self._reload_back(asterisk, modules) if previous else ""
            await self._pending(conn, reason, error)
            log.error("provision_rolled_back", reason=reason, error=error, files=sorted(previous))
            raise ApplyError(
                f"not applied: {error}; the previous files are back{note}", rolled_back=True
            ) from None
        await self._applied(conn, rendered.digest, reason)
        log.info(
            "provision_applied",
            reason=reason,
            files=sorted(changes),
            modules=modules,
            seconds=round(time.monotonic() - started, 3),
            phones=len(rendered.phones),
        )
        return ApplyResult(
            "applied", "Asterisk runs the change", tuple(sorted(changes)), rendered.warnings
        )

    def _active_files(self) -> tuple[str, ...]:
        return (target_of(self.settings).phone_file, DIALPLAN_FILE)

    async def _reload(self, asterisk: Asterisk, module: str) -> None:
        try:
            await asterisk.reload(module)
        except AsteriskError as exc:
            inactive = module not in (MODULES[name] for name in self._active_files())
            if inactive and "no such module" in exc.message.lower():
                return  # the other driver's (empty) file: that module is not loaded
            raise

    async def _reload_back(self, asterisk: Asterisk, modules: list[str]) -> str:
        try:
            for module in modules:
                await self._reload(asterisk, module)
        except (AsteriskError, ConnectionError) as exc:
            return (
                f" (but reloading them failed too: {exc}; Asterisk reads them when it next reloads)"
            )
        return " and reloaded"

    async def _applied(self, conn: asyncpg.Connection, digest: str, reason: str) -> None:
        await conn.execute(QUERIES["provision_mark_applied"], self.settings.pbx.id, digest, reason)

    async def _pending(self, conn: asyncpg.Connection, reason: str, error: str) -> None:
        await conn.execute(QUERIES["provision_mark_pending"], self.settings.pbx.id, reason, error)

    # ------------------------------------------------------------ confirmation

    async def _confirm(self, asterisk: Asterisk, rendered: Rendered, old_phones: set[str]) -> None:
        """Until Asterisk shows every part of the change, or `confirm_timeout` passed."""
        deadline = time.monotonic() + self.settings.provision.confirm_timeout
        tech = target_of(self.settings).tech
        unseen = set(rendered.phones) | (old_phones - set(rendered.phones))
        while True:
            problems = await self._differences(asterisk, rendered, tech, unseen)
            if not problems:
                return
            if time.monotonic() >= deadline:
                raise AsteriskError(
                    "Asterisk did not show the change within "
                    f"{self.settings.provision.confirm_timeout:g} s: " + "; ".join(problems[:5])
                )
            await asyncio.sleep(POLL_EVERY)

    async def _differences(
        self, asterisk: Asterisk, rendered: Rendered, tech: str, unseen: set[str]
    ) -> list[str]:
        problems: list[str] = []
        stamp = await asterisk.dialplan(STAMP_CONTEXT)
        shown = [m.get("AppData", "") for m in stamp or () if m.get("Extension") == "s"]
        if shown != [rendered.stamp]:
            problems.append(
                f"its dialplan is not {DIALPLAN_FILE} as written (context {STAMP_CONTEXT} "
                + (
                    f"says {shown[0]!r})"
                    if shown
                    else "is missing: is it #included in extensions.conf?)"
                )
            )
        for context in HELPER_CONTEXTS:
            if await asterisk.dialplan(context) is None:
                problems.append(
                    f"it has no context {context} (#include crm_bridge_dialplan.conf is missing)"
                )
        gate = asyncio.Semaphore(CONFIRM_AT_ONCE)

        async def one(ext: str) -> str | None:
            async with gate:
                seen = await asterisk.phone(tech, ext)
            wanted = rendered.phones.get(ext)
            if wanted is None:
                return None if seen is None else f"{tech}/{ext} is still there"
            if seen is None:
                return f"it has no {tech}/{ext} (is {rendered_file(tech)} #included?)"
            got = callerid_parts(seen.callerid)
            if got != (wanted.name, ext) or seen.context != wanted.context:
                return f"{tech}/{ext} has caller ID {seen.callerid!r} and context {seen.context!r}"
            return None

        found = await asyncio.gather(*(one(ext) for ext in sorted(unseen)))
        confirmed = {ext for ext, problem in zip(sorted(unseen), found, strict=True) if not problem}
        unseen -= confirmed  # seen once is enough: later looks ask only for the rest
        problems += [p for p in found if p]
        return problems


def rendered_file(tech: str) -> str:
    return PJSIP_FILE if tech == "PJSIP" else SIP_FILE
