"""BufferedRatingSink without a database: a sink that is "down" the way asyncpg is down.

The same sink against a real PostgreSQL stopped and restarted is in
tests/integration/test_agi.py; here: order, capacity, verification, counts, shutdown.
"""

from __future__ import annotations

import asyncio
from typing import TypedDict, Unpack

import pytest
from structlog.testing import capture_logs

from bridge.agi.ports import KnownCall, RatingSink
from bridge.agi.rating_buffer import BufferedRatingSink

Rating = tuple[str, int, str, str, bool]


class OutageSink:
    """Writes ratings to a list; raises ConnectionRefusedError (an OSError) while down."""

    def __init__(self, down: bool = False) -> None:
        self.down = down
        self.written: list[Rating] = []
        self.tries = 0
        self.error: Exception | None = None

    async def submit_rating(
        self, callid: str, rating: int, phone: str = "", ext: str = "", *, verified: bool = True
    ) -> None:
        self.tries += 1
        await asyncio.sleep(0)
        if self.error is not None:
            raise self.error
        if self.down:
            raise ConnectionRefusedError(111, "Connect call failed")
        self.written.append((callid, rating, phone, ext, verified))


class BufferOptions(TypedDict, total=False):
    capacity: int
    attempt_timeout: float


def buffered(
    sink: OutageSink, known: KnownCall | None = None, **kw: Unpack[BufferOptions]
) -> BufferedRatingSink:
    return BufferedRatingSink(sink, known, retry_first=0.01, retry_max=0.02, **kw)


async def drained(buffer: BufferedRatingSink, limit: float = 2.0) -> None:
    async with asyncio.timeout(limit):
        while len(buffer):
            await asyncio.sleep(0.005)


def call(n: int) -> str:
    return f"1763805600.{n}"


async def test_written_at_once_while_the_database_answers() -> None:
    sink = OutageSink()
    buffer = buffered(sink)
    assert isinstance(buffer, RatingSink)
    await buffer.submit_rating(call(1), 5, "79101234567", "101")
    assert sink.written == [(call(1), 5, "79101234567", "101", True)]
    assert buffer.stats() == dict.fromkeys(
        ("buffered", "flushed", "dropped", "unknown_call", "failed", "retries", "pending"), 0.0
    )


async def test_an_outage_is_waited_out_and_the_ratings_written_in_order_once() -> None:
    sink = OutageSink(down=True)
    buffer = buffered(sink)
    with capture_logs() as logs:
        for n in range(5):
            await buffer.submit_rating(call(n), n + 1)  # returns: the channel is not held
        assert len(buffer) == 5 and sink.written == []
        async with asyncio.timeout(2):
            while buffer.stats()["retries"] < 2:  # it keeps trying while the sink is down
                await asyncio.sleep(0.01)
        assert sink.written == []
        sink.down = False
        await drained(buffer)
    assert [w[:2] for w in sink.written] == [(call(n), n + 1) for n in range(5)]
    stats = buffer.stats()
    assert (stats["buffered"], stats["flushed"], stats["pending"]) == (5, 5, 0)
    queued = [e for e in logs if e["event"] == "rating_buffered"]
    assert [e["callid"] for e in queued] == [call(n) for n in range(5)]
    assert "Connect call failed" in queued[0]["error"] and queued[1]["error"] is None
    written = [e["callid"] for e in logs if e["event"] == "rating_buffer_written"]
    assert written == [call(n) for n in range(5)]
    await buffer.close()


async def test_ratings_given_during_the_flush_queue_behind_it() -> None:
    sink = OutageSink(down=True)
    buffer = buffered(sink)
    await buffer.submit_rating(call(1), 1)
    sink.down = False
    await buffer.submit_rating(call(2), 2)  # the database is back, but call 1 waits first
    await drained(buffer)
    assert [w[0] for w in sink.written] == [call(1), call(2)]
    await buffer.close()


async def test_full_buffer_drops_the_oldest_and_says_so() -> None:
    sink = OutageSink(down=True)
    buffer = buffered(sink, capacity=3)
    with capture_logs() as logs:
        for n in range(5):
            await buffer.submit_rating(call(n), 1)
    dropped = [e for e in logs if e["event"] == "rating_buffer_full_dropped"]
    assert [e["callid"] for e in dropped] == [call(0), call(1)]
    assert dropped[0]["log_level"] == "error"
    sink.down = False
    await drained(buffer)
    assert [w[0] for w in sink.written] == [call(2), call(3), call(4)]
    stats = buffer.stats()
    assert (stats["buffered"], stats["dropped"], stats["flushed"]) == (5, 2, 3)
    await buffer.close()


async def test_unverified_ratings_are_checked_again_before_they_are_written() -> None:
    database_up = False

    async def known(callid: str) -> bool | None:
        if not database_up:
            return None
        return callid == call(1)

    sink = OutageSink()
    buffer = buffered(sink, known)
    with capture_logs() as logs:
        await buffer.submit_rating(call(1), 4, verified=False)
        await buffer.submit_rating(call(2), 4, verified=False)  # nobody's call
        await asyncio.sleep(0.05)
        assert sink.tries == 0 and len(buffer) == 2  # never written unchecked
        database_up = True
        await drained(buffer)
    assert sink.written == [(call(1), 4, "", "", True)]
    assert (buffer.counts["unknown_call"], buffer.counts["flushed"]) == (1, 1)
    (line,) = [e for e in logs if e["event"] == "rating_buffer_unknown_call"]
    assert line["callid"] == call(2)
    await buffer.close()


async def test_without_a_known_unverified_ratings_go_on_unverified() -> None:
    sink = OutageSink()
    buffer = buffered(sink)
    await buffer.submit_rating(call(1), 4, verified=False)
    await drained(buffer)
    assert sink.written == [(call(1), 4, "", "", False)]  # the wrapped sink checks
    await buffer.close()


async def test_a_bug_in_the_sink_is_not_retried_for_ever() -> None:
    sink = OutageSink(down=True)
    buffer = buffered(sink)
    await buffer.submit_rating(call(1), 1)
    await buffer.submit_rating(call(2), 2)
    sink.error = ValueError("not an outage")
    with capture_logs() as logs:
        await asyncio.sleep(0.05)
        sink.error = None
        sink.down = False
        await drained(buffer)
    assert buffer.counts["failed"] >= 1
    assert any(e["event"] == "rating_buffer_write_failed" for e in logs)
    assert len(sink.written) + buffer.counts["failed"] == 2
    await buffer.close()


async def test_a_hanging_database_is_an_outage_too() -> None:
    class Hanging(OutageSink):
        async def submit_rating(self, *args: object, **kw: object) -> None:
            await asyncio.sleep(10)

    buffer = buffered(Hanging(), attempt_timeout=0.05)
    async with asyncio.timeout(1):
        await buffer.submit_rating(call(1), 1)
    assert len(buffer) == 1
    await buffer.close(grace=0.1)


async def test_close_gives_a_grace_then_reports_what_is_lost() -> None:
    sink = OutageSink(down=True)
    buffer = buffered(sink)
    await buffer.submit_rating(call(1), 1)
    await buffer.submit_rating(call(2), 2)
    with capture_logs() as logs:
        await buffer.close(grace=0.05)
    (line,) = [e for e in logs if e["event"] == "rating_buffer_lost"]
    assert (line["count"], line["callids"]) == (2, [call(1), call(2)])
    assert len(buffer) == 0


@pytest.mark.parametrize("capacity", [0, -1])
def test_capacity_must_be_positive(capacity: int) -> None:
    with pytest.raises(ValueError):
        BufferedRatingSink(OutageSink(), capacity=capacity)
