"""What to do after one delivery attempt (SPEC section 4): sent, retry later, give up.

A pure object (no I/O, no clock: ``now`` is passed in, in Unix seconds) so every rule is
unit-tested and the workers only record the decision. The rules:

- 2xx: ``sent``.
- 410 Gone: ``disable``; the receiver says the target is switched off for good.
- 3xx: ``dead``; a webhook URL must not redirect (the client does not follow redirects:
  re-POSTing a body to wherever a ``Location`` points would leak tokens and payloads, and a
  redirect usually means a login page or a moved endpoint that an operator must fix).
- 408, 429 and every 5xx (500, 502, 503, 504, ...), timeouts and connection errors
  (``status`` None): ``retry`` with exponential backoff and jitter. ``Retry-After``
  (seconds or an HTTP date) is honoured: the delay is never shorter than the header, even
  above ``max_delay``, which only caps our own backoff.
- other 4xx: ``retry`` until ``max_client_errors`` attempts, then ``dead`` (a receiver
  that rejects a payload three times will reject it forever; an operator re-drives it).
- ``event`` pop-ups are worthless once ``event_ttl`` has passed since the row was created:
  a retry that would land after the TTL is ``expired`` instead (never ``dead`` for TTL
  reasons, so dead letters stay a list of real problems).
- ``history``, ``rating`` (and any other command) keep trying until ``retry_for`` seconds
  after the row was created and at least ``MIN_RETRY_FOR`` (a day) after the first
  attempt, so a bridge that was itself down for two days still gives the CRM a full day;
  a retry that would land after that deadline is ``dead``.
"""

from __future__ import annotations

import math
import random as _random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Literal

__all__ = ["MIN_RETRY_FOR", "Decision", "Outcome", "RetryPolicy", "parse_retry_after"]

Outcome = Literal["sent", "retry", "dead", "expired", "disable"]

MIN_RETRY_FOR = 86_400.0  # history/rating: SPEC section 4 says "retry for at least a day"
TRANSIENT_4XX = frozenset({408, 429})  # request timeout, rate limited: not the payload's fault
_MAX_EXPONENT = 64  # 2**64 * base_delay is far above any max_delay; avoids float overflow


@dataclass(frozen=True, slots=True)
class Decision:
    outcome: Outcome
    delay: float = 0.0  # seconds until the next attempt (outcome "retry" only)
    reason: str = ""  # one line for the attempt log and the dead-letter list


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from ``now``, from ``Retry-After: 120`` or an HTTP date; None when
    absent or unparseable (then our own backoff applies). A date in the past means 0."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(seconds, 0.0) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; be lenient with a missing zone
        when = when.replace(tzinfo=UTC)
    return max(when.timestamp() - now, 0.0)


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff: ``base_delay * 2**(attempts-1)``, capped at ``max_delay``, minus up to
    ``jitter`` of itself (random) so rows that failed together do not retry together."""

    base_delay: float = 1.0
    max_delay: float = 300.0
    jitter: float = 0.2
    retry_for: float = 172_800.0
    event_ttl: float = 60.0
    max_client_errors: int = 3
    random: Callable[[], float] = field(default=_random.random, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.base_delay < 0 or self.max_delay < 0:
            raise ValueError("base_delay and max_delay must be >= 0")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError(f"jitter is a fraction in [0, 1], got {self.jitter}")
        if self.retry_for < MIN_RETRY_FOR:
            raise ValueError(f"retry_for must be at least {MIN_RETRY_FOR:.0f} s (a day)")
        if self.event_ttl <= 0:
            raise ValueError("event_ttl must be > 0")
        if self.max_client_errors < 1:
            raise ValueError("max_client_errors must be >= 1")

    def backoff(self, attempts: int) -> float:
        """Delay after the ``attempts``-th failed attempt, jitter included."""
        exponent = min(max(attempts - 1, 0), _MAX_EXPONENT)
        delay = min(self.base_delay * 2.0**exponent, self.max_delay)
        r = min(max(self.random(), 0.0), 1.0)  # a bad injected random cannot break the bounds
        return delay * (1.0 - self.jitter * r)

    def is_expired(self, *, cmd: str, created_at: float, now: float) -> bool:
        """Whether an ``event`` row is too old to send at all (workers check before sending)."""
        return cmd == "event" and now - created_at > self.event_ttl

    def deadline(self, *, created_at: float, first_attempt_at: float) -> float:
        """When a durable row (history, rating) stops being retried."""
        return max(created_at + self.retry_for, first_attempt_at + MIN_RETRY_FOR)

    def decide(
        self,
        *,
        cmd: str,
        attempts: int,
        first_attempt_at: float,
        created_at: float,
        now: float,
        status: int | None,
        error: str | None,
        retry_after: str | None,
    ) -> Decision:
        """The outcome of the ``attempts``-th attempt (1 for the first) of one row.

        ``status`` is the HTTP status, or None when no response came (then ``error`` says
        why: timeout, connection refused...). ``retry_after`` is the raw header value.
        """
        if attempts < 1:
            raise ValueError(f"attempts counts the attempt just made (>= 1), got {attempts}")
        if status is not None and 200 <= status < 300:
            return Decision("sent", reason=f"HTTP {status}")
        if status == 410:
            return Decision("disable", reason="HTTP 410 Gone: the receiver switched the target off")
        if status is not None and 300 <= status < 400:
            return Decision("dead", reason=f"HTTP {status}: a webhook URL must not redirect")
        if status is None:
            reason = error or "no response"
        else:
            reason = f"HTTP {status}" + (f": {error}" if error else "")
        if status is not None and 400 <= status < 500 and status not in TRANSIENT_4XX:
            reason += f" (client error, attempt {attempts} of {self.max_client_errors})"
            if attempts >= self.max_client_errors:
                return Decision("dead", reason=reason)
        delay = self.backoff(attempts)
        honoured = parse_retry_after(retry_after, now)
        if honoured is not None:
            delay = max(delay, honoured)
        next_at = now + delay
        if cmd == "event":
            if next_at - created_at > self.event_ttl:
                stale = f"{reason}; a pop-up is stale after {self.event_ttl:g} s"
                return Decision("expired", reason=stale)
        elif next_at > self.deadline(created_at=created_at, first_attempt_at=first_attempt_at):
            return Decision("dead", reason=f"{reason}; gave up after {now - created_at:.0f} s")
        return Decision("retry", delay=delay, reason=reason)
