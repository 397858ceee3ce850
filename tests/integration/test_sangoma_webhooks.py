"""Sangoma webhook subscriptions receive the call object at call start and end through the
durable outbox: real receivers, the recorded calls, a receiver outage, the config's
"Send WebHooks" setting."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestServer
from prometheus_client import CollectorRegistry

from bridge.api.app import create_app
from bridge.api.sangoma.webhooks import commands_for
from bridge.api.services import Services
from bridge.crm.outbox_rows import OutboxRows
from bridge.devtools.fake_crm import FakeCrm, Received
from bridge.store.targets import Subscription, add_target
from tests.support.api import Api, ready
from tests.support.delivery import EXTERNAL, settled, store_scenarios
from tests.support.ports import free_port

pytestmark = pytest.mark.integration

SECRET = "whsec_" + "c2VjcmV0LWtleS1vZi10aGUtc2FuZ29tYS1ob29r"


@pytest.fixture
async def receiver() -> AsyncIterator[FakeCrm]:
    crm = FakeCrm(signing_secret=SECRET)
    await crm.start(port=free_port())  # a port of its own: it goes away and comes back on it
    yield crm
    await crm.stop()


async def subscribe(
    pool: asyncpg.Pool, url: str, *, direction: str = "both", send: str = "both", **kw: Any
) -> int:
    async with pool.acquire() as conn:
        return await add_target(
            conn,
            "lab",
            Subscription(
                f"sangoma-{direction}-{send}",
                url,
                profile="sangoma",
                commands=commands_for(send),
                direction=direction,
                **kw,
            ),
        )


def bodies(crm: FakeCrm) -> list[dict[str, Any]]:
    """Accepted bodies in arrival order, repeats (same webhook-id) dropped."""
    seen: set[str | None] = set()
    out = []
    for r in crm.received:
        if r.accepted and r.webhook_id not in seen:
            seen.add(r.webhook_id)
            out.append(json.loads(r.body))
    return out


def per_call(received: list[dict[str, Any]]) -> dict[str, list[str]]:
    calls: dict[str, list[str]] = {}
    for body in received:
        calls.setdefault(body["uuid"], []).append(body["event"])
    return calls


async def test_start_and_end_of_every_call_in_order(running, receiver: FakeCrm) -> None:
    pool, outbox, start = running
    await subscribe(pool, receiver.url, signing_secret=SECRET)
    await store_scenarios(pool, outbox)
    await start()
    await receiver.wait_for(lambda: len(bodies(receiver)) >= 2 * EXTERNAL, timeout=20)
    received = bodies(receiver)
    calls = per_call(received)
    assert len(calls) == EXTERNAL
    assert all(events == ["start", "end"] for events in calls.values()), calls
    for r in receiver.received:
        assert r.headers["content-type"] == "application/json"
        assert "crm_token" not in json.loads(r.body)
        assert r.headers["webhook-signature"].startswith("v1,")  # checked by the receiver
    ends = {b["uuid"]: b for b in received if b["event"] == "end"}
    queue = ends["1795346445.14"]
    assert queue["direction"] == "inbound" and queue["group"] == "sales"
    assert (queue["duration"], queue["billsec"], queue["disposition"]) == (6, 2, "ANSWERED")
    starts = {b["uuid"]: b for b in received if b["event"] == "start"}
    assert starts["1795346445.14"]["end"] is None and starts["1795346445.14"]["status"] is None
    # a call that never rang anyone (the phone was busy) gets its start with its end
    assert starts["1795346437.8"]["answer"] is None and ends["1795346437.8"]["status"] == "missed"
    # the same object as the API's call resource, plus the event
    assert {k for k in queue if k != "event"} == set(starts["1795346445.14"]) - {"event"}
    # one start per call: the call's first channel in both webhooks (and in `calls/{uuid}`),
    # not when the first phone rang (a queue call rings later than it starts)
    assert set(starts) == set(ends)
    for uuid, end in ends.items():
        assert (starts[uuid]["start"], starts[uuid]["calldate"]) == (
            end["start"],
            end["calldate"],
        ), uuid
    stored = await pool.fetchval(
        "SELECT started_at FROM calls WHERE pbx_id = 'lab' AND callid = '1795346445.14'"
    )
    assert starts["1795346445.14"]["start"] == int(stored.timestamp())
    await settled(pool)
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM webhook_outbox o JOIN webhook_targets t ON t.id = o.target_id "
            "WHERE t.profile = 'sangoma' AND o.state <> 'sent'"
        )
        == 0
    )


async def test_directions_and_the_send_setting(running) -> None:
    pool, outbox, start = running
    crms = {name: FakeCrm() for name in ("in-start", "out-end", "both-end")}
    for crm in crms.values():
        await crm.start()
    try:
        await subscribe(pool, crms["in-start"].url, direction="in", send="start")
        await subscribe(pool, crms["out-end"].url, direction="out", send="end")
        await subscribe(pool, crms["both-end"].url, direction="both", send="end")
        await store_scenarios(pool, outbox)
        await start()
        await crms["both-end"].wait_for(lambda: len(bodies(crms["both-end"])) >= EXTERNAL, 20)
        await settled(pool)
        inbound = bodies(crms["in-start"])
        assert inbound and {(b["direction"], b["event"]) for b in inbound} == {("inbound", "start")}
        outbound = bodies(crms["out-end"])
        assert outbound and {(b["direction"], b["event"]) for b in outbound} == {
            ("outbound", "end")
        }
        assert len(inbound) + len(outbound) == EXTERNAL
        assert {b["event"] for b in bodies(crms["both-end"])} == {"end"}
    finally:
        for crm in crms.values():
            await crm.stop()


async def test_a_receiver_outage_loses_nothing_and_keeps_the_order(
    running, receiver: FakeCrm
) -> None:
    pool, outbox, start = running
    await subscribe(pool, receiver.url, signing_secret=SECRET)
    await receiver.go_away()
    await store_scenarios(pool, outbox)
    await start()
    async with asyncio.timeout(10):
        while not await pool.fetchval(
            "SELECT count(*) FROM webhook_outbox o JOIN webhook_targets t ON t.id = o.target_id "
            "WHERE t.profile = 'sangoma' AND o.attempts > 1"
        ):
            await asyncio.sleep(0.05)
    await receiver.come_back()
    receiver.fail_next(5, status=503)  # and a few refusals once it is back
    await receiver.wait_for(lambda: len(bodies(receiver)) >= 2 * EXTERNAL, timeout=30)
    calls = per_call(bodies(receiver))
    assert len(calls) == EXTERNAL
    assert all(events == ["start", "end"] for events in calls.values()), calls
    refused: list[Received] = [r for r in receiver.received if r.status_answered == 503]
    assert len(refused) == 5


async def test_subscriptions_follow_the_setting_when_the_api_starts(api: Api) -> None:
    key = {"Token": await api.key("crm", dialects=["sangoma"])}
    async with api.http.post(
        "/admin/api/sangomacrm/rest/webhooks", json={"url": "http://crm.example/h"}, headers=key
    ) as r:
        assert r.status == 200
    assert await api.pool.fetchval("SELECT commands FROM webhook_targets") == [
        "call_start",
        "call_end",
    ]
    settings = api.services.settings.model_copy(deep=True)
    settings.api.sangoma_webhooks = "end"
    services = Services(settings, api.pool, api.services.store, api.services.keys)
    server = TestServer(create_app(services, ready=ready, registry=CollectorRegistry()))
    await server.start_server()
    try:
        async with asyncio.timeout(5):
            while await api.pool.fetchval("SELECT commands FROM webhook_targets") != ["call_end"]:
                await asyncio.sleep(0.02)
    finally:
        await server.close()


async def test_a_start_is_sent_once_however_often_the_call_is_stored(running) -> None:
    pool, outbox, _ = running
    await subscribe(pool, "http://127.0.0.1:9/never")
    await store_scenarios(pool, outbox, ["in_answered", "in_busy"])
    await store_scenarios(pool, OutboxRows("lab"), ["in_answered", "in_busy"])
    rows = await pool.fetch(
        "SELECT o.callid, o.cmd FROM webhook_outbox o JOIN webhook_targets t "
        "ON t.id = o.target_id WHERE t.profile = 'sangoma' ORDER BY o.id"
    )
    assert [(r["callid"], r["cmd"]) for r in rows] == [
        ("1795346414.0", "call_start"),
        ("1795346414.0", "call_end"),
        ("1795346437.8", "call_start"),
        ("1795346437.8", "call_end"),
    ]
