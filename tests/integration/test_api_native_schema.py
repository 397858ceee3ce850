"""schemathesis against the native API's own OpenAPI document, on a live bridge API.

Every operation gets generated requests, valid and invalid (bounded: MAX_EXAMPLES per
operation and mode, about 900 requests in all): none may answer 5xx, and every answer must
be one the document describes, with a body matching its schema. The API runs on its own
event loop in a thread (schemathesis calls it synchronously), over a database holding every
recorded scenario.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator

import asyncpg
import pytest
import schemathesis
from aiohttp import web
from prometheus_client import CollectorRegistry
from schemathesis.specs.openapi.checks import positive_data_acceptance

from bridge.ami.trace import trace_events
from bridge.api.app import create_app
from bridge.api.native.openapi import document
from bridge.api.services import Services
from bridge.crm.outbox_rows import OutboxRows
from bridge.devtools.local_postgres import LocalPostgres
from bridge.store.apikeys import KeyRing, create_key
from bridge.store.calls import CallStore
from bridge.store.migrations import migrate
from tests.integration.test_api_native import FakeDialer, seed_dead_letters, seed_directory
from tests.support.api import api_settings, ready
from tests.support.delivery import store_scenarios
from tests.support.traces import TRACES
from tests.unit.test_tracker_traces import lab_tracker

pytestmark = pytest.mark.integration

MAX_EXAMPLES = 25
# The coverage phase (every parameter's boundaries and wrong types, ~3,000 more requests,
# a minute and a half on this machine) runs when asked: NATIVE_API_COVERAGE=1.
COVERAGE = os.environ.get("NATIVE_API_COVERAGE") == "1"


class LiveApi:
    """The bridge's HTTP app with a fake dialer, served from a thread of its own."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.url = ""
        self.key = ""

    def start(self) -> None:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(120)

    async def _start(self) -> None:
        self.pool = await asyncpg.create_pool(self.dsn, min_size=1, max_size=8)
        async with self.pool.acquire() as conn:
            await migrate(conn)
        await store_scenarios(self.pool, OutboxRows("lab"))
        await seed_directory(self.pool)
        await seed_dead_letters(self.pool)
        async with self.pool.acquire() as conn:
            self.key = await create_key(conn, "lab", "schemathesis")
        services = Services(
            api_settings(self.dsn),
            self.pool,
            CallStore(self.pool, "lab"),
            KeyRing(self.pool, "lab"),
            dialer=FakeDialer(),
        )
        app = create_app(services, ready=ready, registry=CollectorRegistry())
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        host, port = self.runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"

    async def _stop(self) -> None:
        await self.runner.cleanup()
        await self.pool.close()

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def live(pg_cluster: LocalPostgres) -> Iterator[LiveApi]:
    server = LiveApi(pg_cluster.create_database(f"schema{os.getpid()}"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def native_schema() -> schemathesis.BaseSchema:
    config = schemathesis.Config()
    # the key is ours to send (schemathesis checks separately that requests without it fail)
    config.projects.default.generation.update(
        max_examples=MAX_EXAMPLES, with_security_parameters=False
    )
    config.projects.default.phases.coverage.enabled = COVERAGE
    return schemathesis.openapi.from_dict(document(), config=config)


# (schemathesis.pytest.from_fixture would start the server first, but its lazy loader
# does not run under pytest 9: the live server's URL is given to each call instead.)
schema = native_schema()


# Requests the document cannot tell apart from good ones, rightly refused with a 400: an
# employee the directory does not know (the dialer's answer), a cursor the API never made.
DIAL = {"/dial", "/cloud/call"}


def refused_by_data(case: schemathesis.Case) -> bool:
    return case.path in DIAL or bool(case.query and case.query.get("after"))


@schema.parametrize()
def test_the_api_keeps_its_document(case: schemathesis.Case, live: LiveApi) -> None:
    case.call_and_validate(
        base_url=live.url + "/api/v1",
        headers={"X-API-Key": live.key},
        timeout=30,
        excluded_checks=[positive_data_acceptance] if refused_by_data(case) else [],
    )


async def store_call_still_up(pool: asyncpg.Pool) -> str:
    """in_queue as the bridge stores it until an employee answers (in place of its
    finished copy): the call a client asks for while it is up, e.g. the callid `/dial`
    just gave."""
    tracker, outputs = lab_tracker(), []
    for t, ev in trace_events(TRACES / "in_queue.ami.jsonl"):
        outputs.extend(tracker.feed(ev, t))
        if any(s.accepted for c in tracker.calls.values() for s in c.sessions.values()):
            break
    callid: str = outputs[0].callid
    for table in ("call_events", "call_legs", "calls"):
        await pool.execute(f"DELETE FROM {table} WHERE pbx_id = 'lab' AND callid = $1", callid)
    await CallStore(pool, "lab").save(outputs)
    return callid


def test_a_call_still_up_keeps_the_served_document(live: LiveApi) -> None:
    callid = asyncio.run_coroutine_threadsafe(store_call_still_up(live.pool), live.loop).result(60)
    served = schemathesis.openapi.from_url(f"{live.url}/api/v1/openapi.json")
    case = served["/calls/{callid}"]["GET"].Case(path_parameters={"callid": callid})
    response = case.call_and_validate(
        base_url=live.url + "/api/v1", headers={"X-API-Key": live.key}, timeout=30
    )
    body = response.json()
    assert body["status"] is None and body["end"] is None and body["events"], body
