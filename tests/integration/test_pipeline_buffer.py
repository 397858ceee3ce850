"""The pipeline when PostgreSQL cannot take what the tracker reports, on a real server:
stopped for a while (the outage buffer fills: pop-ups go first, then tracking pauses, and
every history is written once the server is back), or refusing one call for good (the
batch is split: the other calls are stored, the refused one is logged and counted)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

import asyncpg
import pytest
from structlog.testing import capture_logs

from bridge.devtools.local_postgres import LocalPostgres
from bridge.pipeline import CallPipeline
from bridge.store.calls import CallStore
from bridge.store.migrations import migrate
from bridge.store.partitions import make_partitions
from bridge.tracker.model import CallEvent, CallRecord, Output, Stored
from tests.support.stream import Stream
from tests.unit.test_tracker_traces import LAB22

pytestmark = pytest.mark.integration

SCENARIOS = LAB22.scenarios()
THREE_CALLS = ["in_answered", "in_noanswer", "out_answered"]


@pytest.fixture
async def pool(store_pool: asyncpg.Pool) -> asyncpg.Pool:
    return store_pool


def histories(names: list[str]) -> list[CallRecord]:
    return [o for o in clean_outputs(names) if isinstance(o, CallRecord)]


def recorded(names: list[str]) -> Stream:
    """The scenarios' recorded events, in order."""
    return Stream((event, t) for name in names for t, event in LAB22.events(name))


def clean_outputs(names: list[str]) -> list[Output]:
    tracker = LAB22.tracker()
    return [out for name in names for t, ev in LAB22.events(name) for out in tracker.feed(ev, t)]


async def until(predicate: Callable[[], object], limit: float = 30.0) -> None:
    async with asyncio.timeout(limit):
        while not predicate():
            await asyncio.sleep(0.01)


async def stored(pool: asyncpg.Pool) -> tuple[set[tuple[str, str]], int]:
    histories = await pool.fetch("SELECT callid, status FROM calls WHERE status IS NOT NULL")
    events = await pool.fetchval("SELECT count(*) FROM call_events")
    return {(r["callid"], r["status"]) for r in histories}, events


async def test_a_full_outage_buffer_drops_pop_ups_first_then_pauses_and_keeps_every_history() -> (
    None
):
    expected = clean_outputs(SCENARIOS)
    histories = {(o.callid, o.status) for o in expected if isinstance(o, CallRecord)}
    pop_ups = sum(isinstance(o, CallEvent) for o in expected)
    limit = 20  # fewer than the histories alone: the buffer fills with them and tracking waits
    assert len(histories) > limit
    with LocalPostgres() as pg:
        dsn = pg.create_database("buffer")
        pool = await asyncpg.create_pool(dsn, min_size=0, max_size=2, timeout=2)
        async with pool.acquire() as conn:
            await migrate(conn)
            await make_partitions(conn)
        source = recorded(SCENARIOS)
        pipeline = CallPipeline(
            source,
            LAB22.tracker(),
            CallStore(pool, "lab"),
            buffer_limit=limit,
            batch_size=5,
            chunk_size=20,  # events tracked between two looks at the buffer
        )
        pg.stop()  # PostgreSQL goes away before the first call
        with capture_logs() as logs:
            task = asyncio.create_task(pipeline.run())
            try:
                names = lambda: [e["event"] for e in logs]  # noqa: E731
                await until(lambda: "outage_buffer_full_tracking_paused" in names())
                await asyncio.sleep(0.3)
                left = len(source.items)
                assert left > 0, "tracking waits: the rest of the events stay unread"
                assert pipeline.buffered >= limit and pipeline.dropped_events > 0
                assert "outage_buffer_full_dropping_events" in names()
                # the pop-ups went first (but for a batch being tried when the buffer filled)
                assert sum(isinstance(o, CallEvent) for o in pipeline.pending) <= 5
                assert len(source.items) == left

                pg.start()  # back, on the same port
                await until(lambda: not source.items and not pipeline.buffered)
                await pipeline.drain()
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        assert "outage_buffer_room_tracking_resumed" in names()
        got, events = await stored(pool)
        assert got == histories, "every history, once"
        assert events == pop_ups - pipeline.dropped_events
        await pool.close()


