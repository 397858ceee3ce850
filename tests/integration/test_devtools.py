"""The dev tools the other tests rely on: a real Postgres and a trace-replaying fake AMI.

Why: if these lie (lost events, wrong framing, a cluster that cannot restart after a
crash), every bridge test built on them would lie too; so they are checked against the
real clients the bridge uses (asyncpg, panoramisk's Manager).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest
from panoramisk import Manager
from panoramisk.message import Message

from bridge.devtools.fake_ami import FakeAmiServer
from bridge.devtools.local_postgres import LocalPostgres
from bridge.devtools.traces import traces_dir
from tests.support.ports import free_port

pytestmark = pytest.mark.integration

TRACE = traces_dir() / "in_answered.ami.jsonl"
# The recorded events after the banner and the Login response (FullyBooted first).
RECORDED = [json.loads(line)["raw"] for line in TRACE.read_text().splitlines()[2:]]
FIRST_HANGUP = next(i for i, r in enumerate(RECORDED) if r.startswith("Event: Hangup\r\n"))
BOTH_BRIDGED = [i for i, r in enumerate(RECORDED) if r.startswith("Event: BridgeEnter\r\n")][1]
# RECORDED[0] (FullyBooted) is sent at login, so pause_after(n) stops after RECORDED[n].


def key(msg: Message) -> tuple[str, str, str]:
    """Identity of an event: name, channel, timestamp (unique within the trace)."""
    return (msg.event, msg.uniqueid, msg.timestamp)


EXPECTED = [key(Message.from_line(r.strip())) for r in RECORDED]


# -- LocalPostgres ------------------------------------------------------------------------
async def test_pg_dsn_select_1(pg_dsn: str) -> None:
    conn = await asyncpg.connect(pg_dsn)
    try:
        assert await conn.fetchval("select 1") == 1
        assert await conn.fetchval("show fsync") == "off"
        assert await conn.fetchval("show max_connections") == "200"
    finally:
        await conn.close()


def ephemeral() -> range:
    low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    return range(low, high + 1)


# A machine whose ephemeral range starts below 21000 leaves no room outside it: there the
# helpers fall back to ports the kernel hands out, and these two tests check nothing more.
ROOM = ephemeral().start > 21000


def test_pg_port_is_never_one_a_bind_to_port_0_gets(pg_dsn: str) -> None:
    """While a cluster is down (a restart, an outage test), no other test's server can take
    its port: servers binding port 0 get ports of the ephemeral range, this one is not."""
    port = urlsplit(pg_dsn).port
    assert port is not None and (port not in ephemeral() or not ROOM)


def test_ports_given_to_servers_ahead_are_never_ones_a_bind_to_port_0_gets() -> None:
    ports = [free_port() for _ in range(50)]
    assert all(0 < port < 65536 for port in ports)
    if ROOM:
        assert len(set(ports)) == 50, "in turn: a port just given is not given again at once"
        assert not any(port in ephemeral() for port in ports)


async def test_pg_kill_then_start_recovers() -> None:
    with LocalPostgres(durable=True) as pg:
        dsn = pg.create_database("crash")
        conn = await asyncpg.connect(dsn)
        await conn.execute("create table t (x int); insert into t values (42)")
        pg.kill()
        assert not pg.is_running()
        with pytest.raises((asyncpg.PostgresConnectionError, ConnectionError, OSError)):
            await conn.fetchval("select 1")
        conn.terminate()
        pg.start()
        conn = await asyncpg.connect(dsn)
        try:
            assert await conn.fetchval("select x from t") == 42
            assert await conn.fetchval("show fsync") == "on"
        finally:
            await conn.close()
    assert not pg.base_dir.exists()


# -- FakeAmiServer + panoramisk -------------------------------------------------------------
class Inbox(list[Message]):
    """Events a Manager received, via a plain registered callback."""

    def __init__(self) -> None:
        super().__init__()
        self._grew = asyncio.Event()

    def add(self, _manager: Manager, event: Message) -> None:
        self.append(event)
        self._grew.set()

    async def wait_len(self, n: int) -> None:
        """Until ``n`` events arrived (no timeout: wrap in ``asyncio.timeout``)."""
        while len(self) < n:
            self._grew.clear()
            await self._grew.wait()


Connect = Callable[..., Awaitable[tuple[Manager, Inbox]]]


@pytest.fixture
async def server() -> AsyncIterator[FakeAmiServer]:
    srv = FakeAmiServer(TRACE)
    await srv.start()
    yield srv
    await srv.stop()


@pytest.fixture
async def connect() -> AsyncIterator[Connect]:
    """Log a real panoramisk Manager in; every event lands in the returned list."""
    managers: list[Manager] = []

    async def _connect(
        srv: FakeAmiServer, secret: str = "bridge", reconnect_timeout: int = 0
    ) -> tuple[Manager, Inbox]:
        events = Inbox()
        manager = Manager(
            host="127.0.0.1",
            port=srv.port,
            username="bridge",
            secret=secret,
            loop=asyncio.get_running_loop(),
            reconnect_timeout=reconnect_timeout,
            ping_delay=60,
        )
        manager.register_event("*", events.add)
        managers.append(manager)
        await manager.connect()
        return manager, events

    yield _connect
    for manager in managers:
        manager.close()


async def test_login_and_full_replay_in_order(server: FakeAmiServer, connect: Connect) -> None:
    manager, events = await connect(server)
    async with asyncio.timeout(5):
        await server.wait_done()
    async with asyncio.timeout(5):
        await events.wait_len(85)
    await asyncio.sleep(0.05)  # nothing more may come
    assert manager.authenticated
    assert len(events) == 85  # FullyBooted (from login) + the 84 recorded events after it
    assert [key(e) for e in events] == EXPECTED
    assert events[0].event == "FullyBooted" and events[1].event == "SuccessfulAuth"
    assert server.actions[0]["Action"] == "Login" and server.logins == 1


async def test_ping_answered(server: FakeAmiServer, connect: Connect) -> None:
    manager, _ = await connect(server)
    async with asyncio.timeout(5):
        resp = await manager.send_action({"Action": "Ping"})
    assert resp.success and resp.ping == "Pong" and resp.timestamp
    async with asyncio.timeout(5):
        other = await manager.send_action({"Action": "Status"})
    assert other.response == "Success"
    assert [a["Action"] for a in server.actions] == ["Login", "Ping", "Status"]


async def test_core_show_channels_mid_replay(server: FakeAmiServer, connect: Connect) -> None:
    server.pause_after(BOTH_BRIDGED)  # both legs up and in the bridge
    manager, events = await connect(server)
    async with asyncio.timeout(5):
        await server.wait_replayed(BOTH_BRIDGED)
        resp = await manager.send_action({"Action": "CoreShowChannels"})
    first, *items, last = resp
    assert first.response == "Success" and first.eventlist == "start"
    assert last.event == "CoreShowChannelsComplete" and last.listitems == "2"
    chans = {m.channel: m for m in items}
    assert sorted(chans) == ["PJSIP/1001-00000001", "PJSIP/trunk-00000000"]
    assert {m.linkedid for m in items} == {"1795346414.0"}
    assert chans["PJSIP/trunk-00000000"].uniqueid == "1795346414.0"
    assert all(m.channelstatedesc == "Up" and m.bridgeid for m in items)
    assert chans["PJSIP/trunk-00000000"].exten == "74957654321"
    assert not any(e.event.startswith("CoreShowChannel") for e in events)  # went to resp

    server.resume()
    async with asyncio.timeout(5):
        await server.wait_done()
        resp = await manager.send_action({"Action": "CoreShowChannels"})
    assert resp[-1].listitems == "0" and len(resp) == 2


async def test_cut_reconnects_and_resumes(server: FakeAmiServer, connect: Connect) -> None:
    server.pause_after(40)
    _, events = await connect(server)
    async with asyncio.timeout(5):
        await server.wait_replayed(40)
    async with asyncio.timeout(5):
        await events.wait_len(41)
    server.cut()
    server.resume()  # held until panoramisk is back: nothing is sent into the void
    async with asyncio.timeout(10):
        await server.wait_logins(2)
        await server.wait_done()
    async with asyncio.timeout(5):
        await events.wait_len(86)
    assert server.connections == 2 and server.dropped == []
    assert events[41].event == "FullyBooted"  # the second login
    assert [key(e) for i, e in enumerate(events) if i != 41] == EXPECTED


async def test_cut_at_full_speed_loses_nothing(server: FakeAmiServer, connect: Connect) -> None:
    _, events = await connect(server)
    async with asyncio.timeout(5):
        await server.wait_replayed(10)
    server.cut()
    async with asyncio.timeout(10):
        await server.wait_logins(2)
        await server.wait_done()
    async with asyncio.timeout(5):
        await events.wait_len(86)
    relogin = [i for i, e in enumerate(events) if e.event == "FullyBooted"][1]
    assert [key(e) for i, e in enumerate(events) if i != relogin] == EXPECTED


async def test_drop_while_disconnected(connect: Connect) -> None:
    srv = FakeAmiServer(TRACE, drop_while_disconnected=True)
    await srv.start()
    manager, events = await connect(srv)
    try:
        srv.pause_after(30)
        async with asyncio.timeout(5):
            await srv.wait_replayed(30)
        async with asyncio.timeout(5):
            await events.wait_len(31)
        srv.pause_after(FIRST_HANGUP)  # PJSIP/1001 hangs up while the bridge is away
        srv.cut()
        async with asyncio.timeout(5):
            await srv.wait_replayed(FIRST_HANGUP)
            await srv.wait_logins(2)
        assert srv.dropped == RECORDED[31 : FIRST_HANGUP + 1]
        assert [c["Channel"] for c in srv.live_channels()] == ["PJSIP/trunk-00000000"]
        srv.resume()
        async with asyncio.timeout(5):
            await srv.wait_done()
        async with asyncio.timeout(5):
            await events.wait_len(85 - len(srv.dropped) + 1)
        got = [key(e) for i, e in enumerate(events) if i != 31]
        assert got == EXPECTED[:31] + EXPECTED[FIRST_HANGUP + 1 :]
    finally:
        manager.close()
        await srv.stop()


async def test_silent_and_injected_garbage(server: FakeAmiServer, connect: Connect) -> None:
    manager, events = await connect(server)
    async with asyncio.timeout(5):
        await server.wait_done()
    async with asyncio.timeout(5):
        await events.wait_len(85)
    server.inject(b"\xff\xfe garbage\r\nX-" + b"a" * 100_000 + b": y\r\n\r\n")
    server.inject(b"Event: Custom\r\nNote: after garbage\r\n\r\n")
    async with asyncio.timeout(5):
        await events.wait_len(86)  # the garbage is skipped, the Custom event is parsed
    assert events[-1].event == "Custom"
    server.go_silent()
    ping = manager.send_action({"Action": "Ping"})
    await asyncio.sleep(0.2)
    assert not ping.done()  # half-open: the socket is up but nobody answers
    assert server.actions[-1]["Action"] == "Ping"


async def test_wrong_secret_fails(server: FakeAmiServer, connect: Connect) -> None:
    manager, events = await connect(server, secret="wrong", reconnect_timeout=60)
    async with asyncio.timeout(5):
        resp = await manager.authenticated_future
    assert not resp.success and resp.message == "Authentication failed"
    await asyncio.sleep(0.05)
    assert not manager.authenticated
    assert events == [] and server.logins == 0 and server.replayed == 0
