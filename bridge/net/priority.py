"""Phones first: while a FastAGI look-up is in progress, the AMI side steps back.

The daemon follows AMI and answers FastAGI on one event loop. A burst of AMI traffic (a
busy hour's hang-ups, a resync) is work that can wait a few milliseconds; a look-up holds
a ringing call in the dialplan. Without an order between them, each step of a look-up
(read the environment, ask for a variable, answer) waits behind whole reads of AMI and
whole chunks of tracking: tens of milliseconds per look-up during a burst.

`Priority` counts look-ups in progress (a FastAGI connection that has sent something and
is not closed). The AMI reader stops reading while there are any and the tracker waits
before its next chunk, each for `max_wait` at most, so a stream of look-ups slows the AMI
side (one read and one chunk per `max_wait`) but never stops it, and idle connections
(which send nothing) never count.
"""

from __future__ import annotations

import asyncio
import contextlib

MAX_WAIT = 0.02  # seconds the AMI side waits for look-ups at most, before its next step


class Priority:
    def __init__(self, max_wait: float = MAX_WAIT) -> None:
        self.max_wait = max_wait
        self.lookups = 0  # in progress now
        self.yielded = 0  # times the AMI side waited for them (a figure for stats)
        self._clear = asyncio.Event()  # no look-up in progress (bound to a loop at first wait)
        self._clear.set()

    @property
    def busy(self) -> bool:
        return self.lookups > 0

    def begin(self) -> None:
        self.lookups += 1
        self._clear.clear()

    def end(self) -> None:
        self.lookups = max(0, self.lookups - 1)
        if not self.lookups:
            self._clear.set()

    async def turn(self) -> None:
        """Until no look-up is in progress, or `max_wait`: the AMI side's next step."""
        if not self.lookups:
            return
        self.yielded += 1
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.max_wait):
                await self._clear.wait()
