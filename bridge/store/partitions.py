"""Monthly partitions of calls, call_events and call_legs (sql/008_partitions.sql).

A row goes to the partition of the month in its Asterisk id (`call_day()`); a month without
one keeps its rows in the table's default partition until `make_partitions()` makes it and
moves them in. The daemon runs it at start and every retention interval, `crm-bridge
migrate` once: this month and the next always exist, so live calls never wait there; a CEL
backfill of an old month or a call of another system's ids does, for a while.

Retention deletes old calls row by row (each PBX of a shared database keeps its own age);
`drop_empty_partitions()` then drops the months it emptied, giving their space back at once
instead of leaving it to vacuum.
"""

from __future__ import annotations

from datetime import date

import asyncpg

from ..observability.logs import get_logger
from .queries import QUERIES

log = get_logger("bridge.store")

CALL_TABLES = ("calls", "call_events", "call_legs")
AHEAD = 1  # months made ahead of this one


def _name(table: str, month: date) -> str:
    return f"{table}_{month:%Y_%m}"


async def make_partitions(db: asyncpg.Pool | asyncpg.Connection, ahead: int = AHEAD) -> list[str]:
    """Make the partitions due (this month, `ahead` more, and the months of rows waiting in a
    default partition); return the names made now. A month whose default partition a long
    query holds is left for the next call (logged)."""
    made: list[str] = []
    for row in await db.fetch(QUERIES["partition_months_due"], ahead):
        for table in CALL_TABLES:
            name = _name(table, row["month"])
            try:
                if await db.fetchval(QUERIES["make_partition"], table, row["month"]):
                    made.append(name)
            except asyncpg.LockNotAvailableError:
                log.warning("partition_busy", partition=name, retry="next retention interval")
    return made


async def drop_empty_partitions(pool: asyncpg.Pool, before: date) -> list[str]:
    """Drop the month partitions that ended before `before` and hold no row; return their
    names. This month and later are never dropped (live calls are written there)."""
    dropped: list[str] = []
    for table in CALL_TABLES:
        for row in await pool.fetch(QUERIES["partition_months"], table):
            month: date = row["month"]
            ends = date(month.year + month.month // 12, month.month % 12 + 1, 1)
            if ends > before:
                break
            try:
                if await pool.fetchval(QUERIES["drop_partition"], table, month):
                    dropped.append(_name(table, month))
            except asyncpg.LockNotAvailableError:
                log.warning("partition_busy", partition=_name(table, month), retry="next prune")
    return dropped
