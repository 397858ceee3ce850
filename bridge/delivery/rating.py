"""Post-call ratings into the outbox: stored on the call, `rating` queued, one transaction.

:class:`OutboxRatingSink` is the `RatingSink` the FastAGI `rating` route gets from the
daemon (wrapped in :class:`bridge.agi.rating_buffer.BufferedRatingSink`, so a rating
given while Postgres is away is written when it is back). :func:`call_in_store` is the
store's half of the route's "does the bridge know this call?".
"""

from __future__ import annotations

import asyncio

from ..agi.ports import KnownCall
from ..observability.logs import get_logger
from ..store.calls import CallStore
from ..store.errors import DB_UNAVAILABLE

__all__ = ["OutboxRatingSink", "call_in_store"]

log = get_logger("bridge.delivery.rating")


def call_in_store(store: CallStore, *, timeout: float = 1.0) -> KnownCall:
    """A KnownCall: True when ``calls`` has the call, None when Postgres does not answer.

    A call is stored from its first event on (the pipeline writes it while it rings), so
    a rating given at its end finds it, unless the pipeline is behind an outage: the
    daemon asks the tracker first.
    """

    async def known(callid: str) -> bool | None:
        try:
            async with asyncio.timeout(timeout):
                return await store.has_call(callid)
        except DB_UNAVAILABLE:
            return None

    return known


class OutboxRatingSink:
    """Satisfies :class:`bridge.agi.ports.RatingSink`; database errors propagate."""

    def __init__(self, store: CallStore) -> None:
        self.store = store
        self.counts: dict[str, int] = {"written": 0, "unknown_call": 0}

    async def submit_rating(
        self, callid: str, rating: int, phone: str = "", ext: str = "", *, verified: bool = True
    ) -> None:
        """Store and queue; an unverified rating only if ``calls`` has its call."""
        written = await self.store.save_rating(
            callid, rating, phone=phone, ext=ext, only_known=not verified
        )
        if written is None:
            self.counts["unknown_call"] += 1
            log.warning("rating_unknown_call", callid=callid, rating=rating)
            return
        self.counts["written"] += 1
