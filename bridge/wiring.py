"""How the parts are built from the settings: one place, used by `run`, `demo` and `replay`.

Factories only; the lifecycle (what starts when, what waits for the database, leadership)
is `bridge.daemon.Bridge`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AsyncExitStack

import asyncpg

from .ami.ingest import AmiIngest
from .cel.pglog import CelTable
from .cel.service import CelSource, CsvSource
from .config import PbxSettings, Settings
from .crm.links import recording_link
from .crm.outbox_rows import OutboxRows
from .net.priority import Priority
from .store.calls import CallStore
from .store.codecs import prime_codecs
from .tracker.model import CallRecord
from .tracker.tracker import CallTracker


def tracker_from(pbx: PbxSettings) -> CallTracker:
    """A call tracker configured from a `[pbx]` section."""
    return CallTracker(
        trunks=list(pbx.trunks),
        extensions=list(pbx.extensions),
        region=pbx.region,
        main_number=pbx.main_number or "",
        users=pbx.users,
        groups=pbx.groups,
    )


def ingest_from(
    settings: Settings, tracker: CallTracker, priority: Priority | None = None
) -> AmiIngest:
    a = settings.asterisk
    return AmiIngest(
        a.host,
        a.port,
        a.username,
        a.secret or "",
        ping_interval=a.ping_interval,
        ping_timeout=a.ping_timeout,
        reconnect_max_delay=a.reconnect_max_delay,
        queue_size=a.queue_size,
        wants=tracker.wants,
        priority=priority,
    )


def recording_links(settings: Settings) -> Callable[[CallRecord], str] | None:
    """Signed, expiring recording links, when `[api] link_secret` is set."""
    api = settings.api
    if not api.link_secret:
        return None
    secret, base, ttl = api.link_secret, api.public_url, api.link_ttl
    return lambda rec: recording_link(base, secret, rec.callid, int(rec.end + ttl))


def outbox_rows_from(
    settings: Settings,
    number_names: Mapping[str, str] | None = None,
    direct_numbers: Mapping[str, str] | None = None,
) -> OutboxRows:
    """`number_names`: company number -> name for `telnum_name`, by default the config's
    `[pbx] numbers`; `direct_numbers`: extension -> the employee's direct number for
    `telnum` (the config has none). Both the directory's, kept up to date in place."""
    if number_names is None:
        number_names = {n: e.name for n, e in settings.pbx.numbers.items() if e.name}
    return OutboxRows(
        settings.pbx.id,
        event_ttl=settings.crm.event_ttl,
        send_internal=settings.pbx.send_internal,
        link_for=recording_links(settings),
        number_names=number_names,
        direct_numbers=direct_numbers,
    )


def call_store_from(
    pool: asyncpg.Pool,
    settings: Settings,
    number_names: Mapping[str, str] | None = None,
    direct_numbers: Mapping[str, str] | None = None,
) -> CallStore:
    return CallStore(
        pool,
        settings.pbx.id,
        outbox_rows_from(settings, number_names, direct_numbers),
        callback_window=settings.pbx.callback_window,
    )


async def open_pool(
    settings: Settings, *, max_size: int | None = None, plans_per_query: bool = False
) -> asyncpg.Pool:
    """A pool that opens no connection up front (start-up never fails because PostgreSQL
    is down; `open_connections` fills it once it answers) and bounds every connect and
    every query. `plans_per_query`: the pull APIs' pool (below). Each pool names itself in
    PostgreSQL's `pg_stat_activity.application_name`."""
    db = settings.database
    assert db.url
    pool: asyncpg.Pool = await asyncpg.create_pool(
        db.url,
        min_size=0,
        max_size=max_size or db.pool_max,
        timeout=db.connect_timeout,
        command_timeout=db.command_timeout,
        server_settings=(
            {"application_name": "crm-bridge api", **PLANS_PER_QUERY}
            if plans_per_query
            else {"application_name": "crm-bridge"}
        ),
        init=prime_codecs,
    )
    return pool


# asyncpg prepares every statement, and after five runs PostgreSQL may keep one generic
# plan for it. The pull APIs' queries select very different slices (one employee's
# month, a whole year, one number): a plan made for the values at hand was 3x faster on
# a filtered page of 1,000,000 calls (4 ms against 11-19 ms); planning costs ~0.4 ms.
# The bridge's own writes and deliveries have one shape each: for them, planning every
# time cost 4 ms of hang-up -> history (p50 18.5 vs 14.5 ms) and 7-15% of deliveries/s,
# so the APIs read through a pool of their own.
PLANS_PER_QUERY = {"plan_cache_mode": "force_custom_plan"}


async def open_connections(pool: asyncpg.Pool, count: int) -> None:
    """Open (and prime) `count` connections now, so the first saves after start do not
    pay for them (`[database] pool_min`)."""
    async with AsyncExitStack() as held:
        for _ in range(min(count, pool.get_max_size())):
            await held.enter_async_context(pool.acquire())


def cel_source_from(settings: Settings) -> CelSource | None:
    """Asterisk's Channel Event Log as `[cel]` says, or None (no backfill)."""
    cel = settings.cel
    if cel.source == "csv":
        return CsvSource(cel.path, cel.fields, cel.timezone)
    if cel.source == "pgsql":
        assert cel.url
        return CelTable(cel.url, cel.table, cel.timezone)
    return None
