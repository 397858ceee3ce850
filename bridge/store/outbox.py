"""The outbox as the delivery workers and operators see it: claim, record, re-drive.

Rows are written by `CallStore` in the transaction of their calls; here they are only
claimed (`FOR UPDATE SKIP LOCKED` + a lease), moved on after each attempt, listed and
re-driven. Every attempt is kept in `webhook_attempts`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from .queries import QUERIES

FINAL = ("sent", "dead", "expired")


@dataclass(slots=True)
class Claimed:
    """A leased row, with what its target needs to send it."""

    id: int
    target_id: int
    target: str
    callid: str
    cmd: str
    webhook_id: str
    payload: dict[str, Any]
    attempts: int
    created_at: float
    expires_at: float | None
    first_attempt_at: float
    url: str
    token: str
    profile: str
    signing_secret: str | None

    @classmethod
    def from_row(cls, r: asyncpg.Record) -> Claimed:
        return cls(
            id=r["id"],
            target_id=r["target_id"],
            target=r["target"],
            callid=r["callid"],
            cmd=r["cmd"],
            webhook_id=r["webhook_id"],
            payload=json.loads(r["payload"]),
            attempts=r["attempts"],
            created_at=r["created_at"],
            expires_at=r["expires_at"],
            first_attempt_at=r["first_attempt_at"],
            url=r["url"],
            token=r["token"],
            profile=r["profile"],
            signing_secret=r["signing_secret"],
        )


@dataclass(slots=True)
class Outcome:
    """What one attempt came to, as stored."""

    outcome: str  # sent / dead / expired / retry / disable
    status: int | None = None
    error: str = ""
    reason: str = ""
    latency_ms: int | None = None
    delay: float = 0.0  # retry: seconds until the next try


class OutboxStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def claim(self, batch: int, worker: str, lease: float) -> list[Claimed]:
        rows = await self.pool.fetch(QUERIES["claim"], batch, worker, lease)
        return [Claimed.from_row(r) for r in rows]

    async def next_due(self) -> float | None:
        """Seconds until the next row can be claimed; None when nothing waits."""
        due: float | None = await self.pool.fetchval(QUERIES["next_due"])
        return due

    async def record(self, row: Claimed, worker: str, done: Outcome) -> None:
        """Store the attempt and move the row on (only while `worker` holds its lease)."""
        if done.outcome in FINAL:  # the common case: one round trip
            await self.pool.execute(
                QUERIES["finish_row"],
                row.id,
                worker,
                done.outcome,
                done.status,
                done.error or done.reason,
                done.latency_ms,
                done.error,
            )
            return
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                QUERIES["record_attempt"],
                row.id,
                worker,
                done.status,
                done.latency_ms,
                done.error,
                done.outcome,
            )
            if done.outcome == "retry":
                due = await conn.fetchval(
                    QUERIES["retry_row"], row.id, worker, done.status, done.error, done.delay
                )
                if due is not None:  # the rest of this call waits with it
                    await conn.execute(QUERIES["hold_call"], row.target_id, row.callid, due)
            elif done.outcome == "disable":
                await conn.execute(
                    QUERIES["disable_target"], row.target_id, done.reason or f"HTTP {done.status}"
                )
                # the row is not lost: it waits for the target to be enabled again
                await conn.execute(QUERIES["return_row"], row.id, worker, done.status)
            else:
                raise ValueError(f"unknown outcome {done.outcome!r}")


async def list_rows(
    conn: asyncpg.Connection, pbx_id: str, state: str | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    """Newest rows first (operators: `crm-bridge outbox list`)."""
    return [dict(r) for r in await conn.fetch(QUERIES["list_rows"], pbx_id, state, limit)]


async def counts(conn: asyncpg.Connection, pbx_id: str) -> dict[str, int]:
    return {r["state"]: r["n"] for r in await conn.fetch(QUERIES["row_counts"], pbx_id)}


async def redrive(conn: asyncpg.Connection, pbx_id: str, ids: list[int] | None = None) -> int:
    """Dead letters (all, or these ids) back to pending, with a fresh retry window."""
    status = await conn.execute(QUERIES["redrive"], pbx_id, ids)
    await conn.execute(QUERIES["wake_workers"])
    return int(status.split()[-1])


@dataclass(frozen=True, slots=True)
class Backlog:
    """One target's undelivered rows, for /metrics and /readyz."""

    target: str
    waiting: int
    oldest_age: float  # seconds
    oldest_history_age: float
    dead: int


async def backlog(conn: asyncpg.Connection | asyncpg.Pool, pbx_id: str) -> list[Backlog]:
    return [Backlog(**dict(r)) for r in await conn.fetch(QUERIES["backlog"], pbx_id)]


def iso(value: Any) -> Any:
    """Timestamps as ISO text for JSON output."""
    return value.isoformat() if isinstance(value, datetime) else value
