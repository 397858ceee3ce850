"""Active/standby for two bridges on one PBX: a Postgres advisory lock per PBX id.

Only the holder follows AMI and tracks calls (two trackers would report every call twice);
both serve FastAGI look-ups and deliver webhooks (the outbox is safe to share). The lock
lives on a dedicated connection (a pooled one would release it when returned); if that
connection dies the lock is gone and the holder must stop at once: the other bridge may
already have taken over.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging

import asyncpg

from .errors import DB_ERRORS

log = logging.getLogger("bridge.leader")


def lock_key(pbx_id: str) -> int:
    """A stable signed 64-bit key for the PBX id."""
    digest = hashlib.sha256(f"asterisk-crm-bridge:{pbx_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class PbxLock:
    def __init__(self, dsn: str, pbx_id: str, retry_every: float = 2.0) -> None:
        self.dsn = dsn
        self.pbx_id = pbx_id
        self.key = lock_key(pbx_id)
        self.retry_every = retry_every
        self.held = False
        self.lost = asyncio.Event()
        self._conn: asyncpg.Connection | None = None

    async def acquire(self) -> None:
        """Wait (as standby) until this bridge holds the lock."""
        announced = False
        while True:
            try:
                if self._conn is None or self._conn.is_closed():
                    self._conn = await asyncpg.connect(self.dsn)
                if await self._conn.fetchval("SELECT pg_try_advisory_lock($1)", self.key):
                    break
            except DB_ERRORS as exc:
                log.warning("leader_lock_unavailable", extra={"error": repr(exc)})
                self._conn = None
            if not announced:
                log.info("standby", extra={"pbx": self.pbx_id})
                announced = True
            await asyncio.sleep(self.retry_every)
        self.held = True
        self._conn.add_termination_listener(self._on_lost)
        log.info("leader", extra={"pbx": self.pbx_id})

    def _on_lost(self, _conn: object) -> None:
        if self.held:
            self.held = False
            log.error("leader_lock_lost", extra={"pbx": self.pbx_id})
            self.lost.set()

    async def watch(self, every: float = 5.0) -> None:
        """Notice a dead lock connection even when no termination is signalled."""
        while self.held:
            await asyncio.sleep(every)
            try:
                assert self._conn is not None
                await asyncio.wait_for(self._conn.fetchval("SELECT 1"), every)
            except (*DB_ERRORS, TimeoutError):
                self._on_lost(None)

    async def release(self) -> None:
        self.held = False
        if self._conn is not None and not self._conn.is_closed():
            with contextlib.suppress(Exception):
                await self._conn.close(timeout=2)
