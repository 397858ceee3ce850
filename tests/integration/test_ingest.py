"""AMI socket -> ingest (panoramisk's real protocol code) -> tracker -> PostgreSQL.

The AMI server replays the recorded Asterisk traces over real TCP; the faults are real
too: a socket cut mid-call, a half-open link, garbage on the wire.
"""

from __future__ import annotations

import asyncio
import re
from contextlib import asynccontextmanager

import asyncpg
import pytest
from structlog.testing import capture_logs

from bridge.ami.ingest import AmiIngest
from bridge.ami.trace import read_trace
from bridge.devtools.fake_ami import FakeAmiServer, concat_traces
from bridge.pipeline import CallPipeline
from bridge.store.calls import CallStore
from bridge.store.migrations import migrate
from bridge.tracker.grammar import Grammar
from bridge.tracker.tracker import CallTracker
from tests.support.traces import TRACES, expected, scenario_names
from tests.unit.test_tracker_faults import ALL_CALLS, ANSWERED, failing
from tests.unit.test_tracker_traces import lab_tracker

pytestmark = pytest.mark.integration


@pytest.fixture
async def pool(pg_dsn: str):
    pool = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=4)
    async with pool.acquire() as conn:
        await migrate(conn)
    yield pool
    await pool.close()


@asynccontextmanager
async def bridge_on(server: FakeAmiServer, pool: asyncpg.Pool, **ingest_options):
    port = await server.start()
    tracker = lab_tracker()
    # the daemon's own filter: events the tracker does not need are dropped unparsed
    ingest = AmiIngest("127.0.0.1", port, "bridge", "bridge", wants=tracker.wants, **ingest_options)
    pipeline = CallPipeline(ingest, tracker, CallStore(pool, "lab"))
    task = asyncio.create_task(pipeline.run())
    await ingest.start()
    try:
        yield ingest, tracker, pipeline
    finally:
        await ingest.stop()
        task.cancel()
        (result,) = await asyncio.gather(task, return_exceptions=True)
        assert isinstance(result, asyncio.CancelledError), f"pipeline died: {result!r}"
        await server.stop()


async def settle(ingest: AmiIngest, pipeline: CallPipeline, received: int = 0) -> None:
    """Wait until `received` events came in (bytes may still be in flight) and are stored."""
    while ingest.received < received or ingest.buffer:
        await asyncio.sleep(0.01)
    await pipeline.drain()


async def replayed_and_closed(
    server: FakeAmiServer, ingest: AmiIngest, tracker: CallTracker, pipeline: CallPipeline
) -> None:
    """The trace is out, every call it opened is closed, and all of it is stored."""
    await server.wait_done()
    while tracker.open_calls:
        await asyncio.sleep(0.02)
    await settle(ingest, pipeline)


async def resynced(ingest: AmiIngest, count: int) -> None:
    """Until ``count`` resyncs are done (each after a login)."""
    while ingest.resyncs < count:
        await asyncio.sleep(0.01)


async def events_by_ext(pool: asyncpg.Pool) -> dict[str, list[str]]:
    """The stored call events' types, per extension, in order."""
    per_ext: dict[str, list[str]] = {}
    for r in await pool.fetch("SELECT ext, type FROM call_events ORDER BY seq"):
        per_ext.setdefault(r["ext"], []).append(r["type"])
    return per_ext


async def calls(pool: asyncpg.Pool) -> list[asyncpg.Record]:
    return await pool.fetch("SELECT * FROM calls ORDER BY started_at")


async def test_all_scenarios_end_to_end(pool: asyncpg.Pool) -> None:
    """Every scenario, one after another on one AMI connection, as on a real PBX."""
    names = scenario_names()
    raw = concat_traces(TRACES / f"{name}.ami.jsonl" for name in names)
    server = FakeAmiServer(raw)
    async with bridge_on(server, pool) as (ingest, tracker, pipeline):
        async with asyncio.timeout(30):
            await server.wait_done()
            await settle(ingest, pipeline, received=len(raw) + 1)  # + FullyBooted
        assert ingest.dropped == 0
        assert tracker.open_calls == 0
    rows = await calls(pool)
    want = [c["history"] for n in names for c in expected(n)["calls"]]
    external = [r for r in rows if r["direction"] != "internal"]
    assert len(external) == len(want)
    got = {(r["phone"], r["direction"], r["status"], r["ext"] or None) for r in external}
    assert got == {(h["phone"], h["type"], h["status"], h["ext"]) for h in want}


