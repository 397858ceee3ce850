"""What the ``rating`` route needs from the rest of the daemon, as a Protocol.

The AGI server must not know whether a rating goes to the outbox (stored with the call,
retried for a day) or straight to the CRM (before the outbox exists, or in tests): the
daemon hands it one object with this method.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

__all__ = ["RatingSink"]


@runtime_checkable
class RatingSink(Protocol):
    async def submit_rating(self, callid: str, rating: int, phone: str = "", ext: str = "") -> None:
        """Store/queue the rating (1-9) a caller gave call ``callid``; may take a while.

        The route does not hold the channel for it: it waits a short time, then lets the
        submission finish in the background. Errors are logged by the route.
        """
        ...
