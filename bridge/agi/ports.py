"""What the ``rating`` route needs from the rest of the daemon, as Protocols and types.

The AGI server must not know whether a rating goes to the outbox (stored with the call,
retried for a day) or straight to the CRM (in tests), nor how the daemon knows its calls:
the daemon hands it a sink with :meth:`RatingSink.submit_rating` and, optionally, a
:data:`KnownCall`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol, runtime_checkable

__all__ = ["KnownCall", "RatingSink", "StatsSource"]

KnownCall = Callable[[str], Awaitable[bool | None]]
"""Does the bridge know this call id? True, False, or None: cannot tell now (Postgres down).

The daemon's: the tracker knows the call (live or recently finished), else the store has
it (:func:`bridge.delivery.rating.call_in_store`). Must not raise for an outage: None.
"""


@runtime_checkable
class RatingSink(Protocol):
    async def submit_rating(
        self, callid: str, rating: int, phone: str = "", ext: str = "", *, verified: bool = True
    ) -> None:
        """Store/queue the rating (1-9) a caller gave call ``callid``; may take a while.

        ``verified=False``: nobody could tell whether the bridge knows the call (the
        database was down, or no KnownCall was given); the sink must check before it
        writes or sends, and drop the rating of an unknown call. The route does not hold
        the channel for this: it waits a short time, then lets the submission finish in
        the background. Errors are logged by the route.
        """
        ...


@runtime_checkable
class StatsSource(Protocol):
    def stats(self) -> Mapping[str, float]:
        """Flat counters (and gauges) for /metrics."""
        ...
