"""The directory as CRMs see it, through the whole daemon: the webhooks' `user` is the
directory's login, `telnum` the employee's direct number and `telnum_name` the name of the
company number the call came in on (`diversion`). Fake AMI over TCP (the lab's recorded
call and config), real PostgreSQL, a CRM receiving the POSTs."""

from __future__ import annotations

import asyncio

import pytest

from bridge.devtools.fake_ami import FakeAmiServer
from bridge.devtools.fake_crm import FakeCrm
from bridge.devtools.fake_directory import FakePbx
from bridge.devtools.traces import traces_dir
from bridge.store import directory as store
from bridge.store.directory import User
from tests.support.bridge import bridge_settings, leading, running_bridge
from tests.support.traces import TRACES

pytestmark = pytest.mark.integration

PBX = {"users": {"1001": "ivanov"}, "numbers": {"74957654321": "Main line"}}


async def test_webhooks_carry_the_direct_number_and_the_directory_login(pg_dsn: str) -> None:
    server = FakeAmiServer(TRACES / "in_answered.ami.jsonl")
    server.pbx = FakePbx.from_config(traces_dir() / "asterisk-config")
    server.pause_after(0)  # the call starts once the directory was read
    crm = FakeCrm(token="tok")
    settings = bridge_settings(pg_dsn, await server.start(), await crm.start(), pbx=PBX)
    try:
        async with running_bridge(settings) as bridge:
            await leading(bridge)
            # an API client renames ivanov's phone and gives him a direct number; the next
            # refresh reaches the tracker and the outbox
            assert bridge.pool is not None
            await store.upsert_user(
                bridge.pool, "lab", User("i.petrov", "Ivan", "1001", "74957650001", source="api")
            )
            await bridge.sync.reload()
            server.resume()
            (history,) = await crm.wait_count("history", 1, timeout=20)
            events = crm.requests("event")
    finally:
        await server.stop()
        await crm.stop()
    assert [e.fields["type"] for e in events] == ["INCOMING", "ACCEPTED", "COMPLETED"]
    for e in events:
        assert (e.fields["telnum"], e.fields["telnum_name"]) == ("74957650001", "Main line")
        assert (e.fields["diversion"], e.fields["user"], e.fields["ext"]) == (
            "74957654321",
            "i.petrov",
            "1001",
        )
    assert (history.fields["telnum"], history.fields["diversion"]) == ("74957650001", "74957654321")
    assert (history.fields["user"], history.fields["status"]) == ("i.petrov", "Success")


async def test_the_running_daemon_learns_the_directory_at_each_login(pg_dsn: str) -> None:
    server = FakeAmiServer()
    server.pbx = FakePbx.from_config(traces_dir() / "asterisk-config")
    crm = FakeCrm(token="tok")
    settings = bridge_settings(pg_dsn, await server.start(), await crm.start(), pbx=PBX)
    try:
        async with running_bridge(settings) as bridge:
            await leading(bridge)
            assert bridge.pool is not None
            users = {u.login: u.ext for u in await store.users(bridge.pool, "lab")}
            assert users == {"ivanov": "1001", "1002": "1002", "1003": "1003"}
            assert bridge.term is not None
            assert bridge.term.tracker.users == {"1001": "ivanov", "1002": "1002", "1003": "1003"}
            assert bridge.directory.resolve("1003") == "1003", "the AGI routes know the phones"
            # Asterisk restarts with a new phone: the next login reads it
            server.pbx.endpoints["1004"] = '"Anna Kim" <1004>'
            read_at = bridge.sync.read_at
            server.cut()
            async with asyncio.timeout(20):
                while bridge.sync.read_at == read_at:
                    await asyncio.sleep(0.05)
            assert (await store.user(bridge.pool, "lab", "1004")) == User(
                "1004", "Anna Kim", "1004", source="pbx"
            )
            assert bridge.term.tracker.users["1004"] == "1004"
    finally:
        await server.stop()
        await crm.stop()
