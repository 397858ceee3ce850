"""PostgreSQL fixtures: one private cluster per test session, one fresh database per test.

Why: tests need a real server (durability, SKIP LOCKED, crash recovery) but must not
share state; creating a database (~50 ms) is far cheaper than a cluster (~1.5 s).
No skipping: missing Postgres binaries fail loudly, so a green run means DB tests ran.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest

from bridge.devtools.local_postgres import LocalPostgres, LocalPostgresError
from bridge.store.migrations import migrate
from bridge.store.partitions import make_partitions

_counter = itertools.count(1)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[LocalPostgres]:
    """A started LocalPostgres for the whole session, removed at the end."""
    try:
        cluster = LocalPostgres()
        cluster.start()
    except LocalPostgresError as e:
        pytest.fail(f"cannot start the test PostgreSQL cluster: {e}", pytrace=False)
    try:
        yield cluster
    finally:
        cluster.cleanup()


@pytest.fixture(scope="session")
def migrated_template(pg_cluster: LocalPostgres) -> str:
    """A database with every migration applied, made once per session to be copied."""
    name = f"migrated{os.getpid()}"
    dsn = pg_cluster.create_database(name)

    async def apply() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await migrate(conn)
        finally:
            await conn.close()

    asyncio.run(apply())
    return name


def fresh_database(cluster: LocalPostgres, template: str | None = None) -> Iterator[str]:
    """A database of one test (a copy of `template`, if given): its DSN, dropped after."""
    name = f"t{os.getpid()}_{next(_counter)}"
    yield cluster.create_database(name, template=template)
    cluster.drop_database(name)


@pytest.fixture
def migrated_dsn(pg_cluster: LocalPostgres, migrated_template: str) -> Iterator[str]:
    """DSN of a new database of this test with the schema in place, dropped after it."""
    yield from fresh_database(pg_cluster, migrated_template)


@pytest.fixture
def pg_dsn(pg_cluster: LocalPostgres) -> Iterator[str]:
    """DSN of a new, empty database unique to this test, dropped after it (a session of
    hundreds of tests would otherwise keep gigabytes of databases until its end)."""
    yield from fresh_database(pg_cluster)


@pytest.fixture
async def store_pool(migrated_dsn: str) -> AsyncIterator[asyncpg.Pool]:
    """A small pool on a migrated database with this year's partitions: a bridge's store."""
    pool = await asyncpg.create_pool(migrated_dsn, min_size=1, max_size=2)
    await make_partitions(pool)
    yield pool
    await pool.close()
