"""Yearly partitions of calls, call_events and call_legs (sql/008_partitions.sql).

A row goes to the partition of the year in its Asterisk id (`call_day()`); a year without
one keeps its rows in the table's default partition until `make_partitions()` makes it and
moves them in. The daemon runs it at start and every retention interval, `crm-bridge
migrate` once: this year and the next always exist, so live calls never wait there; a CEL
backfill of an older year or a call of another system's ids does, for a while.

Retention deletes old calls row by row (each PBX of a shared database keeps its own age);
`drop_empty_partitions()` then drops the years it emptied, giving their space back at once
instead of leaving it to vacuum.
"""

from __future__ import annotations

from datetime import date

import asyncpg

from ..observability.logs import get_logger
from .queries import QUERIES

log = get_logger("bridge.store")

CALL_TABLES = ("calls", "call_events", "call_legs")
AHEAD = 1  # years made ahead of this one


def partition_name(table: str, year: date) -> str:
    return f"{table}_{year:%Y}"


async def make_partitions(db: asyncpg.Pool | asyncpg.Connection, ahead: int = AHEAD) -> list[str]:
    """Make the partitions due (this year, `ahead` more, and the years of rows waiting in a
    default partition); return the names made now. A year whose default partition a long
    query holds is left for the next call (logged)."""
    made: list[str] = []
    for row in await db.fetch(QUERIES["partition_years_due"], ahead):
        for table in CALL_TABLES:
            name = partition_name(table, row["year"])
            try:
                if await db.fetchval(QUERIES["make_partition"], table, row["year"]):
                    made.append(name)
            except asyncpg.LockNotAvailableError:
                log.warning("partition_busy", partition=name, retry="next retention interval")
    return made


async def drop_empty_partitions(pool: asyncpg.Pool, before: date) -> list[str]:
    """Drop the year partitions that ended before `before` and hold no row; return their
    names. This year and later are never dropped (live calls are written there)."""
    dropped: list[str] = []
    for table in CALL_TABLES:
        for row in await pool.fetch(QUERIES["partition_years"], table):
            year: date = row["year"]
            if date(year.year + 1, 1, 1) > before:
                break
            name = partition_name(table, year)
            try:
                if await pool.fetchval(QUERIES["drop_partition"], table, year):
                    dropped.append(name)
            except asyncpg.LockNotAvailableError:
                log.warning("partition_busy", partition=name, retry="next prune")
    return dropped
