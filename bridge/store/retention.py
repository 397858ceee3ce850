"""Retention: delivered webhooks, old attempts and (if configured) old calls go.

Deletes run in bounded slices so a first prune of a large table never holds long locks;
`prune()` repeats a slice until nothing is left to delete, then drops the year partitions
of the call tables it emptied (bridge.store.partitions).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

from .partitions import drop_empty_partitions
from .queries import QUERIES

DAY = 86_400.0
SLICE = 5_000


@dataclass(frozen=True, slots=True)
class Pruned:
    sent_rows: int = 0
    attempts: int = 0
    calls: int = 0
    partitions: int = 0  # year partitions of the call tables dropped, emptied


async def prune(
    pool: asyncpg.Pool,
    pbx_id: str,
    *,
    sent_days: float,
    attempts_days: float,
    calls_days: float = 0.0,
    slice_size: int = SLICE,
) -> Pruned:
    """Delete what is older than each age; an age of 0 keeps those rows forever."""
    sent = attempts = calls = partitions = 0
    if sent_days > 0:
        sent = await _repeat(pool, "prune_sent", pbx_id, sent_days * DAY, slice_size)
    if attempts_days > 0:
        attempts = await _repeat(pool, "prune_attempts", None, attempts_days * DAY, slice_size)
    if calls_days > 0:
        calls = await _repeat(pool, "prune_calls", pbx_id, calls_days * DAY, slice_size)
        before = (datetime.now(UTC) - timedelta(days=calls_days)).date()
        partitions = len(await drop_empty_partitions(pool, before))
    return Pruned(sent, attempts, calls, partitions)


async def _repeat(
    pool: asyncpg.Pool, query: str, pbx_id: str | None, age: float, slice_size: int
) -> int:
    total = 0
    sql = QUERIES[query]
    while True:
        if query == "prune_calls":
            n = int(await pool.fetchval(sql, pbx_id, age, slice_size))
        elif pbx_id is None:
            n = int((await pool.execute(sql, age, slice_size)).split()[-1])
        else:
            n = int((await pool.execute(sql, pbx_id, age, slice_size)).split()[-1])
        total += n
        if n < slice_size:
            return total
