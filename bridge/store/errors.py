"""What "Postgres is away" looks like, for the loops that wait it out."""

from __future__ import annotations

import asyncio

import asyncpg
from asyncpg import exceptions as pg

# Any database failure: the delivery workers, the NOTIFY listener and the leader lock
# log it and try again (their loops must never die).
DB_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    # a connection whose protocol was left mid-operation when the server went away
    # ("cannot switch to state ...; another operation is in progress"): transient too
    asyncpg.InternalClientError,
)

# The same, or a query or connect that ran out of time.
DB_ERRORS_OR_TIMEOUT: tuple[type[Exception], ...] = (*DB_ERRORS, TimeoutError)

# Only the server being unreachable or restarting: the call pipeline keeps its batch and
# retries these; any other error is a bug and must surface.
DB_UNAVAILABLE: tuple[type[Exception], ...] = (
    OSError,
    ConnectionError,
    asyncio.TimeoutError,
    pg.PostgresConnectionError,
    pg.InterfaceError,
    pg.CannotConnectNowError,
    pg.AdminShutdownError,
    pg.CrashShutdownError,
    pg.TooManyConnectionsError,
    asyncpg.InternalClientError,
)


# What the writer waits out, keeping what it holds: the above, and any error of the server
# that is not about the data written (disk full, read-only after a failover, a cancelled
# statement, a deadlock, a missing privilege): those pass, the data does not change.
STORE_RETRY: tuple[type[Exception], ...] = (*DB_UNAVAILABLE, asyncpg.PostgresError)


def refuses_data(exc: BaseException) -> bool:
    """PostgreSQL refuses this data for good: SQLSTATE class 22 (data exception: a value
    too long, out of range) or 23 (integrity constraint violation). Retrying the same rows
    fails the same way, so the writer stores the other calls of the batch and skips these."""
    state = getattr(exc, "sqlstate", None) or ""
    return isinstance(exc, asyncpg.PostgresError) and state[:2] in ("22", "23")
