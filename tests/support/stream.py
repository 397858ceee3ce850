"""What the AMI side hands the pipeline (`bridge.pipeline.Source`), without a socket:
recorded events and resync items, in order."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable

from bridge.pipeline import Item


class Stream:
    def __init__(self, items: Iterable[Item]) -> None:
        self.items: deque[Item] = deque(items)
        self.wake = asyncio.Event()
        self.wake.set()

    def take(self, limit: int) -> list[Item]:
        taken = [self.items.popleft() for _ in range(min(limit, len(self.items)))]
        if not self.items:
            self.wake.clear()
        return taken
