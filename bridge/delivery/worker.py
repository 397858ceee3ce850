"""Delivery workers: claim outbox rows, POST them, record what happened.

- Claims use `FOR UPDATE SKIP LOCKED` and a lease: several workers, in one process or on
  several hosts, never hold the same row; a crashed worker's rows come back when their
  lease ends (at-least-once: the same `webhook-id` then reaches the CRM twice).
- Only the oldest undelivered row of each (target, call) can be claimed, so a CRM sees a
  call's INCOMING before ACCEPTED before COMPLETED before its history; a row waiting for
  its retry holds the later ones of its call back with it.
- Workers wake on NOTIFY (a dedicated connection: LISTEN does not survive a pool) and poll
  as a fallback; Postgres going away makes them wait and retry, never die.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import asyncpg

from ..backoff import Backoff
from ..crm.request import build_request
from ..observability.logs import get_logger
from ..observability.metrics import DeliveryMetrics
from ..store.errors import DB_ERRORS, DB_ERRORS_OR_TIMEOUT
from ..store.outbox import Claimed, OutboxStore, Outcome
from .retry import Decision, RetryPolicy

log = get_logger("bridge.delivery")
MAX_ANSWER = 64 * 1024  # bytes of a CRM's answer we read (and ignore)


@dataclass(slots=True)
class Attempt:
    """What one try of one row came to."""

    decision: Decision
    status: int | None = None
    error: str = ""
    latency: float | None = None  # seconds; None when nothing was sent


@dataclass(slots=True)
class Stats:
    sent: int = 0
    retried: int = 0
    dead: int = 0
    expired: int = 0
    disabled: int = 0
    db_errors: int = 0
    idle_waits: int = 0  # how often workers found nothing to claim


class DeliveryWorker:
    def __init__(
        self,
        pool: asyncpg.Pool,
        session: aiohttp.ClientSession,
        policy: RetryPolicy,
        *,
        name: str,
        wake: asyncio.Event,
        lease: float = 30.0,
        batch: int = 8,
        poll_interval: float = 2.0,
        connect_timeout: float = 5.0,
        timeout: float = 15.0,
        stats: Stats | None = None,
        on_sent: Any = None,
        metrics: DeliveryMetrics | None = None,
    ) -> None:
        self.outbox = OutboxStore(pool)
        self.metrics = metrics
        self.session = session
        self.policy = policy
        self.name = name
        self.wake = wake
        self.lease = lease
        self.batch = batch
        self.poll_interval = poll_interval
        self.client_timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=connect_timeout)
        self.stats = stats or Stats()
        self.on_sent = on_sent

    async def run(self) -> None:
        backoff = Backoff()
        while True:
            self.wake.clear()  # before claiming: a NOTIFY from now on is not missed
            try:
                rows = await self.claim()
                backoff.reset()
            except DB_ERRORS_OR_TIMEOUT as exc:
                self.stats.db_errors += 1
                log.warning("delivery_db_unavailable", worker=self.name, error=repr(exc))
                await backoff.sleep()
                continue
            except Exception:  # a bug must not stop delivery silently: say it, go on
                log.exception("delivery_claim_failed", worker=self.name)
                await backoff.sleep()
                continue
            if rows:
                results = await asyncio.gather(
                    *(self.deliver(r) for r in rows), return_exceptions=True
                )
                for row, result in zip(rows, results, strict=True):
                    if isinstance(result, Exception):  # a bug must not stop delivery
                        log.error(
                            "delivery_failed_unexpectedly",
                            exc_info=result,
                            callid=row.callid,
                            outbox_id=row.id,
                        )
                        # a row we cannot even send would block its call forever: dead
                        # letter it (the operator can re-drive it once fixed)
                        dead = Decision("dead", reason=f"cannot be sent: {result!r}"[:300])
                        with contextlib.suppress(Exception):
                            await self._finish(row, Attempt(dead))
                continue
            await self._idle()

    async def _idle(self) -> None:
        """Sleep until the next row can be claimed (a retry, an expired lease), a NOTIFY,
        or the poll interval. Rows that cannot be claimed (a disabled target, waiting
        behind a row in flight) do not count, so an idle worker never spins."""
        self.stats.idle_waits += 1
        wait = self.poll_interval
        with contextlib.suppress(Exception):
            due_in = await self.outbox.next_due()
            if due_in is not None:
                wait = max(0.02, min(wait, due_in))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wake.wait(), wait)

    async def claim(self) -> list[Claimed]:
        return await self.outbox.claim(self.batch, self.name, self.lease)

    async def deliver(self, row: Claimed) -> Decision:
        now = time.time()
        if row.cmd == "event" and row.expires_at is not None and now > row.expires_at:
            decision = Decision("expired", reason="event older than its TTL")
            await self._finish(row, Attempt(decision))
            return decision
        request = build_request(
            row.profile,
            row.payload,
            row.token,
            now=now,
            webhook_id=row.webhook_id,
            signing_secret=row.signing_secret,
        )
        status: int | None = None
        error = ""
        retry_after: str | None = None
        started = time.perf_counter()
        try:
            async with self.session.post(
                row.url,
                data=request.body,
                headers=request.headers,
                timeout=self.client_timeout,
                allow_redirects=False,
            ) as resp:
                status = resp.status
                retry_after = resp.headers.get("Retry-After")
                await resp.content.read(MAX_ANSWER)
        except TimeoutError:
            error = "timeout"
        except aiohttp.ClientError as exc:
            error = f"{type(exc).__name__}: {exc}"[:300]
        latency = time.perf_counter() - started
        decision = self.policy.decide(
            cmd=row.cmd,
            attempts=row.attempts,
            first_attempt_at=row.first_attempt_at,
            created_at=row.created_at,
            now=time.time(),
            status=status,
            error=error or None,
            retry_after=retry_after,
        )
        await self._finish(row, Attempt(decision, status, error, latency))
        return decision

    async def _finish(self, row: Claimed, attempt: Attempt) -> None:
        """Record the attempt and move the row on; keep trying while Postgres is away."""
        backoff = Backoff()
        while True:
            try:
                await self._record(row, attempt)
                break
            except DB_ERRORS as exc:
                self.stats.db_errors += 1
                log.warning(
                    "delivery_result_not_stored_retrying",
                    worker=self.name,
                    error=repr(exc),
                )
                await backoff.sleep()
        decision, status, error, latency = (
            attempt.decision,
            attempt.status,
            attempt.error,
            attempt.latency,
        )
        outcome = decision.outcome
        if self.metrics is not None:
            self.metrics.observe(row.target, outcome, latency)
        fields = {
            "callid": row.callid,
            "cmd": row.cmd,
            "target": row.target,
            "webhook_id": row.webhook_id,
            "attempt": row.attempts,
            "status": status,
            "error": error,
            "outcome": outcome,
        }
        if outcome == "sent":
            self.stats.sent += 1
            if self.on_sent is not None:
                self.on_sent(row, latency)
            log.info("webhook_sent", **fields, latency_ms=round((latency or 0) * 1e3))
        elif outcome == "retry":
            self.stats.retried += 1
            log.warning("webhook_retry", **fields, delay=round(decision.delay, 2))
        elif outcome == "dead":
            self.stats.dead += 1
            log.error("webhook_dead_letter", **fields, reason=decision.reason)
        elif outcome == "expired":
            self.stats.expired += 1
            log.info("webhook_expired", **fields)
        elif outcome == "disable":
            self.stats.disabled += 1
            log.error("webhook_target_disabled", **fields, reason=decision.reason)

    async def _record(self, row: Claimed, attempt: Attempt) -> None:
        decision, latency = attempt.decision, attempt.latency
        await self.outbox.record(
            row,
            self.name,
            Outcome(
                decision.outcome,
                status=attempt.status,
                error=attempt.error,
                reason=decision.reason,
                latency_ms=None if latency is None else round(latency * 1000),
                delay=decision.delay,
            ),
        )


class OutboxListener:
    """LISTEN webhook_outbox on a dedicated connection; reconnects; sets `wake`."""

    def __init__(self, dsn: str, wake: asyncio.Event) -> None:
        self.dsn = dsn
        self.wake = wake
        self.connected = False

    async def run(self) -> None:
        backoff = Backoff(first=0.2)
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(
                    self.dsn, server_settings={"application_name": "crm-bridge listen"}
                )
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                await conn.add_listener("webhook_outbox", lambda *_: self.wake.set())
                self.connected = True
                backoff.reset()
                self.wake.set()  # catch up on what was committed while we were away
                while not lost.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(lost.wait(), 5)
                    if not lost.is_set():  # notice a dead (or half-open) socket
                        await asyncio.wait_for(conn.fetchval("SELECT 1"), 5)
            except DB_ERRORS_OR_TIMEOUT:
                pass
            finally:
                self.connected = False
                if conn is not None and not conn.is_closed():
                    with contextlib.suppress(Exception):
                        await conn.close(timeout=1)
            await backoff.sleep()
