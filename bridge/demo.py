"""`crm-bridge demo`: the whole pipeline on one machine, no Asterisk needed.

A private PostgreSQL in `.demo/` (its own folder), an AMI server replaying the real
recorded calls of `shared/ami-traces/`, the bridge following it exactly as `run` follows
Asterisk, and `/healthz`, `/readyz`, `/metrics` on 127.0.0.1:8080. It prints, one JSON
line each, what the CRM receives, then a summary of the rows in Postgres.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import asyncpg
from aiohttp import web

from .ami.ingest import AmiIngest
from .api.health import create_health_app
from .devtools.fake_ami import FakeAmiServer, concat_traces
from .devtools.local_postgres import LocalPostgres
from .observability.metrics import pipeline_registry
from .pipeline import CallPipeline
from .replay import crm_payloads
from .store.calls import CallStore
from .store.migrations import migrate
from .tracker.model import Output
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


def traces_dir() -> Path:
    return Path(os.environ.get("AMI_TRACES", REPO.parent / "shared" / "ami-traces"))


async def run_demo(speed: float = 4.0, traces: Sequence[str] = (), listen_port: int = 8080) -> int:
    directory = traces_dir()
    paths = [Path(t) for t in traces] or [directory / f"{n}.ami.jsonl" for n in SCENARIOS]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        print(
            f"crm-bridge demo: traces not found: {', '.join(missing)} "
            f"(set AMI_TRACES to the ami-traces folder)",
            file=sys.stderr,
        )
        return 2
    raw = concat_traces(paths)
    print(f"demo: starting PostgreSQL in {REPO / '.demo'} ...", file=sys.stderr)
    pg = LocalPostgres(REPO / ".demo" / "pg")
    pg.start()
    pool = None
    server = FakeAmiServer(raw, speed=1 / speed if speed > 0 else None)
    try:
        dsn = pg.dsn_for("postgres")
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4)
        async with pool.acquire() as conn:
            await conn.execute(
                "DROP TABLE IF EXISTS calls, call_legs, call_events, schema_migrations"
            )
            await migrate(conn)
        port = await server.start()
        ingest = AmiIngest("127.0.0.1", port, "bridge", "bridge", reconnect_max_delay=1)
        tracker = CallTracker(["PJSIP/trunk-*"], ["PJSIP/*"], "RU", "74957654321")

        def show(outputs: Sequence[Output]) -> None:
            for payload in crm_payloads(list(outputs)):
                print(json.dumps(payload, ensure_ascii=False), flush=True)

        pipeline = CallPipeline(ingest, tracker, CallStore(pool, "demo"), on_outputs=show)
        registry = pipeline_registry(
            lambda: {
                "received": ingest.received,
                "dropped": ingest.dropped,
                "reconnects": ingest.reconnects,
                "connected": float(ingest.connected),
                "queue": len(ingest.buffer),
                "calls_up": tracker.open_calls,
                "store_failures": pipeline.store_failures,
            }
        )

        async def ready() -> dict[str, bool]:
            return {"ami": ingest.connected, "database": True}

        runner = web.AppRunner(create_health_app(ready, registry), access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", listen_port).start()
            print(
                f"demo: health and metrics on http://127.0.0.1:{listen_port}/metrics",
                file=sys.stderr,
            )
        except OSError as exc:
            print(f"demo: port {listen_port} busy ({exc}); no HTTP this time", file=sys.stderr)
        task = asyncio.create_task(pipeline.run())
        await ingest.start()
        await server.wait_done()
        while ingest.received < len(raw) or ingest.buffer or tracker.open_calls:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        await pipeline.drain()
        rows = await pool.fetch(
            "SELECT direction, status, count(*) AS n FROM calls GROUP BY 1, 2 ORDER BY 1, 2"
        )
        print(
            "demo: calls in PostgreSQL: "
            + ", ".join(f"{r['direction']}/{r['status']}: {r['n']}" for r in rows),
            file=sys.stderr,
        )
        await ingest.stop()
        task.cancel()
        await runner.cleanup()
    finally:
        await server.stop()
        if pool is not None:
            await pool.close()
        pg.stop()
    return 0
