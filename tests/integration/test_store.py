"""Calls into a real PostgreSQL: every trace, twice, leaves the same rows."""

from __future__ import annotations

import asyncpg
import pytest

from bridge.ami.trace import trace_events
from bridge.devtools.fake_ami import AsteriskView
from bridge.store.calls import CallStore
from bridge.store.migrations import migrate, migration_files
from bridge.tracker.model import CallParked, CallRecord
from tests.support.continuity import Trace
from tests.support.traces import TRACES, expected, scenario_names
from tests.unit.test_tracker_traces import lab_tracker

pytestmark = pytest.mark.integration


async def store_trace(pool: asyncpg.Pool, name: str, batch: int = 50, pbx: str = "lab") -> None:
    tracker = lab_tracker()
    store = CallStore(pool, pbx)
    pending = []
    for i, (t, ev) in enumerate(trace_events(TRACES / f"{name}.ami.jsonl"), 1):
        pending.extend(tracker.feed(ev, t))
        if i % batch == 0 and pending:
            await store.save(pending)
            pending = []
    if pending:
        await store.save(pending)


async def snapshot(pool: asyncpg.Pool) -> dict[str, list]:
    return {
        table: [tuple(r) for r in await pool.fetch(f"SELECT * FROM {table} ORDER BY 1, 2, 3")]
        for table in ("calls", "call_legs", "call_events")
    }


@pytest.fixture
async def pool(pg_dsn: str):
    pool = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=4)
    async with pool.acquire() as conn:
        assert await migrate(conn) == [p.name for p in migration_files()]
        assert await migrate(conn) == []  # idempotent
    yield pool
    await pool.close()


async def test_every_scenario_lands_in_postgres_and_twice_is_once(pool: asyncpg.Pool) -> None:
    for name in scenario_names():
        await store_trace(pool, name)
    first = await snapshot(pool)
    for name in scenario_names():
        await store_trace(pool, name, batch=7)  # other batch boundaries, same rows
    assert await snapshot(pool) == first
    external = sum(len(expected(n)["calls"]) for n in scenario_names())
    rows = await pool.fetch("SELECT * FROM calls WHERE pbx_id = 'lab'")
    assert sum(r["direction"] != "internal" for r in rows) == external
    assert all(r["status"] is not None for r in rows), "no call left open"
    assert await pool.fetchval("SELECT count(*) FROM calls WHERE direction = 'internal'") == 1


async def test_rows_of_a_blind_transfer(pool: asyncpg.Pool) -> None:
    await store_trace(pool, "in_blind_transfer")
    call = await pool.fetchrow("SELECT * FROM calls")
    assert (call["direction"], call["status"], call["ext"], call["phone"], call["diversion"]) == (
        "in",
        "Success",
        "1002",
        "79101234567",
        "74957654321",
    )
    assert 7 <= call["duration"] <= 11 and call["closed_by"] == "hangup"
    legs = await pool.fetch(
        "SELECT kind, ext FROM call_legs WHERE callid = $1 ORDER BY started_at", call["callid"]
    )
    assert [(r["kind"], r["ext"]) for r in legs] == [
        ("trunk", ""),
        ("extension", "1001"),
        ("extension", "1002"),
    ]
    events = await pool.fetch("SELECT ext, type FROM call_events ORDER BY seq")
    assert [(r["ext"], r["type"]) for r in events] == [
        ("1001", "INCOMING"),
        ("1001", "ACCEPTED"),
        ("1001", "TRANSFERRED"),
        ("1001", "COMPLETED"),
        ("1002", "INCOMING"),
        ("1002", "ACCEPTED"),
        ("1002", "COMPLETED"),
    ]


async def test_two_pbxs_share_one_database(pool: asyncpg.Pool) -> None:
    await store_trace(pool, "in_answered", pbx="a")
    await store_trace(pool, "in_answered", pbx="b")
    assert await pool.fetchval("SELECT count(*) FROM calls") == 2
    assert await pool.fetchval("SELECT count(DISTINCT pbx_id) FROM call_events") == 2


