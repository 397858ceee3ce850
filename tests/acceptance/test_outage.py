"""PostgreSQL goes away under a running bridge, and a bridge starts while it is away.

Asterisk does not buffer AMI for anyone: calls that start and end during a database
outage exist only in what the bridge tracked. They must reach the CRM once the database
is back, each exactly once; meanwhile FastAGI keeps answering and /readyz says degraded.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import asyncpg
import pytest

from bridge.devtools.endless import EndlessReplay
from bridge.devtools.fake_ami import FakeAmiServer
from bridge.devtools.fake_crm import FakeCrm
from bridge.devtools.local_postgres import LocalPostgres
from bridge.store.leader import lock_key
from tests.support.agi_client import agi_call, asterisk_env, dialplan_agi, give_rating
from tests.support.daemon import Ports, running_daemon, write_config
from tests.support.traces import TRACES, expected, scenario_names

pytestmark = pytest.mark.integration

OUTAGE = 60.0  # seconds PostgreSQL is down
SPEED = 4.0  # the recorded calls, four times faster


def expected_outcomes(names: list[str]) -> Counter[tuple[str, str, str]]:
    return Counter(
        (c["history"]["type"], c["history"]["status"], c["history"].get("ext") or "")
        for n in names
        for c in expected(n)["calls"]
    )


async def contact_lookup(agi_port: int, callid: str) -> dict[str, str]:
    line = dialplan_agi("crm-bridge-contact")
    env = asterisk_env(line, variables={"CHANNEL(linkedid)": callid}, callerid="+79161234567")
    call = await agi_call(agi_port, env)
    return call.set_vars


async def test_calls_during_a_postgres_outage_reach_the_crm_once(tmp_path) -> None:
    names = scenario_names()
    want = expected_outcomes(names)
    replay = EndlessReplay([TRACES / f"{n}.ami.jsonl" for n in names])
    server = FakeAmiServer(replay.round(time.time()), speed=1 / SPEED)
    crm = FakeCrm(token="tok", contact_answer={"contact_name": "Anna Ivanova"})
    with LocalPostgres(durable=True) as pg:
        pg.start()
        dsn = pg.create_database("bridge")
        ports = Ports(ami=await server.start())
        config = write_config(tmp_path / "bridge.toml", ports, dsn, await crm.start())
        try:
            async with running_daemon(config, ports) as bridge:
                (first, *_) = await crm.wait_count("history", 2, timeout=60)  # under way
                await asyncio.to_thread(pg.stop, "fast")
                down_at = time.monotonic()
                await bridge.wait_log("store_unavailable_buffering", within=OUTAGE / 2)
                status, body = await bridge.get("/readyz")
                assert status == 503 and body["status"] == "degraded", body
                assert body["checks"]["database"] is False and body["role"] == "leader"
                assert body["checks"]["ami"] is True, "AMI is still followed"
                took = time.monotonic()
                found = await contact_lookup(ports.agi, "1795000000.1")
                assert found.get("CRM_CONTACT_NAME") == "Anna Ivanova"
                assert time.monotonic() - took < 1.6, "FastAGI needs no database"
                took = time.monotonic()
                await give_rating(ports.agi, first.fields["callid"], "4")
                assert time.monotonic() - took < 1.6, "a rating is held, the channel let go"
                await server.wait_done()  # every call of the replay happened meanwhile
                await asyncio.sleep(max(0.0, OUTAGE - (time.monotonic() - down_at)))
                buffered = (await bridge.get("/readyz"))[1]["buffered"]
                assert buffered > 0, "the calls of the outage are held in memory"
                await asyncio.to_thread(pg.start)
                await bridge.wait_log("leader_lock_retaken", within=30)
                await crm.wait_for(lambda: len(crm.history().unique) >= sum(want.values()), 60)
                await asyncio.sleep(1.0)  # a duplicate would show up by now
                status, body = await bridge.get("/readyz")
                assert status == 200 and body["buffered"] == 0, body
                (rating,) = await crm.wait_count("rating", 1, timeout=30)
                assert (rating.fields["callid"], rating.fields["rating"]) == (
                    first.fields["callid"],
                    "4",
                )
            histories = crm.requests("history")
            assert len(histories) == sum(want.values()), "every history exactly once"
            assert len({h.fields["callid"] for h in histories}) == len(histories)
            got = Counter(
                (h.fields["type"], h.fields["status"], h.fields["ext"]) for h in histories
            )
            assert got == want
            assert not [line for line in bridge.lines if "Traceback" in line]
        finally:
            await server.stop()
            await crm.stop()


async def test_started_while_postgres_is_down_it_waits_and_serves_agi(tmp_path) -> None:
    server = FakeAmiServer(TRACES / "in_answered.ami.jsonl")
    crm = FakeCrm(token="tok", contact_answer={"contact_name": "Boris"})
    with LocalPostgres(durable=True) as pg:
        pg.start()
        dsn = pg.create_database("bridge")
        await asyncio.to_thread(pg.stop, "fast")
        ports = Ports(ami=await server.start())
        config = write_config(tmp_path / "bridge.toml", ports, dsn, await crm.start())
        try:
            async with running_daemon(config, ports) as bridge:
                await bridge.wait_log("database_unavailable_retrying", within=20)
                status, body = await bridge.get("/readyz")
                assert status == 503 and body["checks"]["database"] is False
                assert "ami" not in body["checks"], "not logged in to AMI: not said to be"
                found = await contact_lookup(ports.agi, "1795000000.2")
                assert found.get("CRM_CONTACT_NAME") == "Boris"
                assert server.logins == 0, "no AMI before the PBX lock"
                await asyncio.to_thread(pg.start)
                await bridge.wait_log("database_ready", within=60)
                (history,) = await crm.wait_count("history", 1, timeout=30)
                assert history.fields["status"] == "Success"
                retries = bridge.logs("database_unavailable_retrying")
                assert retries and all("error" in r and "retry_in" in r for r in retries)
                assert not [line for line in bridge.lines if "Traceback" in line]
                assert bridge.proc.returncode is None
        finally:
            await server.stop()
            await crm.stop()


async def test_a_leader_that_lost_its_lock_writes_its_buffer_then_steps_down(tmp_path) -> None:
    """While PostgreSQL was away another bridge took the PBX lock: this one writes what it
    tracked meanwhile (nothing is lost) and becomes the standby."""
    server = FakeAmiServer(TRACES / "in_answered.ami.jsonl", speed=1.0)
    server.pause_after(30)  # the call is ringing when the database goes
    crm = FakeCrm(token="tok")
    with LocalPostgres(durable=True) as pg:
        pg.start()
        dsn = pg.create_database("bridge")
        ports = Ports(ami=await server.start())
        config = write_config(tmp_path / "bridge.toml", ports, dsn, await crm.start())
        other: asyncpg.Connection | None = None
        try:
            async with running_daemon(config, ports) as bridge:
                await crm.wait_count("event", 1, timeout=30)
                await asyncio.to_thread(pg.stop, "fast")
                await bridge.wait_log("leader_lock_lost_tracking_on", within=20)
                server.resume()
                await server.wait_done()  # the call ends while the database is away
                await asyncio.to_thread(pg.start)
                async with asyncio.timeout(10):  # "another bridge" is quicker to the lock
                    while other is None:
                        try:
                            other = await asyncpg.connect(dsn)
                        except OSError:
                            await asyncio.sleep(0.01)
                    assert await other.fetchval("SELECT pg_try_advisory_lock($1)", lock_key("lab"))
                await bridge.wait_log("leader_lock_taken_by_another_bridge", within=30)
                await bridge.wait_log("stepped_down_to_standby", within=30)
                (history,) = await crm.wait_count("history", 1, timeout=30)
                assert history.fields["status"] == "Success"
                status, body = await bridge.get("/readyz")
                assert body["role"] == "standby", body
                assert status == 200 and "ami" not in body["checks"], body
                await other.close()  # the other bridge goes: this one leads again
                other = None
                await bridge.wait_log("bridge_tracking", within=10, count=2)
                async with asyncio.timeout(20):
                    while (await bridge.get("/readyz"))[1]["role"] != "leader":
                        await asyncio.sleep(0.2)
            types = [r.fields["type"] for r in crm.requests("event")]
            assert types == ["INCOMING", "ACCEPTED", "COMPLETED"], types
        finally:
            if other is not None:
                await other.close()
            await server.stop()
            await crm.stop()
