"""Doubling waits for loops that wait out an outage (PostgreSQL, AMI, a CRM look-up).

One helper for every such loop: `await backoff.sleep()` after a failure, `reset()` after
a success; `next()` gives the next delay without sleeping (for panoramisk, which sleeps
itself). `jitter` spreads reconnects of many bridges (0.5: each delay is 50-100 %).
"""

from __future__ import annotations

import asyncio
import random


class Backoff:
    def __init__(self, first: float = 0.1, cap: float = 5.0, jitter: float = 0.0) -> None:
        self.first = first
        self.cap = cap
        self.jitter = jitter
        self.delay = first  # the next wait, before jitter

    def next(self) -> float:
        """The wait to use now; the one after is doubled (up to `cap`)."""
        delay = self.delay
        self.delay = min(self.delay * 2, self.cap)
        if self.jitter:
            delay *= random.uniform(1.0 - self.jitter, 1.0)
        return delay

    async def sleep(self) -> None:
        await asyncio.sleep(self.next())

    def reset(self) -> None:
        self.delay = self.first
