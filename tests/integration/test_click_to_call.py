"""Click-to-call through the whole daemon: the Originate as the fake Asterisk receives it,
the call id returned at once, and the call tracked, stored and sent under that id.

On the Originate the fake AMI replays the lab's recorded click-to-call (Asterisk 22,
PJSIP) with its first channel's Uniqueid and Linkedid rewritten to the pre-assigned
ChannelId, as Asterisk does with a ChannelId."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import pytest

from bridge.api.services import DialError
from bridge.daemon import Bridge
from bridge.devtools.fake_ami import FakeAmiServer
from bridge.devtools.fake_crm import FakeCrm
from bridge.devtools.fake_directory import FakePbx
from bridge.devtools.traces import traces_dir
from tests.support.bridge import bridge_settings, leading, running_bridge
from tests.support.traces import TRACES

pytestmark = pytest.mark.integration

PBX = {"users": {"1001": "ivanov"}, "numbers": {"74957654321": "Main line"}}


@dataclass
class Lab:
    server: FakeAmiServer
    crm: FakeCrm
    bridge: Bridge
    dsn: str

    def originates(self) -> list[str]:
        return [raw for raw in self.server.raw_actions if raw.startswith("Action: Originate")]


@pytest.fixture
async def lab(pg_dsn: str) -> AsyncIterator[Lab]:
    server = FakeAmiServer(speed=0.2)  # the recorded call, five times faster
    server.pbx = FakePbx.from_config(traces_dir() / "asterisk-config")
    server.on_originate(TRACES / "click_to_call.ami.jsonl")
    crm = FakeCrm(token="tok")
    settings = bridge_settings(pg_dsn, await server.start(), await crm.start(), pbx=PBX)
    try:
        async with running_bridge(settings) as bridge:
            await leading(bridge)
            yield Lab(server, crm, bridge, pg_dsn)
    finally:
        await server.stop()
        await crm.stop()


def headers(raw: str) -> list[tuple[str, str]]:
    return [tuple(line.split(": ", 1)) for line in raw.splitlines()]  # type: ignore[misc]


async def test_the_call_is_placed_and_tracked_under_the_id_it_returned(lab: Lab) -> None:
    assert lab.bridge.dialer is not None
    callid = await lab.bridge.dialer.call("ivanov", "8 (910) 123-45-67")
    assert not lab.crm.requests("history"), "the id comes back before the call is over"
    (raw,) = lab.originates()
    sent = headers(raw)
    assert [h for h in sent if h[0] != "ActionID"] == [
        ("Action", "Originate"),
        ("Async", "true"),
        ("CallerID", '"79101234567" <79101234567>'),
        ("Channel", "PJSIP/1001"),
        ("ChannelId", callid),
        ("Context", "from-internal"),
        ("Exten", "79101234567"),
        ("Priority", "1"),
        ("Timeout", "30000"),
        ("Variable", f"CRM_CALL_ID={callid}"),
    ]
    (history,) = await lab.crm.wait_count("history", 1, timeout=20)
    assert history.fields["callid"] == callid
    assert (history.fields["type"], history.fields["status"]) == ("out", "Success")
    assert (history.fields["user"], history.fields["ext"]) == ("ivanov", "1001")
    assert (history.fields["phone"], history.fields["diversion"]) == ("79101234567", "74957654321")
    assert history.fields["telnum"] == ""  # ivanov has no direct number of his own
    events = lab.crm.events_by_call()[callid]
    assert [(e.fields["type"], e.fields["ext"]) for e in events] == [
        ("OUTGOING", "1001"),
        ("ACCEPTED", "1001"),
        ("COMPLETED", "1001"),
    ]
    assert {e.fields["telnum_name"] for e in events} == {"Main line"}
    conn = await asyncpg.connect(lab.dsn)
    try:
        call = await conn.fetchrow(
            "SELECT direction, status, user_login, ext FROM calls WHERE callid = $1", callid
        )
        stored = await conn.fetch(
            "SELECT type, ext FROM call_events WHERE callid = $1 ORDER BY seq", callid
        )
        legs = await conn.fetch("SELECT uniqueid, kind FROM call_legs WHERE callid = $1", callid)
    finally:
        await conn.close()
    assert dict(call) == {
        "direction": "out",
        "status": "Success",
        "user_login": "ivanov",
        "ext": "1001",
    }
    assert [(r["type"], r["ext"]) for r in stored] == [
        ("OUTGOING", "1001"),
        ("ACCEPTED", "1001"),
        ("COMPLETED", "1001"),
    ]
    assert {r["uniqueid"]: r["kind"] for r in legs}[callid] == "extension", (
        "the employee's phone is the channel Asterisk created with the ChannelId"
    )


async def test_unknown_employees_and_bad_numbers_are_refused(lab: Lab) -> None:
    assert lab.bridge.dialer is not None
    for employee, number in [
        ("nobody", "+79101234567"),
        ("ivanov", "112"),
        ("trunk", "+79101234567"),
    ]:
        with pytest.raises(DialError) as refused:
            await lab.bridge.dialer.call(employee, number)
        assert refused.value.status == 400
    # by extension, a phone Asterisk listed under its own extension
    assert await lab.bridge.dialer.call("1002", "+79101234567")
    assert "Channel: PJSIP/1002" in lab.originates()[0]


async def test_asterisk_refusing_the_originate(lab: Lab) -> None:
    assert lab.bridge.dialer is not None

    def no_such_extension(headers: dict[str, str]) -> list[str]:
        aid = headers["ActionID"]
        return [f"Response: Error\r\nActionID: {aid}\r\nMessage: Extension does not exist.\r\n"]

    lab.server.respond_with("Originate", no_such_extension)
    with pytest.raises(DialError) as refused:
        await lab.bridge.dialer.call("ivanov", "+79101234567")
    assert refused.value.status == 400 and "Extension does not exist" in refused.value.message


async def test_no_ami_link_no_call(lab: Lab) -> None:
    assert lab.bridge.dialer is not None
    await lab.server.stop()  # Asterisk is gone
    async with asyncio.timeout(10):
        while lab.bridge.term is not None and lab.bridge.term.ingest.connected:
            await asyncio.sleep(0.02)
    with pytest.raises(DialError) as refused:
        await lab.bridge.dialer.call("ivanov", "+79101234567")
    assert refused.value.status == 503


async def test_a_standby_bridge_places_no_call(lab: Lab) -> None:
    """A second bridge of the same PBX waits as standby: it has no AMI link to dial on."""
    settings = bridge_settings(lab.dsn, lab.server.port, lab.crm.url, pbx=PBX)
    async with running_bridge(settings) as standby:
        async with asyncio.timeout(10):
            while not standby.database_ready.is_set():
                await asyncio.sleep(0.02)
        assert standby.term is None and standby.dialer is not None
        assert standby.view.employee("ivanov") is not None, "it reads the same directory"
        with pytest.raises(DialError) as refused:
            await standby.dialer.call("ivanov", "+79101234567")
        assert refused.value.status == 503
    assert not lab.originates()


@pytest.mark.parametrize(
    ("how", "answer_within", "said"),
    [
        ("link dropped", 5.0, "dropped before Asterisk answered"),  # the ingest fails it
        ("no answer in time", 0.5, "did not answer the Originate in time"),
    ],
)
async def test_an_originate_is_never_sent_twice(
    lab: Lab, how: str, answer_within: float, said: str
) -> None:
    """Asterisk takes the Originate but the answer never comes; after the reconnect
    nothing is sent again (panoramisk alone would re-send it: a customer rung twice)."""
    dialer = lab.bridge.dialer
    assert dialer is not None
    dialer.answer_within = answer_within
    lab.server.respond_with("Originate", lambda headers: [])  # taken, never answered
    logins = lab.server.logins
    placing = asyncio.create_task(dialer.call("ivanov", "+79101234567"))
    async with asyncio.timeout(5):
        while not lab.originates():
            await asyncio.sleep(0.01)
    if how == "link dropped":
        lab.server.cut()
    async with asyncio.timeout(2.0):
        with pytest.raises(DialError) as refused:
            await placing
    assert refused.value.status == 503 and said in refused.value.message
    assert "not sent again" in refused.value.message
    if how == "no answer in time":
        lab.server.cut()
    async with asyncio.timeout(10):
        await lab.server.wait_logins(logins + 1)
    await leading(lab.bridge)
    await asyncio.sleep(0.5)  # after FullyBooted panoramisk would send what it kept
    assert len(lab.originates()) == 1
