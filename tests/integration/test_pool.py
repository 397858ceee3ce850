"""The daemon's connection pool on a real PostgreSQL: every array type a named query
passes or returns is learnt when a connection opens (not by the first save on it), and
`[database] pool_min` connections are open once the database answers."""

from __future__ import annotations

import asyncpg
import pytest

from bridge.config import Settings
from bridge.store.codecs import ARRAY_TYPES, PRIME
from bridge.store.queries import QUERIES
from bridge.wiring import open_connections, open_pool

pytestmark = pytest.mark.integration

KNOWN_TO_ASYNCPG = {"text[]", "oid[]"}  # arrays asyncpg encodes without asking the server


async def test_every_array_type_of_the_named_queries_is_primed(migrated_dsn: str) -> None:
    conn = await asyncpg.connect(migrated_dsn)
    try:
        primer = await conn.prepare(PRIME)
        primed = {t.name for t in primer.get_parameters()} | KNOWN_TO_ASYNCPG
        unprimed: dict[str, set[str]] = {}
        for name, query in QUERIES.items():
            statement = await conn.prepare(query)
            types = [*statement.get_parameters(), *(a.type for a in statement.get_attributes())]
            missing = {t.name for t in types if t.kind == "array"} - primed
            if missing:
                unprimed[name] = missing
        assert unprimed == {}, "add these to bridge.store.codecs.ARRAY_TYPES"
        assert len(primed) == len(ARRAY_TYPES) + len(KNOWN_TO_ASYNCPG)
    finally:
        await conn.close()


async def test_connections_open_primed_before_any_migration(pg_dsn: str) -> None:
    """The pool's `init` needs no table: the daemon opens connections before `migrate`."""
    pool = await open_pool(Settings.model_validate({"database": {"url": pg_dsn}}))
    try:
        await open_connections(pool, 2)
        assert pool.get_size() == 2
        assert await pool.fetchval("SELECT to_regclass('calls')") is None, "an empty database"
    finally:
        await pool.close()


async def test_pool_min_connections_are_opened_and_the_pool_stays_bounded(
    migrated_dsn: str,
) -> None:
    settings = Settings.model_validate(
        {"database": {"url": migrated_dsn, "pool_min": 3, "pool_max": 4}}
    )
    pool = await open_pool(settings)
    try:
        assert pool.get_size() == 0  # nothing up front: start-up never waits for PostgreSQL
        await open_connections(pool, settings.database.pool_min)
        assert pool.get_size() == 3
        assert pool.get_idle_size() == 3
        await open_connections(pool, 10)  # never more than pool_max
        assert pool.get_size() == 4
        assert await pool.fetchval("SELECT array_length($1::timestamptz[], 1)", []) is None
    finally:
        await pool.close()


async def test_the_api_pool_plans_each_query_and_the_bridge_pool_keeps_plans(
    migrated_dsn: str,
) -> None:
    """The pull APIs read slices of very different sizes (a plan for the values at hand);
    the bridge's writes and deliveries have one shape each (PostgreSQL's cached plans)."""
    settings = Settings.model_validate({"database": {"url": migrated_dsn}})
    bridge, api = await open_pool(settings), await open_pool(settings, plans_per_query=True)
    try:
        assert await bridge.fetchval("SHOW plan_cache_mode") == "auto"
        assert await api.fetchval("SHOW plan_cache_mode") == "force_custom_plan"
    finally:
        await bridge.close()
        await api.close()