async def test_socket_cut_mid_call_then_resync_closes_what_ended_meanwhile(pool) -> None:
    trace = TRACES / "in_answered.ami.jsonl"
    server = FakeAmiServer(trace, drop_while_disconnected=True, speed=0.01)
    async with bridge_on(server, pool, reconnect_max_delay=0.2) as (ingest, tracker, pipeline):
        async with asyncio.timeout(20):
            # run until the call is answered (the first BridgeEnter), then pull the cable
            server.pause_after(45)
            await server.wait_replayed(45)
            await settle(ingest, pipeline)
            assert tracker.open_calls == 1
            server.cut()
            server.resume()  # the call goes on and ends while nobody listens
            await server.wait_done()
            await server.wait_logins(2)
            while tracker.open_calls:
                await asyncio.sleep(0.02)
            await settle(ingest, pipeline)
    assert server.dropped, "events really were lost while disconnected"
    (row,) = await calls(pool)
    assert (row["status"], row["ext"], row["closed_by"]) == ("Success", "1001", "resync")
    types = [r["type"] for r in await pool.fetch("SELECT type FROM call_events ORDER BY seq")]
    assert types == ["INCOMING", "ACCEPTED", "COMPLETED"]


async def test_reconnect_keeps_a_live_call(pool: asyncpg.Pool) -> None:
    server = FakeAmiServer(TRACES / "in_queue.ami.jsonl")
    async with bridge_on(server, pool, reconnect_max_delay=0.2) as (ingest, tracker, pipeline):
        async with asyncio.timeout(20):
            server.pause_after(120)
            await server.wait_replayed(120)
            await settle(ingest, pipeline)
            # one resync per login, each done while the call is up (a loaded machine may
            # replay the 120 events before the first one, or resume before the second)
            await resynced(ingest, 1)
            server.cut()
            await server.wait_logins(2)
            await resynced(ingest, 2)
            server.resume()
            await replayed_and_closed(server, ingest, tracker, pipeline)
    (row,) = await calls(pool)
    assert (row["status"], row["ext"], row["closed_by"]) == ("Success", "1002", "hangup")
    assert await events_by_ext(pool) == expected("in_queue")["calls"][0]["events"]
    assert [a.get("Action") for a in server.actions].count("CoreShowChannels") == 2


async def test_half_open_socket_is_detected_by_the_watchdog(pool: asyncpg.Pool) -> None:
    server = FakeAmiServer(TRACES / "in_answered.ami.jsonl")
    async with bridge_on(
        server, pool, ping_interval=0.1, ping_timeout=0.2, reconnect_max_delay=0.2
    ) as (ingest, tracker, pipeline):
        async with asyncio.timeout(20):
            server.pause_after(10)
            await server.wait_replayed(10)
            with capture_logs() as logs:
                server.go_silent()
                await server.wait_logins(2)
            assert "ami_ping_timeout_reconnecting" in [e["event"] for e in logs]
            server.resume()
            await replayed_and_closed(server, ingest, tracker, pipeline)
    assert ingest.reconnects >= 1
    (row,) = await calls(pool)
    assert row["status"] == "Success"


async def test_garbage_on_the_wire_loses_no_call(pool: asyncpg.Pool) -> None:
    server = FakeAmiServer(TRACES / "in_ringgroup.ami.jsonl")
    async with bridge_on(server, pool) as (ingest, tracker, pipeline):
        async with asyncio.timeout(20):
            server.pause_after(30)
            await server.wait_replayed(30)
            server.inject(b"this is not AMI\r\n\r\n")
            server.inject(b"Event: Newstate\r\nChannel: \xff\xfe\xfd broken utf-8\r\n\r\n")
            server.inject(b"Event: SomethingAsteriskInvents\r\nFoo: bar\r\n\r\n")
            server.inject(b"Event: VarSet\r\nValue: " + b"x" * (2 << 20) + b"\r\n\r\n")
            server.inject(b"Event: Hangup\r\nUniqueid: 999.999\r\nCause: banana\r\n\r\n")
            server.inject(b":::\r\n: \r\nEvent:\r\n\r\n")
            server.resume()
            await replayed_and_closed(server, ingest, tracker, pipeline)
            protocol = ingest.manager.protocol  # the same connection read all of it
            assert ingest.logins == 1
            assert protocol.oversized >= 1 and protocol.malformed >= 1, "seen and skipped"
    (row,) = await calls(pool)
    assert (row["status"], row["ext"]) == ("Success", "1002")


async def test_unanswered_action_is_not_resent_after_a_reconnect(pool: asyncpg.Pool) -> None:
    """panoramisk re-sends pending actions on reconnect: an Originate would ring twice."""
    server = FakeAmiServer(TRACES / "in_answered.ami.jsonl")
    server.respond_with("Originate", lambda headers: [])  # Asterisk never got to answer
    async with bridge_on(server, pool, reconnect_max_delay=0.2) as (ingest, tracker, pipeline):
        async with asyncio.timeout(20):
            await server.wait_logins(1)
            while not ingest.connected:
                await asyncio.sleep(0.01)
            pending = asyncio.create_task(
                ingest.send_action(
                    {
                        "Action": "Originate",
                        "Channel": "PJSIP/1001",
                        "Exten": "79101234567",
                        "Context": "from-internal",
                        "Priority": "1",
                        "Async": "true",
                    }
                )
            )
            while not any(a.get("Action") == "Originate" for a in server.actions):
                await asyncio.sleep(0.01)
            server.cut()
            with pytest.raises(ConnectionError):
                await pending
            await server.wait_logins(2)
            await asyncio.sleep(0.3)  # panoramisk would re-send on FullyBooted
    assert [a.get("Action") for a in server.actions].count("Originate") == 1


