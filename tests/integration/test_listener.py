"""The capped listener under idle, slow and busy clients: HTTP (aiohttp) and FastAGI.

Small caps make the crowd cheap; the daemon under the reviewer's 1,100-connection attack
is in test_hostile_clients.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from aiohttp import web

from bridge.agi import AgiServer, start_agi_server
from bridge.api.server import HttpServer, start_http
from bridge.config import Settings
from tests.support.agi_client import (
    FakeCrm,
    agi_call,
    asterisk_env,
    dialplan_agi,
    encode_env,
)
from tests.support.hostile import IdleCrowd, eof_after, timed_get
from tests.support.ports import free_port

PHONE = "79101234567"


def make_app(slow: float = 0.5) -> web.Application:
    async def ping(_: web.Request) -> web.Response:
        return web.Response(text="pong")

    async def slow_handler(_: web.Request) -> web.Response:
        await asyncio.sleep(slow)
        return web.Response(text="done")

    app = web.Application()
    app.router.add_get("/ping", ping)
    app.router.add_get("/slow", slow_handler)
    return app


@asynccontextmanager
async def http(
    *, max_connections: int = 8, header_timeout: float = 5.0, keepalive: float = 15.0
) -> AsyncIterator[HttpServer]:
    server = await start_http(
        make_app(),
        "127.0.0.1",
        0,
        max_connections=max_connections,
        header_timeout=header_timeout,
        keepalive=keepalive,
    )
    try:
        yield server
    finally:
        await server.close(grace=1.0)


@asynccontextmanager
async def crowd() -> AsyncIterator[IdleCrowd]:
    c = IdleCrowd()
    try:
        yield c
    finally:
        c.close()


async def keepalive_connection(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A client that made one request and keeps the connection for the next."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /ping HTTP/1.1\r\nHost: bridge\r\n\r\n")
    await writer.drain()
    assert (await reader.readline()).startswith(b"HTTP/1.1 200")
    while await reader.readline() != b"\r\n":
        pass
    assert await reader.readexactly(4) == b"pong"
    return reader, writer


# --------------------------------------------------------------------------- HTTP


async def test_idle_crowd_cannot_lock_out_a_request() -> None:
    """Waiting for the crowd's header timeouts would take 5 s; making room takes rounds of
    8 connections that have been silent for 0.1 s."""
    async with http(max_connections=8) as server, crowd() as idle:
        await idle.open(server.port, 60)
        status, seconds = await timed_get(server.port, "/ping")
        assert status == 200 and seconds < 1.0, seconds
        assert server.listener.active <= 8
        stats = server.stats()
        assert stats["accepted"] >= 61 and stats["shed_idle"] >= 53, stats
        assert stats["accept_errors"] == 0 and stats["saturated"] == 0
        await asyncio.sleep(0.05)
        assert idle.closed_by_server() >= 53, "the oldest idle ones made room"


async def test_header_timeout_closes_silent_and_slow_clients() -> None:
    async with http(header_timeout=0.3) as server:
        _, silent = await asyncio.open_connection("127.0.0.1", server.port)
        reader, slow = await asyncio.open_connection("127.0.0.1", server.port)
        slow.write(b"GET /ping HTTP/1.1\r\n")

        async def drip() -> None:  # a header byte every 50 ms: never a complete head
            for _ in range(40):
                slow.write(b"X")
                await asyncio.sleep(0.05)

        dripping = asyncio.create_task(drip())
        seconds = await eof_after(reader, limit=3)
        dripping.cancel()
        assert 0.25 < seconds < 1.5, seconds  # the drip would go on for 2 s
        async with asyncio.timeout(2):  # the silent one too
            while server.stats()["head_timeouts"] < 2:
                await asyncio.sleep(0.01)
        assert server.stats()["head_timeouts"] == 2
        assert server.listener.active == 0
        silent.close()
        slow.close()
        status, _ = await timed_get(server.port, "/ping")  # a complete head in time
        assert status == 200


async def test_keepalive_closes_an_idle_connection() -> None:
    async with http(keepalive=0.3) as server:
        reader, writer = await keepalive_connection(server.port)
        try:
            seconds = await eof_after(reader, limit=3)
        finally:
            writer.close()
        assert 0.2 < seconds < 1.5, seconds  # aiohttp rounds its timers up to 1 s at most
        await asyncio.sleep(0.05)
        assert server.listener.active == 0


async def test_keepalive_idle_connections_make_room_too() -> None:
    """aiohttp's own idea of idle (see aiohttp_idle): no request in progress, none queued."""
    async with http(max_connections=4) as server:
        kept = [await keepalive_connection(server.port) for _ in range(4)]
        try:
            assert server.listener.active == 4
            status, seconds = await timed_get(server.port, "/ping")
            assert status == 200 and seconds < 1.0, seconds  # not keepalive's 15 s
            assert server.stats()["shed_idle"] >= 1
            oldest_reader = kept[0][0]
            assert await eof_after(oldest_reader, limit=1) < 1, "the oldest went first"
        finally:
            for _, writer in kept:
                writer.close()


