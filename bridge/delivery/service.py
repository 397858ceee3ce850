"""The delivery side of the bridge: N workers, one NOTIFY listener, one HTTP session.

Runs inside `crm-bridge run`, or alone as `crm-bridge deliver` on any host that reaches
the database (workers on several hosts share the outbox safely).
"""

from __future__ import annotations

import asyncio
import os
import socket

import aiohttp
import asyncpg

from ..config import Settings
from ..observability.logs import get_logger
from ..observability.metrics import DeliveryMetrics
from .retry import RetryPolicy
from .worker import DeliveryWorker, OutboxListener, Stats

log = get_logger("bridge.delivery")


def policy_from(settings: Settings) -> RetryPolicy:
    return RetryPolicy(
        retry_for=settings.delivery.retry_for,
        event_ttl=settings.crm.event_ttl,
        max_client_errors=settings.delivery.max_client_errors,
        base_delay=settings.delivery.retry_base_delay,
        max_delay=settings.delivery.retry_max_delay,
    )


class Delivery:
    def __init__(
        self,
        pool: asyncpg.Pool,
        dsn: str,
        settings: Settings,
        policy: RetryPolicy | None = None,
        on_sent=None,
        metrics: DeliveryMetrics | None = None,
    ) -> None:
        self.pool = pool
        self.dsn = dsn
        self.settings = settings
        self.policy = policy or policy_from(settings)
        self.wake = asyncio.Event()
        self.stats = Stats()
        self.metrics = metrics or DeliveryMetrics()
        self.on_sent = on_sent
        self.listener = OutboxListener(dsn, self.wake)
        self.session: aiohttp.ClientSession | None = None
        self.tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        d, crm = self.settings.delivery, self.settings.crm
        lease = d.lease
        if lease <= crm.timeout:
            # a lease shorter than a request would hand a row in flight to another worker
            lease = crm.timeout + 1.0
            log.warning(
                "delivery_lease_raised",
                lease=d.lease,
                to=lease,
                crm_timeout=crm.timeout,
            )
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64))
        prefix = f"{socket.gethostname()}:{os.getpid()}"
        self.tasks.append(asyncio.create_task(self.listener.run(), name="outbox-listener"))
        for n in range(d.workers):
            worker = DeliveryWorker(
                self.pool,
                self.session,
                self.policy,
                name=f"{prefix}:{n}",
                wake=self.wake,
                lease=lease,
                poll_interval=d.poll_interval,
                connect_timeout=crm.connect_timeout,
                timeout=crm.timeout,
                stats=self.stats,
                on_sent=self.on_sent,
                metrics=self.metrics,
            )
            self.tasks.append(asyncio.create_task(worker.run(), name=f"delivery-{n}"))

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.tasks = []
        if self.session is not None:
            await self.session.close()
