"""`crm-bridge demo`: the whole pipeline on one machine, no Asterisk needed.

A private PostgreSQL in `.demo/` (its own folder), an AMI server replaying the real
recorded calls of `traces/asterisk22/`, the bridge following it exactly as `run` follows
Asterisk (tracker -> Postgres -> outbox -> delivery workers), a CRM receiver on localhost
printing one JSON line per webhook it gets, and `/healthz`, `/readyz`, `/metrics` on
127.0.0.1:8080. At the end, a summary of the rows in Postgres.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

import asyncpg
from aiohttp import web

from .ami.ingest import AmiIngest
from .api.health import create_health_app
from .config import Settings
from .delivery.outbox import Outbox, ensure_primary_target
from .delivery.service import Delivery
from .delivery.worker import Stats
from .devtools.fake_ami import FakeAmiServer, concat_traces
from .devtools.fake_crm import FakeCrm
from .devtools.local_postgres import LocalPostgres
from .devtools.traces import traces_dir
from .observability.metrics import pipeline_figures, pipeline_registry
from .pipeline import CallPipeline
from .store.calls import CallStore
from .store.migrations import migrate
from .tracker.tracker import CallTracker

REPO = Path(__file__).resolve().parents[1]
SCENARIOS = (
    "in_answered",
    "in_ringgroup",
    "in_queue",
    "in_blind_transfer",
    "in_noanswer",
    "out_answered",
    "out_busy",
    "click_to_call",
    "concurrent",
)
RESET = """
DROP TABLE IF EXISTS calls, call_legs, call_events, webhook_attempts, webhook_outbox,
                     webhook_targets, schema_migrations CASCADE;
DROP FUNCTION IF EXISTS webhook_outbox_notify() CASCADE;
"""


def say(text: str) -> None:
    print(f"demo: {text}", file=sys.stderr, flush=True)


async def run_demo(speed: float = 4.0, traces: Sequence[str] = (), listen_port: int = 8080) -> int:
    directory = traces_dir()
    paths = [Path(t) for t in traces] or [directory / f"{n}.ami.jsonl" for n in SCENARIOS]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        say(f"traces not found: {', '.join(missing)} (set AMI_TRACES to the ami-traces folder)")
        return 2
    raw = concat_traces(paths)
    say(f"starting PostgreSQL in {REPO / '.demo'} ...")
    pg = LocalPostgres(REPO / ".demo" / "pg")
    pg.start()
    server = FakeAmiServer(raw, speed=1 / speed if speed > 0 else None)
    crm = FakeCrm(token="demo-token", print_payloads=True)
    pool = await asyncpg.create_pool(pg.dsn, min_size=1, max_size=6)
    try:
        crm_url = await crm.start()
        async with pool.acquire() as conn:
            await conn.execute(RESET)  # every demo starts from an empty database
            await migrate(conn)
            await ensure_primary_target(conn, "demo", crm_url, "demo-token", "vpbx", None)
        settings = Settings(
            pbx={"id": "demo"},
            database={"url": pg.dsn},
            crm={"url": crm_url, "token": "demo-token"},
        )
        delivery = Delivery(pool, pg.dsn, settings)
        await delivery.start()
        say(f"CRM receiver on {crm_url}: one JSON line per webhook it gets")
        port = await server.start()
        ingest = AmiIngest("127.0.0.1", port, "bridge", "bridge", reconnect_max_delay=1)
        tracker = CallTracker(["PJSIP/trunk-*"], ["PJSIP/*"], "RU", "74957654321")
        store = CallStore(pool, "demo", Outbox("demo", event_ttl=3600))
        pipeline = CallPipeline(ingest, tracker, store)
        runner = await _health(ingest, tracker, pipeline, delivery.stats, listen_port)
        task = asyncio.create_task(pipeline.run())
        await ingest.start()
        await server.wait_done()
        while ingest.received < len(raw) or ingest.buffer or tracker.open_calls:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        await pipeline.drain()
        while await pool.fetchval(  # noqa: ASYNC110
            "SELECT count(*) FROM webhook_outbox WHERE state IN ('pending', 'leased')"
        ):
            await asyncio.sleep(0.05)
        rows = await pool.fetch(
            "SELECT direction, status, count(*) AS n FROM calls GROUP BY 1, 2 ORDER BY 1, 2"
        )
        say(
            "calls in PostgreSQL: "
            + ", ".join(f"{r['direction']}/{r['status']}: {r['n']}" for r in rows)
        )
        say(f"webhooks delivered: {delivery.stats.sent}")
        await ingest.stop()
        task.cancel()
        await delivery.stop()
        if runner is not None:
            await runner.cleanup()
    finally:
        await server.stop()
        await crm.stop()
        await pool.close()
        pg.stop()
    return 0


async def _health(
    ingest: AmiIngest, tracker: CallTracker, pipeline: CallPipeline, stats: Stats, port: int
) -> web.AppRunner | None:
    registry = pipeline_registry(lambda: pipeline_figures(ingest, tracker, pipeline, stats))

    async def ready() -> dict[str, bool]:
        return {"ami": ingest.connected, "database": True}

    runner = web.AppRunner(create_health_app(ready, registry), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", port).start()
    except OSError as exc:
        say(f"port {port} busy ({exc}); no HTTP this time")
        await runner.cleanup()
        return None
    say(f"health and metrics on http://127.0.0.1:{port}/metrics")
    return runner
