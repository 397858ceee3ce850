"""Circuit breaker and cache, on a fake clock."""

from __future__ import annotations

import pytest

from bridge.agi.breaker import CircuitBreaker
from bridge.agi.cache import TtlCache


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_consecutive_failures_only() -> None:
    clock = Clock()
    breaker = CircuitBreaker(3, 30.0, clock)
    for _ in range(2):
        breaker.record_failure()
    breaker.record_success()  # the streak is broken
    for _ in range(2):
        assert breaker.allow()
        breaker.record_failure()
    assert breaker.state == "closed" and breaker.allow()
    breaker.record_failure()
    assert breaker.state == "open" and not breaker.allow() and breaker.opened == 1


def test_half_open_lets_exactly_one_trial_through() -> None:
    clock = Clock()
    breaker = CircuitBreaker(1, 30.0, clock)
    breaker.record_failure()
    clock.now += 29.9
    assert not breaker.allow()
    clock.now += 0.1
    assert breaker.state == "half-open"
    assert breaker.allow()
    assert not breaker.allow()  # a second caller while the trial is in flight
    assert not breaker.allow()


def test_failed_trial_reopens_for_a_full_period() -> None:
    clock = Clock()
    breaker = CircuitBreaker(2, 10.0, clock)
    breaker.record_failure()
    breaker.record_failure()
    clock.now += 10
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state == "open" and breaker.opened == 2
    clock.now += 9.9
    assert not breaker.allow()
    clock.now += 0.1
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state == "closed"
    assert all(breaker.allow() for _ in range(5))


def test_successful_trial_closes() -> None:
    clock = Clock()
    breaker = CircuitBreaker(1, 5.0, clock)
    breaker.record_failure()
    clock.now += 5
    assert breaker.allow()
    breaker.record_success()
    breaker.record_failure()  # one failure of a fresh streak opens (failures=1) again
    assert breaker.state == "open"


def test_rejects_nonsense_settings() -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(0, 1.0)
    with pytest.raises(ValueError):
        CircuitBreaker(1, 0.0)


def test_cache_expires_and_stays_bounded() -> None:
    clock = Clock()
    cache: TtlCache[str, int] = TtlCache(60.0, max_entries=3, clock=clock)
    cache.put("a", 1)
    clock.now += 59.9
    assert cache.get("a") == 1
    clock.now += 0.1
    assert cache.get("a") is None and len(cache) == 0
    for key, value in zip("abcd", range(4), strict=True):
        cache.put(key, value)
    assert cache.get("a") is None and len(cache) == 3  # least recently used went first
    assert cache.get("b") == 1
    cache.put("e", 4)
    assert cache.get("c") is None and cache.get("b") == 1


def test_cache_ttl_zero_stores_nothing() -> None:
    cache: TtlCache[str, int] = TtlCache(0.0)
    cache.put("a", 1)
    assert cache.get("a") is None and len(cache) == 0