async def test_a_call_the_database_refuses_is_skipped_and_the_rest_of_its_batch_stored(
    pool: asyncpg.Pool,
) -> None:
    records = histories(THREE_CALLS)
    refused = records[1].callid
    # a real refusal for one call (as a bug would cause one): not an outage
    await pool.execute(
        f"ALTER TABLE call_events ADD CONSTRAINT refuse_one CHECK (callid <> '{refused}')"
    )
    source = recorded(THREE_CALLS)
    pipeline = CallPipeline(source, LAB22.tracker(), CallStore(pool, "lab"))
    with capture_logs() as logs:
        await pipeline.drain()
    assert [e["event"] for e in logs if e["log_level"] == "error"] == [
        "store_batch_refused_splitting",
        "store_refused_call",
    ]
    assert next(e for e in logs if e["event"] == "store_refused_call")["callid"] == refused
    assert pipeline.rejected == sum(o.callid == refused for o in clean_outputs(THREE_CALLS))
    got, _ = await stored(pool)
    assert got == {(o.callid, o.status) for o in records if o.callid != refused}

    source.items.extend((ev, t) for t, ev in LAB22.events("out_busy"))  # and it goes on
    source.wake.set()
    await pipeline.drain()
    (busy,) = histories(["out_busy"])
    assert (busy.callid, busy.status) in (await stored(pool))[0]


async def test_a_server_refusing_every_write_keeps_the_calls_until_it_takes_them(
    pool: asyncpg.Pool, migrated_dsn: str
) -> None:
    """Not the data's fault (here a read-only server, as after a failover onto a standby;
    a full disk is the same): nothing is skipped, the calls wait and are written after."""
    read_only = (
        f'ALTER DATABASE "{urlsplit(migrated_dsn).path.lstrip("/")}" '
        "SET default_transaction_read_only = "
    )
    admin = await asyncpg.connect(migrated_dsn)
    try:
        await admin.execute(read_only + "on")
        await pool.expire_connections()
        source = recorded(THREE_CALLS)
        pipeline = CallPipeline(source, LAB22.tracker(), CallStore(pool, "lab"))
        with capture_logs() as logs:
            task = asyncio.create_task(pipeline.run())
            try:
                await until(lambda: not source.items and pipeline.store_failures >= 2)
                assert pipeline.rejected == 0 and pipeline.buffered > 0 and not pipeline.db_ok
                assert (await stored(pool))[0] == set()
                await admin.execute(read_only + "off")
                await pool.expire_connections()
                await until(lambda: not pipeline.buffered)
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
    finally:
        await admin.close()
    events = [e["event"] for e in logs]
    assert "store_unavailable_buffering" in events and "store_available_again" in events
    assert "store_refused_call" not in events
    assert (await stored(pool))[0] == {(o.callid, o.status) for o in histories(THREE_CALLS)}


class BuggyForOneCall:
    """The real store with a bug for one call: building its rows raises (as a value the
    code did not expect would)."""

    def __init__(self, store: CallStore, callid: str) -> None:
        self.store, self.callid = store, callid

    async def save(self, outputs: Sequence[Stored]) -> None:
        if any(o.callid == self.callid for o in outputs):
            raise ValueError(f"cannot build the rows of {self.callid}")
        await self.store.save(outputs)


async def test_a_call_whose_rows_cannot_be_built_costs_that_call_only(pool: asyncpg.Pool) -> None:
    records = histories(THREE_CALLS)
    buggy = records[0].callid
    source = recorded(THREE_CALLS)
    pipeline = CallPipeline(source, LAB22.tracker(), BuggyForOneCall(CallStore(pool, "lab"), buggy))
    with capture_logs() as logs:
        task = asyncio.create_task(pipeline.run())
        try:
            await until(lambda: not source.items and not pipeline.buffered)
            assert not task.done(), "the pipeline goes on"
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    refused = [e for e in logs if e["event"] == "store_refused_call"]
    assert [e["callid"] for e in refused] == [buggy] and "ValueError" in refused[0]["error"]
    assert pipeline.rejected == sum(o.callid == buggy for o in clean_outputs(THREE_CALLS))
    got, _ = await stored(pool)
    assert got == {(o.callid, o.status) for o in records if o.callid != buggy}
