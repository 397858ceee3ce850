"""The composition root of `crm-bridge run`: wires ingest, tracker, store and servers.

Order of start-up: database first (migrations, open calls from a previous run), then the
FastAGI server and the health server (both serve while AMI is down), delivery, then AMI;
the first login's resync closes or adopts what was left open.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import Callable, Sequence

import asyncpg
from aiohttp import web

from .agi import AgiCollector, AgiServer, Directory, start_agi_server
from .ami.ingest import AmiIngest
from .api.health import create_health_app
from .api.recordings import add_recording_routes
from .api.server import HEADER_TIMEOUT, KEEPALIVE, MAX_CONNECTIONS, start_http
from .config import Settings
from .crm.links import recording_link
from .delivery.outbox import Outbox, ensure_primary_target
from .delivery.rating import OutboxRatingSink
from .delivery.service import Delivery
from .observability.metrics import pipeline_figures, pipeline_registry
from .pipeline import CallPipeline
from .replay import tracker_for
from .store.calls import CallStore
from .store.leader import PbxLock
from .store.migrations import migrate
from .systemd import notify, watchdog_interval
from .tracker.model import CallEvent, CallRecord, Output

log = logging.getLogger("bridge.daemon")


class Bridge:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.pool: asyncpg.Pool | None = None
        self.tracker = tracker_for(settings.pbx)
        a = settings.asterisk
        self.ingest = AmiIngest(
            a.host,
            a.port,
            a.username,
            a.secret or "",
            ping_interval=a.ping_interval,
            ping_timeout=a.ping_timeout,
            reconnect_max_delay=a.reconnect_max_delay,
            queue_size=a.queue_size,
            wants=self.tracker.wants,
        )
        self.pipeline: CallPipeline | None = None
        self.delivery: Delivery | None = None
        self.agi: AgiServer | None = None
        self.outbox: Outbox | None = None
        self.runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.stopped = asyncio.Event()
        self.failed = False
        self.lock: PbxLock | None = None

    async def start(self) -> None:
        s = self.settings
        assert s.database.url
        self.pool = await asyncpg.create_pool(
            s.database.url, min_size=s.database.pool_min, max_size=s.database.pool_max
        )
        async with self.pool.acquire() as conn:
            await migrate(conn)
            await ensure_primary_target(
                conn, s.pbx.id, s.crm.url, s.crm.token, s.crm.profile, s.crm.signing_secret
            )
        self.outbox = Outbox(
            s.pbx.id,
            event_ttl=s.crm.event_ttl,
            send_internal=s.pbx.send_internal,
            link_for=self._link_for(),
        )
        self.store = CallStore(
            self.pool, s.pbx.id, self.outbox, callback_window=s.pbx.callback_window
        )
        self.pipeline = CallPipeline(self.ingest, self.tracker, self.store, on_outputs=self._learn)
        self.directory = Directory(s.pbx.users, region=s.pbx.region)
        known = await self.pool.fetch(
            "SELECT DISTINCT ext FROM call_legs WHERE pbx_id = $1 AND kind = 'extension'", s.pbx.id
        )
        self.directory.add_extensions(r["ext"] for r in known)
        self.ingest.login_hooks.append(self._learn_endpoints)
        self.agi = await start_agi_server(
            s, OutboxRatingSink(self.pool, self.outbox), directory=self.directory
        )
        registry = pipeline_registry(self._metrics)
        registry.register(AgiCollector(self.agi.stats))
        app = create_health_app(self._ready, registry, info=self._role)
        if s.api.link_secret:
            add_recording_routes(app, self.pool, s.pbx.id, s.api.link_secret, s.api.recordings_dir)
        self.http = await start_http(
            app,
            s.api.listen_host,
            s.api.listen_port,
            max_connections=MAX_CONNECTIONS,
            header_timeout=HEADER_TIMEOUT,
            keepalive=KEEPALIVE,
        )
        self.runner = self.http.runner  # set together: stop() closes self.http
        self.delivery = Delivery(self.pool, s.database.url, s)
        await self.delivery.start()
        self._tasks.append(asyncio.create_task(self._supervise(self._lead()), name="leader"))
        interval = watchdog_interval()
        if interval:
            self._tasks.append(asyncio.create_task(self._systemd_watchdog(interval)))
        gc.freeze()  # the start-up objects never die: keep full collections from scanning them
        notify("READY=1")

    async def _lead(self) -> None:
        """Standby until this bridge holds the PBX's lock; then follow AMI and track calls."""
        s = self.settings
        assert s.database.url and self.pipeline is not None
        self.lock = PbxLock(s.database.url, s.pbx.id)
        await self.lock.acquire()
        left_open = await self.store.open_calls()  # the previous holder's, after a take-over
        self.tracker.restore(left_open)
        log.info("bridge_tracking", extra={"pbx": s.pbx.id, "calls_left_open": len(left_open)})
        await self.ingest.start()
        pipeline = asyncio.create_task(self.pipeline.run(), name="pipeline")
        watch = asyncio.create_task(self.lock.watch(), name="leader-watch")
        lost = asyncio.create_task(self.lock.lost.wait())
        try:
            done, _ = await asyncio.wait({pipeline, lost}, return_when=asyncio.FIRST_COMPLETED)
            if pipeline in done:
                pipeline.result()  # raises what killed it
            self.failed = True  # the other bridge may track now: stop, systemd restarts us
            self.stopped.set()
        finally:
            for task in (pipeline, watch, lost):
                task.cancel()

    async def _supervise(self, coro) -> None:  # type: ignore[no-untyped-def]
        """A dead side task stops the daemon loudly instead of dying silently."""
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("pipeline_crashed")
            self.failed = True
            self.stopped.set()
            raise

    async def stop(self) -> None:
        notify("STOPPING=1")
        if self.agi is not None:
            await self.agi.close()
        await self.ingest.stop()
        if self.pipeline is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.pipeline.drain(), 10)
        if self.delivery is not None:
            await self.delivery.stop()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.runner is not None:
            await self.http.close()
        if self.lock is not None:
            await self.lock.release()
        if self.pool is not None:
            await self.pool.close()

    def _link_for(self) -> Callable[[CallRecord], str] | None:
        api = self.settings.api
        if not api.link_secret:
            return None
        secret, base, ttl = api.link_secret, api.public_url, api.link_ttl
        return lambda rec: recording_link(base, secret, rec.callid, int(rec.end + ttl))

    def _learn(self, outputs: Sequence[Output]) -> None:
        """The phones seen in calls join the directory (for responsible-manager routing)."""
        self.directory.add_extensions(o.ext for o in outputs if isinstance(o, CallEvent))

    async def _learn_endpoints(self) -> None:
        """After each AMI login: Asterisk's PJSIP endpoints that are employees' phones."""
        try:
            events = await self.ingest.list_action({"Action": "PJSIPShowEndpoints"})
        except (TimeoutError, ConnectionError) as exc:
            log.warning("endpoints_not_listed", extra={"error": repr(exc)})
            return
        classify = self.tracker.classifier.classify
        found = [
            classify(f"PJSIP/{e['ObjectName']}-00000000")
            for e in events
            if e.get("Event") == "EndpointList" and e.get("ObjectName")
        ]
        self.directory.add_extensions(c.ext for c in found if c.ext)
        log.info("endpoints_learnt", extra={"extensions": sum(bool(c.ext) for c in found)})

    async def _ready(self) -> dict[str, bool]:
        db = False
        if self.pool is not None:
            with contextlib.suppress(Exception):
                db = await asyncio.wait_for(self.pool.fetchval("SELECT true"), 2)
        standby = self.lock is None or not self.lock.held
        # a standby is ready (it serves look-ups and delivers); it just does not follow AMI
        return {"ami": self.ingest.connected or standby, "database": bool(db)}

    def _role(self) -> dict[str, str]:
        return {"role": "leader" if self.lock is not None and self.lock.held else "standby"}

    def _metrics(self) -> dict[str, float]:
        stats = self.delivery.stats if self.delivery else None
        return pipeline_figures(self.ingest, self.tracker, self.pipeline, stats)

    async def _systemd_watchdog(self, interval: float) -> None:
        while True:
            notify("WATCHDOG=1")
            await asyncio.sleep(interval)


async def run_bridge(settings: Settings) -> None:
    bridge = Bridge(settings)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, bridge.stopped.set)
    await bridge.start()
    try:
        await bridge.stopped.wait()
    finally:
        log.info("bridge_stopping")
        await bridge.stop()
    if bridge.failed:
        raise SystemExit(1)  # systemd's Restart=on-failure brings us back (as standby)


async def run_delivery(settings: Settings) -> None:
    """`crm-bridge deliver`: delivery workers only (scale-out on other hosts)."""
    assert settings.database.url
    pool = await asyncpg.create_pool(
        settings.database.url, min_size=1, max_size=settings.database.pool_max
    )
    async with pool.acquire() as conn:
        await migrate(conn)
    delivery = Delivery(pool, settings.database.url, settings)
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stopped.set)
    await delivery.start()
    notify("READY=1")
    log.info("delivery_started", extra={"workers": settings.delivery.workers})
    try:
        await stopped.wait()
    finally:
        await delivery.stop()
        await pool.close()
