"""The delivery tests' common ground: the lab's scenarios stored with their outbox rows,
delivery settings that retry fast, and checks of what a CRM received."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from typing import TypedDict

import asyncpg
import pytest

from bridge.ami.trace import trace_events
from bridge.config import Settings
from bridge.crm.outbox_rows import OutboxRows
from bridge.delivery.retry import RetryPolicy
from bridge.delivery.service import Delivery
from bridge.devtools.fake_crm import FakeCrm, Received
from bridge.store.calls import CallStore
from bridge.store.migrations import migrate
from bridge.store.targets import ensure_primary_target
from tests.support.ports import free_port
from tests.support.traces import TRACES, expected, grammar_violations, scenario_names
from tests.unit.test_tracker_traces import lab_tracker

EXTERNAL = sum(len(expected(n)["calls"]) for n in scenario_names())


class Backoff(TypedDict):
    """The backoff arguments of `RetryPolicy`."""

    base_delay: float
    max_delay: float
    jitter: float


FAST: Backoff = {"base_delay": 0.05, "max_delay": 0.3, "jitter": 0.1}


def settings(dsn: str, url: str, **delivery: object) -> Settings:
    return Settings.model_validate(
        {
            "pbx": {"id": "lab", "trunks": ["PJSIP/trunk-*"], "extensions": ["PJSIP/*"]},
            "database": {"url": dsn},
            "crm": {"url": url, "token": "tok", "timeout": 2.0, "connect_timeout": 0.5},
            "delivery": {"workers": 4, "lease": 5.0, "poll_interval": 0.2, **delivery},
        }
    )


async def prepare(
    dsn: str, url: str, profile: str = "vpbx", secret: str | None = None, event_ttl: float = 60.0
) -> tuple[asyncpg.Pool, OutboxRows]:
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=8)
    async with pool.acquire() as conn:
        await migrate(conn)
        await ensure_primary_target(conn, "lab", url, "tok", profile, secret)
    return pool, OutboxRows("lab", event_ttl=event_ttl)


async def store_scenarios(
    pool: asyncpg.Pool, outbox: OutboxRows, names: Iterable[str] | None = None
) -> None:
    store = CallStore(pool, "lab", outbox)
    for name in names or scenario_names():
        tracker = lab_tracker()
        outputs = [
            o for t, ev in trace_events(TRACES / f"{name}.ami.jsonl") for o in tracker.feed(ev, t)
        ]
        for i in range(0, len(outputs), 5):  # several transactions per call
            await store.save(outputs[i : i + 5])


def check_order(crm: FakeCrm, histories: list[Received]) -> None:
    """Per call: all its events (each employee's grammar intact) before its history."""
    first_history = {h.fields["callid"]: h.at for h in histories}
    for callid, events in crm.events_by_call().items():
        per_ext: dict[str, list[str]] = {}
        for e in events:
            per_ext.setdefault(e.fields["ext"], []).append(e.fields["type"])
            if callid in first_history:
                assert e.at <= first_history[callid], "an event arrived after its history"
        for types in per_ext.values():
            assert grammar_violations(types) == [], (callid, types)


async def settled(pool: asyncpg.Pool) -> None:
    """Until no row is pending or leased any more (answers are recorded after the POST)."""
    async with asyncio.timeout(10):
        while await pool.fetchval(
            "SELECT count(*) FROM webhook_outbox WHERE state IN ('pending', 'leased')"
        ):
            await asyncio.sleep(0.05)


@pytest.fixture
async def crm() -> AsyncIterator[FakeCrm]:
    crm = FakeCrm(token="tok")
    await crm.start(port=free_port())  # a port of its own: it goes away and comes back on it
    yield crm
    await crm.stop()


@pytest.fixture
async def running(pg_dsn: str, crm: FakeCrm):
    """(pool, outbox, start_delivery) with the healthy defaults; delivery stopped after."""
    pool, outbox = await prepare(pg_dsn, crm.url)
    started: list[Delivery] = []

    async def start(policy: RetryPolicy | None = None, **delivery: object) -> Delivery:
        d = Delivery(
            pool,
            pg_dsn,
            settings(pg_dsn, crm.url, **delivery),
            policy=policy or RetryPolicy(**FAST),
        )
        await d.start()
        started.append(d)
        return d

    yield pool, outbox, start
    for d in started:
        await d.stop()
    await pool.close()
