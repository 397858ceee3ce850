"""A bridge killed while a gap waits for its account from Asterisk's CEL, on a real
PostgreSQL, with the real pipeline, backfill and CSV source.

The AMI link drops for a while in the middle of the 200-call load trace; when it is back
the bridge asks the CEL what it missed, but the read does not come (the file is
unreadable, or slow) while the bridge goes on tracking and storing later calls; then it is
killed. The next bridge must read the CEL from the gap's start, not from the last call
stored: every call of the trace ends up with exactly one history.
"""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest

from bridge.ami.ingest import EventsDropped, Resync, ResyncMark
from bridge.cel.service import Backfiller, CsvSource
from bridge.devtools.fake_ami import AsteriskView
from bridge.pipeline import CallPipeline, Item
from bridge.store.calls import CallStore
from bridge.tracker.tracker import CallTracker
from tests.support.continuity import Trace, uninterrupted
from tests.support.stream import Stream
from tests.unit.test_tracker_traces import LAB22

pytestmark = pytest.mark.integration


@pytest.fixture
async def pool(store_pool: asyncpg.Pool) -> asyncpg.Pool:
    return store_pool


def resync(view: AsteriskView) -> list[Item]:
    """The resync a bridge makes with Asterisk where `view` is: its mark, the snapshot."""
    live = [{"Event": "CoreShowChannel", **c} for c in view.show()]
    return [ResyncMark(view.clock, 1), Resync(view.clock, live, 1)]


def bridge(
    pool: asyncpg.Pool, tracker: CallTracker, items: list[Item], cel: Path, seen: float | None
) -> tuple[CallPipeline, Backfiller]:
    store = CallStore(pool, "lab")
    pipeline = CallPipeline(Stream(items), tracker, store, seen_until=seen)
    backfill = Backfiller(CsvSource(cel), tracker, store.finished_among, pipeline.inject)
    pipeline.backfill = backfill
    return pipeline, backfill


async def test_killed_before_a_gaps_account_came_the_next_bridge_reads_it_again(
    pool: asyncpg.Pool, tmp_path: Path
) -> None:
    trace = Trace(LAB22.directory, "load_mixed")
    msgs = trace.messages
    n = len(msgs)
    stop, back, kill = n // 2, n // 2 + n // 15, n // 2 + n // 15 + n // 8
    want = {h.callid for h in uninterrupted(trace, LAB22.tracker()).histories()}
    view = AsteriskView()
    view.start_clock([(t, raw) for t, raw, _ in msgs])
    for t, raw, _ in msgs[:back]:
        view.apply(t, raw)
    items: list[Item] = [(ev, t) for t, _, ev in msgs[:stop]]
    items += resync(view)  # the link is back: what Asterisk has now
    items += [(ev, t) for t, _, ev in msgs[back:kill]]
    tracker = LAB22.tracker()
    first, _ = bridge(pool, tracker, items, tmp_path / "not-readable-yet.csv", None)
    await first.drain()  # its CEL read never succeeded: nothing accounts for the gap
    store = CallStore(pool, "lab")
    seen = await store.seen_until()
    gap_start = float(msgs[stop - 1][2]["Timestamp"])  # its last event before the gap
    assert seen == pytest.approx(gap_start), "held back to the gap's start"
    assert seen is not None
    stored_until = await pool.fetchval(
        "SELECT extract(epoch FROM max(ended_at))::float8 FROM calls WHERE pbx_id = 'lab'"
    )
    assert stored_until > seen + 15, "later calls were stored meanwhile"
    # with the CEL turned off, the gap (kept for when it is read again) holds nothing back
    assert await store.seen_until(gaps=False) == pytest.approx(stored_until)

    # killed; a new bridge starts a little later, with the CEL readable
    for t, raw, _ in msgs[back : kill + 50]:
        view.apply(t, raw)
    cel = tmp_path / "cel_master.csv"
    cel.write_text((LAB22.directory / "load_mixed.cel.csv").read_text())
    second_tracker = LAB22.tracker()
    second_tracker.restore(await store.open_calls())
    rest = resync(view) + [(ev, t) for t, _, ev in msgs[kill + 50 :]]
    second, backfill = bridge(pool, second_tracker, rest, cel, seen)
    await second.drain()
    for _ in range(3):  # the account, then what still waited for the rows of its end
        await backfill.once()
        await second.drain()
    assert await store.seen_until() is not None
    assert await pool.fetchval("SELECT since FROM pbx_gaps WHERE pbx_id = 'lab'") is None
    rows = await pool.fetch("SELECT callid, closed_by FROM calls WHERE status IS NOT NULL")
    assert want - {r["callid"] for r in rows} == set(), "every call has its history"
    assert [r for r in rows if r["closed_by"] == "backfill"], "the gap's, from the CEL"


async def test_calls_that_lost_events_to_a_full_buffer_are_told_by_the_cel(
    pool: asyncpg.Pool, tmp_path: Path
) -> None:
    """The AMI buffer fills (PostgreSQL away, say) and a run of events is dropped; events
    are taken again, and the resync the loss asked for comes once the buffer is empty.
    Calls up during the loss, or born before that resync, may have lost their answer or a
    transfer while their hang-up got through: their histories wait for the CEL's account
    and are what an uninterrupted bridge reports."""
    trace = Trace(LAB22.directory, "load_mixed")
    msgs = trace.messages
    n = len(msgs)
    drop, back, resume = n // 2, n // 2 + n // 20, n // 2 + n // 10
    want = uninterrupted(trace, LAB22.tracker()).histories()
    view = AsteriskView()
    view.start_clock([(t, raw) for t, raw, _ in msgs])
    for t, raw, _ in msgs[:resume]:
        view.apply(t, raw)
    since = float(msgs[drop][2]["Timestamp"])  # the first event dropped
    live = [{"Event": "CoreShowChannel", **c} for c in view.show()]
    items: list[Item] = [(ev, t) for t, _, ev in msgs[:drop]]
    items.append(EventsDropped(since))
    items += [(ev, t) for t, _, ev in msgs[back:resume]]  # taken again, the buffer draining
    items += [ResyncMark(view.clock, 1), Resync(view.clock, live, 1)]
    items += [(ev, t) for t, _, ev in msgs[resume:]]
    cel = tmp_path / "cel_master.csv"
    cel.write_text((LAB22.directory / "load_mixed.cel.csv").read_text())
    pipeline, backfill = bridge(pool, LAB22.tracker(), items, cel, None)
    await pipeline.drain()
    for _ in range(3):  # the account, then what still waited for the rows of its end
        await backfill.once()
        await pipeline.drain()

    rows = await pool.fetch(
        "SELECT callid, status, ext, user_login, closed_by FROM calls WHERE status IS NOT NULL"
    )
    got = {r["callid"]: (r["status"], r["ext"], r["user_login"]) for r in rows}
    assert len(got) == len(rows) == len(want), "every call, once"
    wrong = {
        h.callid: (got.get(h.callid), (h.status, h.ext, h.user))
        for h in want
        if got.get(h.callid) != (h.status, h.ext, h.user)
    }
    assert wrong == {}, "as an uninterrupted bridge reports them"
    assert [r for r in rows if r["closed_by"] == "backfill"], "the loss told by the CEL"
