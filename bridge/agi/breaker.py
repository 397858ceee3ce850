"""A circuit breaker, so a dead CRM costs ringing calls nothing at all.

Closed: every request goes out. After ``failures`` consecutive failures it opens: no
request for ``reset`` seconds (callers get "no contact" at once instead of waiting for
the timeout on every call). Then it half-opens: exactly one trial request goes out; its
success closes the breaker, its failure opens it for another ``reset`` seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

__all__ = ["CircuitBreaker", "State"]

State = Literal["closed", "open", "half-open"]


class CircuitBreaker:
    """Not thread-safe; one event loop owns it. ``clock`` is injectable for tests."""

    def __init__(
        self, failures: int, reset: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if failures < 1 or reset <= 0:
            raise ValueError("failures must be >= 1 and reset > 0")
        self.failures = failures
        self.reset = reset
        self.clock = clock
        self._consecutive = 0
        self._opened_at: float | None = None
        self._trial = False  # a half-open trial request is in flight
        self.opened = 0  # times it opened (a counter for metrics)

    @property
    def state(self) -> State:
        if self._opened_at is None:
            return "closed"
        if self._trial or self.clock() - self._opened_at >= self.reset:
            return "half-open"
        return "open"

    def allow(self) -> bool:
        """May a request go out now? In half-open state only the first caller gets a yes."""
        state = self.state
        if state == "closed":
            return True
        if state == "half-open" and not self._trial:
            self._trial = True
            return True
        return False

    def record_success(self) -> None:
        self._consecutive = 0
        self._opened_at = None
        self._trial = False

    def record_failure(self) -> None:
        self._consecutive += 1
        if self._trial or self._consecutive >= self.failures:
            if self._opened_at is None or self._trial:
                self.opened += 1
            self._opened_at = self.clock()
        self._trial = False
