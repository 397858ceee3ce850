"""Active/standby for two bridges on one PBX: a Postgres advisory lock per PBX id.

Only the holder follows AMI and tracks calls (two trackers would report every call twice);
both serve FastAGI look-ups and deliver webhooks (the outbox is safe to share). The lock
lives on a dedicated connection (a pooled one would release it when returned). When that
connection dies (PostgreSQL went away) the lock is gone: `lost` is set, and the holder
keeps tracking into its buffer and calls `retake()` once the database answers again; if
the other bridge got the lock meanwhile, the holder writes what it buffered and steps down.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib

import asyncpg

from ..backoff import Backoff
from ..observability.logs import get_logger
from .errors import DB_ERRORS_OR_TIMEOUT
from .queries import QUERIES

log = get_logger("bridge.leader")


def lock_key(pbx_id: str) -> int:
    """A stable signed 64-bit key for the PBX id."""
    digest = hashlib.sha256(f"asterisk-crm-bridge:{pbx_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class PbxLock:
    def __init__(
        self, dsn: str, pbx_id: str, retry_every: float = 2.0, timeout: float = 5.0
    ) -> None:
        self.dsn = dsn
        self.pbx_id = pbx_id
        self.key = lock_key(pbx_id)
        self.retry_every = retry_every
        self.timeout = timeout  # every connect and query here is bounded by it
        self.held = False
        self.lost = asyncio.Event()
        self._conn: asyncpg.Connection | None = None
        self._backend = 0  # the server pid of the session that took the lock

    async def _try(self) -> bool:
        """One attempt; raises DB_ERRORS / TimeoutError when the database does not answer."""
        if self._conn is None or self._conn.is_closed():
            self._conn = None
            self._conn = await asyncpg.connect(
                self.dsn,
                timeout=self.timeout,
                server_settings={"application_name": "crm-bridge lock"},
            )
        got = bool(await self._conn.fetchval(QUERIES["try_lock"], self.key, timeout=self.timeout))
        if got:
            self.held = True
            self.lost.clear()
            self._backend = self._conn.get_server_pid()
            self._conn.add_termination_listener(self._on_lost)
            log.info("leader", pbx=self.pbx_id)
        return got

    async def acquire(self) -> None:
        """Wait (as standby) until this bridge holds the lock."""
        announced = False
        while True:
            try:
                if await self._try():
                    return
            except DB_ERRORS_OR_TIMEOUT as exc:
                log.warning("leader_lock_unavailable", error=repr(exc))
                await self._drop_connection()
            if not announced:
                log.info("standby", pbx=self.pbx_id)
                announced = True
            await asyncio.sleep(self.retry_every)

    async def retake(self) -> bool:
        """After `lost`: wait until the database answers, then try. True: held again;
        False: another bridge holds it now. A lock still held by this bridge's own earlier
        session (PostgreSQL has not noticed the cut yet) is not another bridge's: that
        session is ended and the lock taken again."""
        await self._drop_connection()
        backoff = Backoff(first=0.2, cap=self.retry_every)
        while True:
            try:
                if await self._try():
                    return True
                if not await self._end_own_stale_session():
                    return False
                log.warning("leader_lock_stale_session_ended", pbx=self.pbx_id)
                return await self._try()
            except DB_ERRORS_OR_TIMEOUT:
                await self._drop_connection()
                await backoff.sleep()

    async def _end_own_stale_session(self) -> bool:
        backend, self._backend = self._backend, 0  # one try (ending it may be refused)
        if not backend or self._conn is None:
            return False
        ended = await self._conn.fetchval(  # waits up to 2 s for it to end
            QUERIES["own_stale_lock"], self.key, backend, timeout=self.timeout + 2
        )
        return bool(ended)

    def _on_lost(self, _conn: object) -> None:
        if self.held:
            self.held = False
            log.error("leader_lock_lost", pbx=self.pbx_id)
            self.lost.set()

    async def watch(self, every: float = 5.0) -> None:
        """Notice a dead lock connection even when no termination is signalled."""
        while self.held:
            await asyncio.sleep(every)
            conn = self._conn
            try:
                if conn is None:
                    raise ConnectionError("no lock connection")
                await conn.fetchval(QUERIES["ping"], timeout=min(every, self.timeout))
            except DB_ERRORS_OR_TIMEOUT:
                self._on_lost(None)

    async def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            conn.terminate()

    async def release(self) -> None:
        self.held = False
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            with contextlib.suppress(Exception):
                await conn.close(timeout=2)
