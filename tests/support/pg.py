"""PostgreSQL fixtures: one private cluster per test session, one fresh database per test.

Why: tests need a real server (durability, SKIP LOCKED, crash recovery) but must not
share state; creating a database (~50 ms) is far cheaper than a cluster (~1.5 s).
No skipping: missing Postgres binaries fail loudly, so a green run means DB tests ran.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator

import pytest

from bridge.devtools.local_postgres import LocalPostgres, LocalPostgresError

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


@pytest.fixture
def pg_dsn(pg_cluster: LocalPostgres) -> Iterator[str]:
    """DSN of a new, empty database unique to this test, dropped after it (a session of
    hundreds of tests would otherwise keep gigabytes of databases until its end)."""
    name = f"t{os.getpid()}_{next(_counter)}"
    yield pg_cluster.create_database(name)
    pg_cluster.drop_database(name)
