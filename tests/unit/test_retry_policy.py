"""The retry policy (SPEC section 4, issue 4): every rule, on a fake clock.

Why: the workers only execute these decisions; a wrong one either loses a history (dead too
early, an expired row) or hammers a CRM that asked us to wait.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.delivery.retry import MIN_RETRY_FOR, Decision, RetryPolicy, parse_retry_after

T0 = 1_700_000_000.0  # created_at of every row below
DAY = 86_400.0


def policy(r: float = 0.0, **kw: object) -> RetryPolicy:
    """r=0: no jitter taken (the delay is the plain backoff); r close to 1: the most."""
    return RetryPolicy(random=lambda: r, **kw)  # type: ignore[arg-type]


def decide(
    p: RetryPolicy,
    *,
    cmd: str = "history",
    attempts: int = 1,
    now: float = T0 + 1,
    status: int | None = 500,
    error: str | None = None,
    retry_after: str | None = None,
    created_at: float = T0,
    first_attempt_at: float | None = None,
) -> Decision:
    return p.decide(
        cmd=cmd,
        attempts=attempts,
        first_attempt_at=created_at if first_attempt_at is None else first_attempt_at,
        created_at=created_at,
        now=now,
        status=status,
        error=error,
        retry_after=retry_after,
    )


@pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
@pytest.mark.parametrize("cmd", ["history", "event", "rating"])
def test_2xx_is_sent(status: int, cmd: str) -> None:
    assert decide(policy(), cmd=cmd, status=status).outcome == "sent"


def test_2xx_is_sent_even_when_late() -> None:
    # The CRM took it: a late success is still a success, never "expired".
    assert decide(policy(), cmd="event", now=T0 + 3600, status=200).outcome == "sent"


@pytest.mark.parametrize("cmd", ["history", "event", "rating"])
def test_410_disables_the_target(cmd: str) -> None:
    d = decide(policy(), cmd=cmd, status=410)
    assert d.outcome == "disable" and "410" in d.reason


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirect_is_dead_at_once(status: int) -> None:
    d = decide(policy(), status=status, attempts=1)
    assert d.outcome == "dead" and "redirect" in d.reason


@pytest.mark.parametrize("status", [408, 429, 500, 501, 502, 503, 504, 520, 599])
def test_transient_statuses_retry_forever_within_the_window(status: int) -> None:
    d = decide(policy(), status=status, attempts=50, now=T0 + 3600)
    assert d.outcome == "retry" and d.delay == 300.0


@pytest.mark.parametrize("error", ["timeout", "connection refused", None])
def test_no_response_retries(error: str | None) -> None:
    d = decide(policy(), status=None, error=error, attempts=7)
    assert d.outcome == "retry" and d.delay == 64.0
    assert d.reason == (error or "no response")


def test_backoff_doubles_and_caps() -> None:
    p = policy(base_delay=1.0, max_delay=300.0)
    delays = [decide(p, attempts=n, status=503).delay for n in range(1, 12)]
    assert delays == [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]


def test_huge_attempt_counts_do_not_overflow() -> None:
    assert decide(policy(), attempts=100_000, status=503).delay == 300.0


@pytest.mark.parametrize("status", [400, 401, 403, 404, 405, 413, 415, 422])
def test_other_4xx_retry_then_dead(status: int) -> None:
    p = policy(max_client_errors=3)
    assert decide(p, status=status, attempts=1).outcome == "retry"
    assert decide(p, status=status, attempts=2).outcome == "retry"
    dead = decide(p, status=status, attempts=3, error="bad field foo")
    assert dead.outcome == "dead"
    assert f"HTTP {status}: bad field foo" in dead.reason and "3 of 3" in dead.reason


def test_client_errors_dead_letter_events_too() -> None:
    # A strict receiver rejecting a pop-up is a real problem: listed, not silently expired.
    assert decide(policy(), cmd="event", status=400, attempts=3).outcome == "dead"


def test_max_client_errors_one() -> None:
    assert decide(policy(max_client_errors=1), status=400, attempts=1).outcome == "dead"


# --- Retry-After ----------------------------------------------------------------------------


def test_retry_after_seconds_is_honoured() -> None:
    d = decide(policy(), status=429, attempts=1, retry_after="17")
    assert d == Decision("retry", 17.0, "HTTP 429")


def test_retry_after_is_never_undercut_even_above_max_delay() -> None:
    d = decide(policy(max_delay=300.0), status=503, attempts=1, retry_after="900")
    assert d.outcome == "retry" and d.delay == 900.0


def test_retry_after_shorter_than_backoff_keeps_the_backoff() -> None:
    d = decide(policy(), status=503, attempts=8, retry_after="5")
    assert d.delay == 128.0


def test_retry_after_http_date() -> None:
    now = T0 + 10
    header = format_datetime(datetime.fromtimestamp(now + 120, UTC), usegmt=True)
    d = decide(policy(), status=503, now=now, retry_after=header)
    assert d.outcome == "retry" and d.delay == pytest.approx(120.0)


def test_retry_after_date_in_the_past_falls_back_to_backoff() -> None:
    d = decide(policy(), status=503, attempts=3, retry_after="Wed, 21 Oct 2015 07:28:00 GMT")
    assert d.delay == 4.0


@pytest.mark.parametrize("header", ["", "  ", "soon", "NaN", "inf", "Wed, 99 Foo 2015"])
def test_garbage_retry_after_is_ignored(header: str) -> None:
    assert decide(policy(), status=503, attempts=3, retry_after=header).delay == 4.0


def test_parse_retry_after_forms() -> None:
    assert parse_retry_after(None, T0) is None
    assert parse_retry_after(" 30 ", T0) == 30.0
    assert parse_retry_after("-5", T0) == 0.0
    # T0 is Tue, 14 Nov 2023 22:13:20 GMT
    assert parse_retry_after("Tue, 14 Nov 2023 22:15:20 GMT", T0) == 120.0
    assert parse_retry_after("Tue, 14 Nov 2023 22:15:20", T0) == 120.0  # no zone: GMT


def test_retry_after_for_an_event_beyond_its_ttl_expires_it() -> None:
    d = decide(policy(event_ttl=60.0), cmd="event", status=429, retry_after="120")
    assert d.outcome == "expired"


# --- jitter ---------------------------------------------------------------------------------


def test_jitter_takes_off_at_most_its_fraction() -> None:
    assert decide(policy(r=0.0, jitter=0.2), attempts=5, status=503).delay == 16.0
    assert decide(policy(r=0.5, jitter=0.2), attempts=5, status=503).delay == pytest.approx(14.4)
    assert decide(policy(r=1.0, jitter=0.2), attempts=5, status=503).delay == pytest.approx(12.8)


def test_default_random_spreads_delays() -> None:
    p = RetryPolicy()
    delays = {p.backoff(6) for _ in range(50)}
    assert len(delays) > 1 and all(25.6 <= d <= 32.0 for d in delays)


@given(
    r=st.floats(min_value=-1.0, max_value=2.0),  # even a broken injected random stays bounded
    jitter=st.floats(min_value=0.0, max_value=1.0),
    base=st.floats(min_value=0.0, max_value=100.0),
    max_delay=st.floats(min_value=0.0, max_value=3600.0),
    attempts=st.integers(min_value=1, max_value=10_000),
    status=st.sampled_from([None, 408, 429, 500, 502, 503, 504, 400]),
    retry_after=st.one_of(st.none(), st.integers(min_value=-10, max_value=10_000).map(str)),
)
def test_delay_is_always_within_bounds(
    r: float,
    jitter: float,
    base: float,
    max_delay: float,
    attempts: int,
    status: int | None,
    retry_after: str | None,
) -> None:
    p = RetryPolicy(base_delay=base, max_delay=max_delay, jitter=jitter, random=lambda: r)
    d = decide(p, attempts=attempts, status=status, retry_after=retry_after, now=T0)
    honoured = max(float(retry_after), 0.0) if retry_after is not None else 0.0
    if d.outcome == "retry":
        assert 0.0 <= d.delay <= max(max_delay, honoured)
        assert d.delay >= honoured  # never earlier than the receiver asked
    else:
        assert d.outcome == "dead" and status == 400 and attempts >= 3
        assert d.delay == 0.0


# --- event TTL ------------------------------------------------------------------------------


def test_event_retries_within_its_ttl() -> None:
    d = decide(policy(event_ttl=60.0), cmd="event", status=503, attempts=1, now=T0 + 10)
    assert d.outcome == "retry" and d.delay == 1.0


def test_event_expires_instead_of_retrying_after_its_ttl() -> None:
    d = decide(policy(event_ttl=60.0), cmd="event", status=503, attempts=9, now=T0 + 61)
    assert d.outcome == "expired" and "60 s" in d.reason


def test_event_whose_next_try_would_be_late_expires_now() -> None:
    # 50 s old, the next try in 64 s would be 114 s old: no point waiting for that.
    d = decide(
        policy(event_ttl=60.0), cmd="event", status=None, error="timeout", attempts=7, now=T0 + 50
    )
    assert d.outcome == "expired"


@pytest.mark.parametrize("status", [None, 429, 500, 503, 400])
def test_event_is_never_dead_for_ttl_reasons(status: int | None) -> None:
    for age in (59.0, 61.0, 3600.0, 3 * DAY):
        d = decide(policy(), cmd="event", status=status, error="x", attempts=1, now=T0 + age)
        assert d.outcome in ("retry", "expired")


def test_event_ttl_is_configurable() -> None:
    p = policy(event_ttl=600.0)
    assert decide(p, cmd="event", status=503, attempts=5, now=T0 + 500).outcome == "retry"
    assert decide(p, cmd="event", status=503, attempts=5, now=T0 + 601).outcome == "expired"


def test_is_expired_only_concerns_events() -> None:
    p = policy(event_ttl=60.0)
    assert not p.is_expired(cmd="event", created_at=T0, now=T0 + 60)
    assert p.is_expired(cmd="event", created_at=T0, now=T0 + 60.5)
    assert not p.is_expired(cmd="history", created_at=T0, now=T0 + 10 * DAY)


# --- history / rating window and the 24 h floor ---------------------------------------------


@pytest.mark.parametrize("cmd", ["history", "rating"])
def test_history_and_rating_keep_trying_for_retry_for(cmd: str) -> None:
    p = policy(retry_for=2 * DAY)
    for age in (61.0, 3600.0, DAY, 2 * DAY - 301):
        d = decide(p, cmd=cmd, status=503, attempts=40, now=T0 + age)
        assert d.outcome == "retry", age
    d = decide(p, cmd=cmd, status=503, attempts=40, now=T0 + 2 * DAY + 1)
    assert d.outcome == "dead" and "gave up" in d.reason


def test_last_retry_that_would_land_past_the_deadline_is_dead() -> None:
    p = policy(retry_for=DAY)
    assert decide(p, status=503, attempts=40, now=T0 + DAY - 300).outcome == "retry"
    assert decide(p, status=503, attempts=40, now=T0 + DAY - 299).outcome == "dead"


def test_retry_after_beyond_the_deadline_is_dead_not_parked_forever() -> None:
    d = decide(policy(retry_for=DAY), status=503, retry_after=str(10 * 365 * DAY))
    assert d.outcome == "dead"


def test_retry_for_below_a_day_is_refused() -> None:
    assert MIN_RETRY_FOR == DAY
    with pytest.raises(ValueError, match="at least"):
        RetryPolicy(retry_for=DAY - 1)
    RetryPolicy(retry_for=DAY)


def test_a_full_day_of_tries_even_when_the_first_attempt_came_late() -> None:
    # The bridge itself was down for three days: the row is older than retry_for already,
    # yet the CRM still gets a day of tries from the first attempt.
    p = policy(retry_for=2 * DAY)
    first = T0 + 3 * DAY
    for now in (first, first + 3600, first + DAY - 300):
        d = decide(p, status=None, error="refused", attempts=30, first_attempt_at=first, now=now)
        assert d.outcome == "retry"
    late = decide(
        p, status=None, error="refused", attempts=30, first_attempt_at=first, now=first + DAY + 1
    )
    assert late.outcome == "dead"


def test_client_errors_are_dead_before_the_window_ends() -> None:
    assert decide(policy(), cmd="rating", status=422, attempts=3).outcome == "dead"


# --- validation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kw",
    [
        {"jitter": -0.1},
        {"jitter": 1.5},
        {"base_delay": -1.0},
        {"max_delay": -1.0},
        {"event_ttl": 0.0},
        {"max_client_errors": 0},
    ],
)
def test_bad_settings_are_refused(kw: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kw)  # type: ignore[arg-type]


def test_attempts_counts_the_attempt_just_made() -> None:
    with pytest.raises(ValueError):
        decide(policy(), attempts=0)


def test_policy_is_immutable() -> None:
    p = RetryPolicy()
    with pytest.raises(AttributeError):
        p.max_delay = 1.0  # type: ignore[misc]
