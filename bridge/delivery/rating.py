"""Post-call ratings into the outbox: stored on the call, `rating` queued, one transaction.

This is the `RatingSink` the FastAGI `rating` route gets from the daemon.
"""

from __future__ import annotations

from ..store.calls import CallStore


class OutboxRatingSink:
    def __init__(self, store: CallStore) -> None:
        self.store = store

    async def submit_rating(self, callid: str, rating: int, phone: str = "", ext: str = "") -> None:
        await self.store.save_rating(callid, rating, phone=phone, ext=ext)