async def test_login_that_never_answers_is_retried(pool: asyncpg.Pool) -> None:
    """A wedged Asterisk accepts TCP and never answers Login: reconnect, do not hang."""
    server = FakeAmiServer(TRACES / "in_answered.ami.jsonl")
    server.respond_with("Login", lambda headers: [])
    async with bridge_on(
        server, pool, ping_interval=0.1, login_timeout=0.3, reconnect_max_delay=0.2
    ):
        async with asyncio.timeout(10):
            while server.connections < 3:
                await asyncio.sleep(0.05)
    assert server.logins == 0


async def test_a_reconnect_while_a_resync_hangs_resyncs_the_new_link(pool) -> None:
    """The snapshot asked for on the first link never comes; the link is cut and comes
    back: the new link gets its own resync (the one of the dead link does not block it),
    and the call goes on as if nothing happened."""
    server = FakeAmiServer(TRACES / "in_queue.ami.jsonl")
    asked: list[str] = []

    def snapshot(headers: dict[str, str]) -> list[str]:
        asked.append(headers.get("ActionID", ""))
        if len(asked) == 1:
            return []  # the first link's answer never comes
        id_line = f"ActionID: {headers.get('ActionID', '')}\r\n"
        items = [
            f"Event: CoreShowChannel\r\n{id_line}" + "".join(f"{k}: {v}\r\n" for k, v in c.items())
            for c in server.live_channels()
        ]
        return [
            f"Response: Success\r\n{id_line}EventList: start\r\n",
            *items,
            f"Event: CoreShowChannelsComplete\r\n{id_line}EventList: Complete\r\n",
        ]

    server.respond_with("CoreShowChannels", snapshot)
    async with bridge_on(server, pool, reconnect_max_delay=0.2) as (ingest, tracker, pipeline):
        async with asyncio.timeout(20):
            server.pause_after(120)
            await server.wait_replayed(120)
            while not asked:
                await asyncio.sleep(0.01)
            assert ingest.resyncs == 0
            server.cut()
            await server.wait_logins(2)
            await resynced(ingest, 1)
            server.resume()
            await replayed_and_closed(server, ingest, tracker, pipeline)
    assert len(asked) == 2
    (row,) = await calls(pool)
    assert (row["status"], row["ext"], row["closed_by"]) == ("Success", "1002", "hangup")
    assert await events_by_ext(pool) == expected("in_queue")["calls"][0]["events"]


async def test_a_call_the_tracker_fails_on_is_logged_closed_and_stored_and_the_rest_goes_on(
    pool: asyncpg.Pool,
) -> None:
    """The fault isolation of the tracker (tests/unit/test_tracker_faults.py), through the
    real pipeline: the fault is logged with the call and the event, the call is stored
    closed by the fault, the other calls as always, and the pipeline keeps running."""
    server = FakeAmiServer(TRACES / "concurrent.ami.jsonl")
    with failing(Grammar, "accept", ANSWERED) as raised, capture_logs() as logs:
        async with bridge_on(server, pool) as (ingest, tracker, pipeline):
            async with asyncio.timeout(20):
                await replayed_and_closed(server, ingest, tracker, pipeline)
    assert raised, "the injected fault was reached"
    (fault,) = [e for e in logs if e["event"] == "tracker_fault_call_closed"]
    assert fault["callid"] == ANSWERED and fault["ami_event"] and "Injected" in fault["error"]
    assert fault["log_level"] == "error" and pipeline.faults == 1
    rows = {r["callid"]: r for r in await calls(pool)}
    assert set(rows) == ALL_CALLS
    assert rows[ANSWERED]["closed_by"] == "fault"
    assert all(r["closed_by"] == "hangup" for c, r in rows.items() if c != ANSWERED)


@pytest.mark.parametrize("stamp", ["nan", "inf", "1e300", "-1"])
async def test_a_timestamp_no_clock_could_say_is_taken_as_the_receipt_time(
    pool: asyncpg.Pool, stamp: str
) -> None:
    """Asterisk's `Timestamp` is epoch seconds; anything else there (garbage on the wire,
    a broken AMI proxy) must not end up as a call's time: the pipeline would fail to store
    a year past 9999, and `nan` compares false to everything."""
    trace = [(m.t, m.raw) for m in read_trace(TRACES / "in_answered.ami.jsonl")]
    last_hangup = max(i for i, (_, raw) in enumerate(trace) if raw.startswith("Event: Hangup\r"))
    t, raw = trace[last_hangup]
    trace[last_hangup] = (t, re.sub(r"Timestamp: [0-9.]+", f"Timestamp: {stamp}", raw))
    assert trace[last_hangup][1] != raw
    server = FakeAmiServer(trace)
    async with bridge_on(server, pool) as (ingest, tracker, pipeline):
        async with asyncio.timeout(20):
            await replayed_and_closed(server, ingest, tracker, pipeline)
    (row,) = await calls(pool)
    assert row["status"] == "Success"
    assert row["ended_at"].year < 2100 and row["ended_at"] >= row["started_at"]
