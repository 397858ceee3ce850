"""A bounded LRU cache with a time to live: CRM answers served while a call rings.

Bounded so a flood of distinct caller numbers (robocalls, spoofed ids) cannot grow the
daemon's memory; a TTL so a customer renamed in the CRM is renamed here too, even for a
number that only calls while the CRM is down.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["TtlCache"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    """``get`` returns None for a missing or expired key; ttl 0 disables the cache."""

    def __init__(
        self, ttl: float, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self.clock = clock
        self._data: OrderedDict[K, tuple[float, V]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: K) -> V | None:
        found = self.get_with_age(key)
        return None if found is None else found[0]

    def get_with_age(self, key: K) -> tuple[V, float] | None:
        """The value and its age in seconds (for stale-while-revalidate), or None."""
        item = self._data.get(key)
        if item is None:
            return None
        stored_at, value = item
        age = self.clock() - stored_at
        if age >= self.ttl:
            del self._data[key]
            return None
        self._data.move_to_end(key)
        return value, age

    def put(self, key: K, value: V) -> None:
        if self.ttl <= 0 or self.max_entries <= 0:
            return
        self._data[key] = (self.clock(), value)
        self._data.move_to_end(key)
        while len(self._data) > self.max_entries:
            self._data.popitem(last=False)
