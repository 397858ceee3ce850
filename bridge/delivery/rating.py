"""Post-call ratings into the outbox: stored on the call, `rating` queued, one transaction.

:class:`OutboxRatingSink` is the `RatingSink` the FastAGI `rating` route gets from the
daemon (wrapped in :class:`bridge.agi.rating_buffer.BufferedRatingSink`, so a rating
given while Postgres is away is written when it is back). :func:`call_in_store` is the
store's half of the route's "does the bridge know this call?".
"""

from __future__ import annotations

import asyncio

import asyncpg

from ..agi.ports import KnownCall
from ..observability.logs import get_logger
from ..store.errors import DB_UNAVAILABLE
from .outbox import Outbox

__all__ = ["OutboxRatingSink", "call_in_store"]

log = get_logger("bridge.delivery.rating")

_CALL_STORED = "SELECT 1 FROM calls WHERE pbx_id = $1 AND callid = $2"


def call_in_store(pool: asyncpg.Pool, pbx_id: str, *, timeout: float = 1.0) -> KnownCall:
    """A KnownCall: True when ``calls`` has the call, None when Postgres does not answer.

    A call is stored from its first event on (the pipeline writes it while it rings), so
    a rating given at its end finds it, unless the pipeline is behind an outage: the
    daemon asks the tracker first.
    """

    async def known(callid: str) -> bool | None:
        try:
            async with asyncio.timeout(timeout):
                return await pool.fetchval(_CALL_STORED, pbx_id, callid) is not None
        except DB_UNAVAILABLE:
            return None

    return known


class OutboxRatingSink:
    """Satisfies :class:`bridge.agi.ports.RatingSink`; database errors propagate."""

    def __init__(self, pool: asyncpg.Pool, outbox: Outbox) -> None:
        self.pool = pool
        self.outbox = outbox
        self.counts: dict[str, int] = {"written": 0, "unknown_call": 0}

    async def submit_rating(
        self, callid: str, rating: int, phone: str = "", ext: str = "", *, verified: bool = True
    ) -> None:
        """Store and queue; an unverified rating only if ``calls`` has its call."""
        async with self.pool.acquire() as conn, conn.transaction():
            if (
                not verified
                and await conn.fetchval(_CALL_STORED, self.outbox.pbx_id, callid) is None
            ):
                self.counts["unknown_call"] += 1
                log.warning("rating_unknown_call", callid=callid, rating=rating)
                return
            await self.outbox.enqueue_rating(conn, callid, rating, phone=phone, ext=ext)
        self.counts["written"] += 1
