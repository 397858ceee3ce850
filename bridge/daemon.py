"""The composition root of `crm-bridge run` (and of the demo): what starts when.

1. FastAGI and HTTP first: they serve whether or not PostgreSQL and AMI are there
   (contact look-ups never need the database; ratings wait in memory for it).
2. The database: migrations and the primary target, retried with backoff while it is
   down (plain log lines, no traceback).
3. Delivery workers and the retention sweep.
4. Leadership: standby until this bridge holds the PBX's lock, then a *term*: a tracker,
   an AMI link and a pipeline of its own, with the calls a previous holder left open.
   The leader writes the directory (the config at the term's start, Asterisk's endpoints
   and queues after each AMI login and every `[pbx] directory_refresh` seconds); every
   bridge reads it back (tracker logins, AGI routing, `telnum_name`, click-to-call).
   When PostgreSQL goes away the lock goes with it; the term keeps tracking into the
   pipeline's buffer and re-takes the lock when the database answers. If another bridge
   took it meanwhile, the term writes what it buffered and steps down to standby.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
from collections.abc import Coroutine, Sequence
from typing import Any

import asyncpg

from .agi import AgiCollector, AgiServer, Directory
from .agi.call_ids import known_by_any
from .agi.rating_buffer import BufferedRatingSink
from .agi.worker import AgiWorker, lower_priority, serve_agi
from .ami.ingest import AmiIngest
from .ami.originate import AmiDialer
from .api.app import create_app
from .api.server import HEADER_TIMEOUT, KEEPALIVE, MAX_CONNECTIONS, HttpServer, start_http
from .api.services import Services
from .backoff import Backoff
from .cel.service import Backfiller
from .config import Settings
from .delivery.rating import OutboxRatingSink, call_in_store
from .delivery.service import Delivery
from .directory_sync import DirectorySync, DirectoryView
from .net.priority import Priority
from .observability.logs import dropped_lines, get_logger
from .observability.metrics import (
    BacklogCollector,
    pipeline_figures,
    pipeline_registry,
)
from .pipeline import CallPipeline
from .provision import PROVISIONING, Provisioning
from .store import outbox, retention
from .store.apikeys import KeyRing
from .store.calls import CallStore
from .store.errors import DB_ERRORS_OR_TIMEOUT
from .store.leader import PbxLock
from .store.migrations import migrate
from .store.partitions import make_partitions
from .store.targets import ensure_primary_target
from .systemd import notify, watchdog_interval
from .tracker.model import CallEvent, Output
from .tracker.tracker import CallTracker
from .wiring import (
    call_store_from,
    cel_source_from,
    ingest_from,
    open_connections,
    open_pool,
    tracker_from,
)

log = get_logger("bridge.daemon")

BACKLOG_EVERY = 5.0  # seconds between two reads of the outbox backlog (metrics, readyz)
DIRECTORY_RELOAD_EVERY = 30.0  # seconds between two reads of the directory (API edits)


class Term:
    """One period of leadership: a tracker, an AMI link and a pipeline of their own."""

    def __init__(self, bridge: Bridge, seen_until: float | None = None) -> None:
        s = bridge.settings
        self.tracker: CallTracker = tracker_from(s.pbx)
        bridge.view.attach(self.tracker)  # employees' logins and group names
        self.ingest: AmiIngest = ingest_from(s, self.tracker, bridge.priority)
        self.ingest.login_hooks.append(lambda: bridge.refresh_directory(self))
        if bridge.provisioning is not None:  # AstDB synced, pending config applied
            self.ingest.login_hooks.append(bridge.provisioning.on_login)
        self.pipeline = CallPipeline(
            self.ingest,
            self.tracker,
            bridge.store,
            buffer_limit=s.database.outage_buffer,
            on_outputs=bridge.learn_from_calls,
            seen_until=seen_until,
            priority=bridge.priority,
        )
        self.backfill: Backfiller | None = None
        source = cel_source_from(s)
        if source is not None:
            self.backfill = Backfiller(
                source,
                self.tracker,
                bridge.store.finished_among,
                self.pipeline.inject,
                poll=s.cel.poll_interval,
                settle_timeout=s.cel.settle_timeout,
            )
            self.pipeline.backfill = self.backfill
        self.task: asyncio.Task[None] | None = None
        self.backfill_task: asyncio.Task[None] | None = None

    async def start(self, left_open: Sequence[Any]) -> None:
        self.tracker.restore(left_open)
        self.task = asyncio.create_task(self.pipeline.run(), name="pipeline")
        if self.backfill is not None:
            self.backfill_task = asyncio.create_task(self.backfill.run(), name="cel-backfill")
        await self.ingest.start()

    async def stop(self, drain_for: float) -> None:
        """Stop following AMI; write what was tracked (for at most `drain_for` seconds)."""
        await self.ingest.stop()
        if self.backfill_task is not None:
            self.backfill_task.cancel()
            await asyncio.gather(self.backfill_task, return_exceptions=True)
            assert self.backfill is not None
            await self.backfill.source.close()
        try:
            await asyncio.wait_for(self.pipeline.drain(), drain_for)
        except TimeoutError:
            log.error("pipeline_not_drained", buffered=self.pipeline.buffered)
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)


class Bridge:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.pool: asyncpg.Pool | None = None
        self.api_pool: asyncpg.Pool | None = None  # the pull APIs' and provisioning's requests
        self.store: CallStore
        self.directory = Directory(settings.pbx.users, region=settings.pbx.region)
        self.view = DirectoryView(settings.pbx, self.directory)
        self.sync: DirectorySync
        self.dialer: AmiDialer | None = None
        self.provisioning: Provisioning | None = None
        self.agi: AgiServer | AgiWorker | None = None
        # FastAGI look-ups go before AMI reading and tracking on this loop
        self.priority = Priority()
        self.ratings: BufferedRatingSink | None = None
        self.delivery: Delivery | None = None
        self.http: HttpServer | None = None
        self.http_port = 0
        self.term: Term | None = None
        self.lock: PbxLock | None = None
        self.database_ready = asyncio.Event()
        self.backlog: list[outbox.Backlog] = []
        self.stopped = asyncio.Event()
        self.failed = False
        self._tasks: list[asyncio.Task[None]] = []

    # ------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        s = self.settings
        self.pool = await open_pool(s)  # connects lazily: never fails here
        self.store = call_store_from(self.pool, s, self.view.number_names, self.view.direct_numbers)
        self.sync = DirectorySync(s.pbx, self.pool, self.view)
        known = known_by_any(self._tracker_knows, call_in_store(self.store))
        self.ratings = BufferedRatingSink(OutboxRatingSink(self.store), known)
        self.agi = await serve_agi(s, self.ratings, self.directory, known, self.priority)
        await self._start_http()
        if not s.cel.source:
            log.info(
                "cel_backfill_off",
                hint="no [cel] section: calls that start and end while the bridge is away "
                "are not reported (README: Backfill from CEL)",
            )
        self._spawn(self._run(), "bridge")
        interval = watchdog_interval()
        if interval:
            self._spawn(self._systemd_watchdog(interval), "systemd-watchdog")
        gc.freeze()  # the start-up objects never die: keep full collections from scanning them
        notify("READY=1")

    async def _start_http(self) -> None:
        s = self.settings
        registry = pipeline_registry(self._figures)
        assert self.agi is not None
        agi = self.agi
        registry.register(AgiCollector(agi.stats, lambda: agi.latency))
        registry.register(BacklogCollector(lambda: self.backlog))
        self._registry = registry
        assert self.pool is not None
        self.api_pool = api_pool = await open_pool(s, plans_per_query=True)
        self.keys = KeyRing(api_pool, s.pbx.id)
        self.dialer = AmiDialer(self._ami, self.view.employee, s.api, s.pbx.region)
        services = Services(s, api_pool, self.store, self.keys, ami=self._ami, dialer=self.dialer)
        app = create_app(
            services,
            ready=self._ready,
            registry=registry,
            info=self._role,
            soft=frozenset({"database", "webhooks"}),
        )
        # provisioning for the API dialects (bridge.provision.provisioning_of): writes go
        # to Asterisk through this bridge's AMI link while it leads, and this process's
        # directory view is reloaded at once after each
        self.provisioning = Provisioning(s, api_pool, self._ami, reload_view=self.sync.reload)
        app[PROVISIONING] = self.provisioning
        self.http = await start_http(
            app,
            s.api.listen_host,
            s.api.listen_port,
            max_connections=MAX_CONNECTIONS,
            header_timeout=HEADER_TIMEOUT,
            keepalive=KEEPALIVE,
        )
        self.http_port = self.http.port

    async def _run(self) -> None:
        await self._database()
        assert self.pool is not None and self.settings.database.url
        self.delivery = Delivery(self.pool, self.settings.database.url, self.settings)
        self._registry.register(self.delivery.metrics)
        await self.delivery.start()
        self._spawn(self._refresh_backlog(), "backlog")
        self._spawn(self._prune(), "retention")
        self._spawn(self._follow_directory(), "directory")
        await self._lead()

    async def _database(self) -> None:
        """Migrations, this year's partitions, the primary target and the known phones;
        retried while PostgreSQL does not answer."""
        s = self.settings
        assert self.pool is not None
        backoff = Backoff(first=1.0, cap=30.0)
        while True:
            try:
                async with self.pool.acquire() as conn:
                    await migrate(conn)
                    await make_partitions(conn)  # this year's, before its first call
                    await ensure_primary_target(
                        conn, s.pbx.id, s.crm.url, s.crm.token, s.crm.profile, s.crm.signing_secret
                    )
                self.directory.add_extensions(await self.store.known_extensions())
                break
            except DB_ERRORS_OR_TIMEOUT as exc:
                log.warning(
                    "database_unavailable_retrying",
                    error=_plain(exc),
                    retry_in=round(backoff.delay, 1),
                )
                await backoff.sleep()
        await self.sync.reload()
        try:  # a head start, not a condition: PostgreSQL may allow fewer connections
            await asyncio.wait_for(
                open_connections(self.pool, s.database.pool_min), s.database.connect_timeout
            )
        except DB_ERRORS_OR_TIMEOUT as exc:
            log.warning("pool_min_not_opened", pool_min=s.database.pool_min, error=_plain(exc))
        self.database_ready.set()
        log.info("database_ready")

    async def _lead(self) -> None:
        """Standby until this bridge holds the PBX's lock, then one term after another."""
        s = self.settings
        assert s.database.url
        backoff = Backoff(first=1.0, cap=30.0)
        while True:
            self.lock = lock = PbxLock(s.database.url, s.pbx.id, timeout=s.database.connect_timeout)
            await lock.acquire()
            try:
                left_open = await self.store.open_calls()
                seen_until = await self.store.seen_until(gaps=bool(s.cel.source))
            except DB_ERRORS_OR_TIMEOUT as exc:
                log.warning("open_calls_unavailable", error=_plain(exc), retry_in=backoff.delay)
                await lock.release()
                await backoff.sleep()
                continue
            backoff.reset()
            await self.sync.refresh(None)  # the config, before Asterisk is asked
            self.term = term = Term(self, seen_until)
            log.info(
                "bridge_tracking",
                pbx=s.pbx.id,
                calls_left_open=len(left_open),
                seen_until=seen_until,
                cel=s.cel.source or None,
            )
            await term.start(left_open)
            try:
                await self._follow(term, lock)
            finally:
                self.term = None
                # stepping down: write everything (the database is back); stopping: briefly
                await term.stop(drain_for=10.0 if self.stopped.is_set() else 120.0)
                await lock.release()
            log.warning("stepped_down_to_standby", pbx=s.pbx.id)

    async def _follow(self, term: Term, lock: PbxLock) -> None:
        """Returns when this bridge must step down; raises when the pipeline died."""
        assert term.task is not None
        while True:
            watch = asyncio.create_task(lock.watch(), name="leader-watch")
            lost = asyncio.create_task(lock.lost.wait(), name="leader-lost")
            try:
                await asyncio.wait({term.task, lost}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (watch, lost):
                    task.cancel()
                await asyncio.gather(watch, lost, return_exceptions=True)
            if term.task.done():
                term.task.result()  # raises what killed it
                raise RuntimeError("the pipeline stopped")
            # PostgreSQL went away with our lock: keep tracking into the buffer meanwhile
            log.error("leader_lock_lost_tracking_on", buffered=term.pipeline.buffered)
            if await lock.retake():
                log.warning("leader_lock_retaken", buffered=term.pipeline.buffered)
                continue
            log.error(
                "leader_lock_taken_by_another_bridge",
                buffered=term.pipeline.buffered,
            )
            return  # `_lead` writes what was buffered, then waits as standby

    async def stop(self) -> None:
        notify("STOPPING=1")
        if self.agi is not None:
            await self.agi.close()
        if self.ratings is not None:
            await self.ratings.close()  # written now if the database answers
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()  # the term, if any, drains in `_lead`'s finally
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.delivery is not None:
            await self.delivery.stop()
        if self.http is not None:
            await self.http.close()
        if self.lock is not None:
            await self.lock.release()
        await asyncio.gather(*(_close(p) for p in (self.api_pool, self.pool) if p is not None))

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        self._tasks.append(asyncio.create_task(self._supervise(coro, name), name=name))

    async def _supervise(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        """A dead side task stops the daemon loudly instead of dying silently."""
        try:
            await coro
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("task_crashed", task=name)
            self.failed = True
            self.stopped.set()

    # -------------------------------------------------------- side work

    def learn_from_calls(self, outputs: Sequence[Output]) -> None:
        """The phones seen in calls join the directory (for responsible-manager routing)."""
        self.directory.add_extensions(o.ext for o in outputs if isinstance(o, CallEvent))

    async def refresh_directory(self, term: Term) -> None:
        """After each AMI login: Asterisk's phones and queues, with the config, into the
        directory."""
        await self.sync.refresh(term.ingest)

    async def _follow_directory(self) -> None:
        """The view follows PostgreSQL (what API clients wrote); the leader re-reads
        Asterisk every `[pbx] directory_refresh` seconds."""
        every = min(DIRECTORY_RELOAD_EVERY, self.settings.pbx.directory_refresh)
        while True:
            await asyncio.sleep(every)
            term = self.term
            if term is not None and term.ingest.connected and self.sync.due():
                await self.sync.refresh(term.ingest)
            else:
                await self.sync.reload()
            if term is not None and term.ingest.connected and self.provisioning is not None:
                await self.provisioning.catch_up()  # what a standby stored, or left pending

    async def _refresh_backlog(self) -> None:
        assert self.pool is not None
        while True:
            with contextlib.suppress(*DB_ERRORS_OR_TIMEOUT):
                self.backlog = await outbox.backlog(self.pool, self.settings.pbx.id)
            await asyncio.sleep(BACKLOG_EVERY)

    async def _prune(self) -> None:
        """Retention now and every interval; after each interval also the partitions due
        (start-up made this year's: `_database`)."""
        r = self.settings.retention
        assert self.pool is not None
        while True:
            try:
                pruned = await retention.prune(
                    self.pool,
                    self.settings.pbx.id,
                    sent_days=r.sent_days,
                    attempts_days=r.attempts_days,
                    calls_days=r.calls_days,
                )
                if pruned.sent_rows or pruned.attempts or pruned.calls or pruned.partitions:
                    log.info(
                        "retention_pruned",
                        sent_rows=pruned.sent_rows,
                        attempts=pruned.attempts,
                        calls=pruned.calls,
                        partitions=pruned.partitions,
                    )
            except DB_ERRORS_OR_TIMEOUT as exc:
                log.warning("retention_skipped", error=_plain(exc))
            await asyncio.sleep(r.interval)
            try:
                made = await make_partitions(self.pool)
                if made:
                    log.info("partitions_made", partitions=made)
            except DB_ERRORS_OR_TIMEOUT as exc:
                log.warning("partitions_skipped", error=_plain(exc))

    # ----------------------------------------------------------- ops views

    async def _ready(self) -> dict[str, bool]:
        pool, api_pool = self.pool, self.api_pool  # the bridge's and the pull APIs'
        both = pool is not None and api_pool is not None
        db = both and await _answers(pool) and await _answers(api_pool)
        term = self.term
        lagging = any(
            b.oldest_history_age > self.settings.api.ready_history_age for b in self.backlog
        )
        checks = {
            "database": db and self.database_ready.is_set(),
            "webhooks": not lagging,
        }
        # a standby is ready (it serves look-ups and delivers); it does not follow AMI, so
        # it has no AMI login to report (`role` says which it is)
        if term is not None:
            checks = {"ami": term.ingest.connected, **checks}
        return checks

    async def _tracker_knows(self, callid: str) -> bool | None:
        """The tracker's part of "is this a call of ours" (the store is asked next): True
        for a call followed now or finished recently; None while tracked calls wait to be
        stored (it may be one of them: the store cannot tell yet); else False, and the
        store decides. Never None for good: a rating waiting on None holds the ratings
        queued behind it."""
        term = self.term
        if term is None:
            return False  # a standby tracks nothing: the store knows what the leader stored
        if term.tracker.knows(callid):
            return True
        return None if term.pipeline.buffered else False

    def _ami(self) -> AmiIngest | None:
        """The AMI link, while this bridge leads and Asterisk is logged in."""
        term = self.term
        return term.ingest if term is not None and term.ingest.connected else None

    def _role(self) -> dict[str, Any]:
        term = self.term
        info: dict[str, Any] = {"role": "leader" if term is not None else "standby"}
        if term is not None:
            info["buffered"] = term.pipeline.buffered
        return info

    def _figures(self) -> dict[str, float]:
        term = self.term
        stats = self.delivery.stats if self.delivery else None
        figures = pipeline_figures(
            term.ingest if term else None,
            term.tracker if term else None,
            term.pipeline if term else None,
            stats,
        )
        figures["leader"] = float(term is not None)
        figures["log_dropped"] = dropped_lines()
        return figures

    async def _systemd_watchdog(self, interval: float) -> None:
        while True:
            notify("WATCHDOG=1")
            await asyncio.sleep(interval)


async def _answers(pool: asyncpg.Pool) -> bool:
    """Whether PostgreSQL answers through `pool` within 2 s."""
    try:
        return bool(await asyncio.wait_for(pool.fetchval("SELECT true"), 2))
    except Exception:
        return False


async def _close(pool: asyncpg.Pool) -> None:
    """Close gracefully within 5 s, else cut the connections."""
    try:
        await asyncio.wait_for(pool.close(), 5)
    except Exception:
        pool.terminate()


def _plain(exc: BaseException) -> str:
    """An error in one line, without a traceback (and without a DSN: asyncpg never puts
    the password in its messages)."""
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:300]


async def run_bridge(settings: Settings) -> None:
    bridge = Bridge(settings)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, bridge.stopped.set)
    try:
        await bridge.start()
        if settings.agi.own_process and settings.agi.bridge_nice:
            # after the FastAGI worker started: it keeps the priority the daemon had
            log.info("bridge_nice", nice=lower_priority(settings.agi.bridge_nice))
        await bridge.stopped.wait()
    finally:
        log.info("bridge_stopping")
        await bridge.stop()
    if bridge.failed:
        raise SystemExit(1)  # systemd's Restart=on-failure brings us back


async def run_delivery(settings: Settings) -> None:
    """`crm-bridge deliver`: delivery workers only (scale-out on other hosts)."""
    assert settings.database.url
    pool = await open_pool(settings)
    backoff = Backoff(first=1.0, cap=30.0)
    while True:
        try:
            async with pool.acquire() as conn:
                await migrate(conn)
            break
        except DB_ERRORS_OR_TIMEOUT as exc:
            log.warning("database_unavailable_retrying", error=_plain(exc))
            await backoff.sleep()
    delivery = Delivery(pool, settings.database.url, settings)
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stopped.set)
    await delivery.start()
    notify("READY=1")
    log.info("delivery_started", workers=settings.delivery.workers)
    try:
        await stopped.wait()
    finally:
        await delivery.stop()
        await pool.close()
