"""Post-call ratings into the outbox: stored on the call, `rating` queued, one transaction.

This is the `RatingSink` the FastAGI `rating` route gets from the daemon.
"""

from __future__ import annotations

import asyncpg

from .outbox import Outbox


class OutboxRatingSink:
    def __init__(self, pool: asyncpg.Pool, outbox: Outbox) -> None:
        self.pool = pool
        self.outbox = outbox

    async def submit_rating(self, callid: str, rating: int, phone: str = "", ext: str = "") -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await self.outbox.enqueue_rating(conn, callid, rating, phone=phone, ext=ext)