async def test_open_calls_come_back_after_a_restart(pool: asyncpg.Pool) -> None:
    tracker = lab_tracker()
    store = CallStore(pool, "lab")
    for t, ev in trace_events(TRACES / "in_queue.ami.jsonl"):
        outputs = tracker.feed(ev, t)
        if outputs:
            await store.save(outputs)
        if tracker.calls and any(
            s.accepted for c in tracker.calls.values() for s in c.sessions.values()
        ):
            break
    (open_call,) = await store.open_calls()
    assert open_call.direction == "in" and open_call.phone == "79101234567"
    assert open_call.sessions == {"1001": "INCOMING", "1002": "ACCEPTED"}
    assert open_call.answered is not None and open_call.group == "sales"
    assert open_call.last_seq == 3


@pytest.mark.parametrize("batch", [1, 1000], ids=["event by event", "one batch"])
async def test_a_call_up_shows_its_real_start_however_events_are_batched(
    pool: asyncpg.Pool, batch: int
) -> None:
    """Ringing and answer stored together or apart, the open row starts when the call did
    (its first channel), as its history will."""
    tracker = lab_tracker()
    store = CallStore(pool, "lab")
    events = list(trace_events(TRACES / "in_answered.ami.jsonl"))
    pending: list = []
    answered_at = None
    for i, (t, ev) in enumerate(events):
        pending.extend(tracker.feed(ev, t))
        if any(getattr(o, "type", "") == "ACCEPTED" for o in pending) or len(pending) >= batch:
            await store.save(pending)
            answered = [o for o in pending if getattr(o, "type", "") == "ACCEPTED"]
            pending = []
            if answered:
                answered_at = answered[0].at
                rest = events[i + 1 :]
                break
    assert answered_at is not None
    (open_row,) = await pool.fetch("SELECT * FROM calls WHERE status IS NULL")
    assert open_row["answered_at"].timestamp() == pytest.approx(answered_at)
    for t, ev in rest:
        pending.extend(tracker.feed(ev, t))
    await store.save(pending)
    (done,) = await pool.fetch("SELECT * FROM calls WHERE callid = $1", open_row["callid"])
    assert done["status"] == "Success"
    assert open_row["started_at"] == done["started_at"] < open_row["answered_at"]


async def test_a_call_waiting_for_the_cel_is_stored_open_until_its_account_comes(
    pool: asyncpg.Pool,
) -> None:
    """A call up across an AMI gap hangs up: its history waits for the CEL's account, and
    the call is stored open meanwhile (`CallParked`), so that a bridge restarted before
    the account came takes it back; a late copy never reopens it once finished."""
    trace = Trace(TRACES, "in_answered")
    msgs, talking = trace.messages, trace.moment("talking")
    view = AsteriskView()
    view.start_clock([(t, raw) for t, raw, _ in msgs])
    tracker, store = lab_tracker(), CallStore(pool, "lab")
    for t, raw, ev in msgs[:talking]:
        await store.save(tracker.feed(ev, t))
        view.apply(t, raw)
    live = [{"Event": "CoreShowChannel", **c} for c in view.show()]
    known, seen = tracker.mark(), tracker.last_at
    await store.save(tracker.resync(live, view.clock, known, seen_until=seen, park=True))
    rest = [o for t, _, ev in msgs[talking:] for o in tracker.feed(ev, t)]
    (parked,) = [o for o in rest if isinstance(o, CallParked)]
    assert not [o for o in rest if isinstance(o, CallRecord)], "the history waits"
    await store.save(rest)

    (open_call,) = await store.open_calls()
    assert (open_call.callid, open_call.phone) == (parked.callid, "79101234567")
    assert open_call.facts is not None and open_call.facts.answered == parked.facts.answered
    again = lab_tracker()  # a restart: Asterisk no longer has the call
    again.restore(await store.open_calls())
    (waits,) = again.resync([], view.clock, None, seen_until=tracker.last_at, park=True)
    assert isinstance(waits, CallParked) and again.parked() == [parked.callid]
    await store.save(again.close_parked(parked.callid))  # no account came in time
    row = await pool.fetchrow("SELECT status, closed_by, answered_at FROM calls")
    assert row["status"] is not None and row["closed_by"] == "resync"
    assert row["answered_at"].timestamp() == pytest.approx(parked.facts.answered)
    await store.save([parked])
    assert await store.open_calls() == []
