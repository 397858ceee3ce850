"""The HTTP API over a real PostgreSQL holding the recorded scenarios, served on a real
localhost socket, with a real aiohttp client and API keys made the way operators make them."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestServer
from prometheus_client import CollectorRegistry

from bridge.api.app import create_app
from bridge.api.services import Services
from bridge.config import Settings
from bridge.crm.outbox_rows import OutboxRows
from bridge.devtools.local_postgres import LocalPostgres
from bridge.store.apikeys import KeyRing, create_key
from bridge.store.calls import CallStore
from tests.support.delivery import store_scenarios
from tests.support.pg import fresh_database


@dataclass
class Api:
    pool: asyncpg.Pool
    services: Services
    server: TestServer
    http: aiohttp.ClientSession
    keys: dict[str, str] = field(default_factory=dict)  # name -> key

    @property
    def url(self) -> str:
        return str(self.server.make_url("/"))

    async def key(self, name: str, **limits: list[str]) -> str:
        async with self.pool.acquire() as conn:
            self.keys[name] = await create_key(conn, "lab", name, **limits)
        return self.keys[name]


def api_settings(dsn: str) -> Settings:
    return Settings.model_validate(
        {
            "pbx": {"id": "lab", "trunks": ["PJSIP/trunk-*"], "extensions": ["PJSIP/*"]},
            "database": {"url": dsn},
        }
    )


async def ready() -> dict[str, bool]:
    return {"database": True}


async def _fill(dsn: str) -> None:
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    try:
        await store_scenarios(pool, OutboxRows("lab"))
    finally:
        await pool.close()


@pytest.fixture(scope="session")
def scenarios_template(pg_cluster: LocalPostgres, migrated_template: str) -> str:
    """A database holding every recorded scenario once, built once per session: each
    test gets its own copy of it (`CREATE DATABASE ... TEMPLATE`)."""
    name = f"scenarios{os.getpid()}"
    dsn = pg_cluster.create_database(name, template=migrated_template)
    asyncio.run(_fill(dsn))
    return name


@pytest.fixture
def scenarios_dsn(pg_cluster: LocalPostgres, scenarios_template: str) -> Iterator[str]:
    """DSN of this test's own copy of the scenarios database, dropped after it."""
    yield from fresh_database(pg_cluster, scenarios_template)


@pytest.fixture
async def api(scenarios_dsn: str) -> AsyncIterator[Api]:
    """The API of a bridge whose database holds every recorded scenario once."""
    pool = await asyncpg.create_pool(scenarios_dsn, min_size=1, max_size=8)
    settings = api_settings(scenarios_dsn)
    services = Services(settings, pool, CallStore(pool, "lab"), KeyRing(pool, "lab"))
    app = create_app(services, ready=ready, registry=CollectorRegistry())
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    http = aiohttp.ClientSession(server.make_url("/"))
    try:
        yield Api(pool, services, server, http)
    finally:
        await http.close()
        await server.close()
        await pool.close()