async def test_busy_connections_are_never_closed_to_make_room() -> None:
    async with http(max_connections=2) as server:
        busy = [asyncio.create_task(timed_get(server.port, "/slow")) for _ in range(2)]
        await asyncio.sleep(0.1)
        status, seconds = await timed_get(server.port, "/ping")  # waits for a slot
        assert status == 200 and 0.3 < seconds < 1.5, seconds
        assert [s for s, _ in await asyncio.gather(*busy)] == [200, 200]
        stats = server.stats()
        assert stats["saturated"] >= 1 and stats["shed_idle"] == 0, stats


async def test_close_lets_a_request_finish_and_refuses_newcomers() -> None:
    server = await start_http(
        make_app(slow=0.3),
        "127.0.0.1",
        0,
        max_connections=8,
        header_timeout=5,
        keepalive=15,
    )
    port = server.port
    request = asyncio.create_task(timed_get(port, "/slow"))
    await asyncio.sleep(0.1)
    async with crowd() as idle:
        await idle.open(port, 3)
        await server.close(grace=2.0)
        assert (await request)[0] == 200
        assert server.listener.active == 0
        assert idle.closed_by_server() == 3
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)


# --------------------------------------------------------------------------- FastAGI


class NoRatings:
    async def submit_rating(
        self, callid: str, rating: int, phone: str = "", ext: str = "", *, verified: bool = True
    ) -> None:
        raise AssertionError("no rating is sent in these tests")


def contact_env() -> list[tuple[str, str]]:
    """What Asterisk sends for the sample dialplan's contact look-up of an inbound call."""
    return asterisk_env(
        dialplan_agi("crm-bridge-contact"),
        variables={"ARG1": "74957654321", "CHANNEL(linkedid)": "1763805600.12"},
        callerid="89101234567",
    )


@asynccontextmanager
async def agi(max_connections: int, contact_timeout: float = 0.5) -> AsyncIterator[AgiServer]:
    crm = await FakeCrm().start()
    crm.contacts[PHONE] = '{"contact_name": "Ivan"}'
    original = AgiServer.max_connections
    AgiServer.max_connections = max_connections
    try:
        settings = Settings.model_validate(
            {
                "pbx": {"region": "RU"},
                "crm": {"url": crm.url, "token": "t0k", "contact_timeout": contact_timeout},
                "agi": {"listen": f"127.0.0.1:{free_port()}"},
            }
        )
        server = await start_agi_server(settings, NoRatings())
    finally:
        AgiServer.max_connections = original
    try:
        yield server
    finally:
        await server.close()
        await crm.stop()


async def test_agi_look_up_gets_through_a_cap_full_of_silent_peers() -> None:
    async with agi(max_connections=8) as server, crowd() as idle:
        await idle.open(server.port, 60)
        await idle.open(server.port, 10, say=b"agi_network: yes\n")  # half an environment
        call = await agi_call(server.port, contact_env(), limit=5)
        assert call.set_vars["CRM_CONTACT_NAME"] == "Ivan"
        assert call.seconds < 1.5, call.seconds  # the silent peers' deadline is 3.5 s
        stats = server.stats()
        assert stats["agi_listener_shed_idle"] >= 62, stats
        # Closed before they said anything useful: the handler never saw them, no line each.
        assert stats["agi_connections"] == 1 and stats["agi_garbage"] == 0


async def test_agi_look_up_behind_stalled_look_ups_waits_one_deadline_at_most() -> None:
    """Slots held by peers that sent an environment are not taken from them: they are
    look-ups in progress. A newcomer waits until the deadline frees a slot, no longer."""
    async with agi(max_connections=3) as server, crowd() as stalled:
        deadline = server.deadline  # contact_timeout + 3 s
        await stalled.open(server.port, 3, say=encode_env(contact_env()))  # never answer
        await asyncio.sleep(0.1)
        started = time.perf_counter()
        call = await agi_call(server.port, contact_env(), limit=deadline + 3)
        waited = time.perf_counter() - started
        assert call.set_vars["CRM_CONTACT_NAME"] == "Ivan"
        assert deadline - 0.5 < waited < deadline + 1.0, (waited, deadline)
        async with asyncio.timeout(1):  # the other two end at about the same moment
            while server.stats()["agi_deadline_exceeded"] < 3:
                await asyncio.sleep(0.01)
        assert server.stats()["agi_listener_shed_idle"] == 0
