"""The pull APIs on a million calls: page latency, requests/s, a streamed CSV export.

A private PostgreSQL holds 1,000,000 finished calls spread over the last 365 days (40
employees, two groups, every direction and status; `BENCH_API_CALLS` changes the count);
the bridge's HTTP application runs in a process of its own, exactly as the daemon serves
it (capped listener, middlewares, API keys); this process is the client.

Targets (issue 10): p99 <= 50 ms for a filtered page of the native calls list and for a
month of `/crmapi/v1/history/json`; the CSV export of every call in constant memory (the
server's peak RSS must not grow with the row count: it is measured after exporting 10 %
of the calls and again after all of them).

``python -m bench.api`` prints the report alone; ``api_report()`` returns it.
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import os
import random
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from typing import Any

PBX = "bench"
PAGE_TARGET_MS = 50.0

GENERATE = """
INSERT INTO calls (pbx_id, callid, born, direction, status, phone, diversion, ext, user_login,
                   group_name, started_at, answered_at, ended_at, duration, wait, recording,
                   closed_by)
SELECT $1, callid, call_day(callid), dir,
       CASE WHEN dir = 'out' THEN (ARRAY['Success','Success','Success','Busy','missed',
                                         'Cancel','NotAvailable'])[1 + (g * 7 % 7)]
            WHEN r2 < 0.7 THEN 'Success' ELSE 'missed' END,
       '7910' || lpad((g * 7919 % 10000000)::text, 7, '0'),
       '7495765432' || (g % 3)::text,
       (1000 + u)::text, 'user' || lpad(u::text, 2, '0'),
       CASE WHEN dir = 'in' AND g % 4 = 0 THEN 'Sales'
            WHEN dir = 'in' AND g % 4 = 1 THEN 'Support' ELSE '' END,
       start, start + make_interval(secs => 5), start + make_interval(secs => 5 + (g % 300)),
       g % 300, 5, '', 'hangup'
FROM (
    SELECT g, 1 + g % 40 AS u, ((g * 2654435761) % 1000) / 1000.0 AS r2,
           CASE WHEN g % 20 = 0 THEN 'internal' WHEN g % 3 = 0 THEN 'out' ELSE 'in' END AS dir,
           start, extract(epoch FROM start)::bigint || '.' || g AS callid
    FROM (SELECT g, now() - make_interval(secs => (g::float8 / $2) * 365 * 86400) AS start
          FROM generate_series(1::bigint, $2::bigint) AS g) t
) s
"""

# the years of those calls, as a bridge running all along would have made them
YEARS = """
SELECT call_partition(t, y::date)
FROM generate_series(date_trunc('year', now() - interval '366 days'), now() + interval '1 year',
                     interval '1 year') AS y,
     unnest(ARRAY['calls', 'call_events', 'call_legs']) AS t
"""


# --------------------------------------------------------------------------- the server


async def _serve(conn: Connection, dsn: str) -> None:
    from prometheus_client import CollectorRegistry

    from bridge.api.app import create_app
    from bridge.api.server import start_http
    from bridge.api.services import Services
    from bridge.config import Settings
    from bridge.observability.logs import configure_logging
    from bridge.store.apikeys import KeyRing
    from bridge.store.calls import CallStore
    from bridge.wiring import open_pool

    class _Null:
        def write(self, text: str) -> int:
            return len(text)

        def flush(self) -> None:
            pass

    configure_logging("info", stream=_Null())  # type: ignore[arg-type]
    settings = Settings.model_validate({"pbx": {"id": PBX}, "database": {"url": dsn}})
    pool = await open_pool(settings, max_size=10, plans_per_query=True)  # the daemon's API pool
    services = Services(settings, pool, CallStore(pool, PBX), KeyRing(pool, PBX))

    async def ready() -> dict[str, bool]:
        return {"database": True}

    app = create_app(services, ready=ready, registry=CollectorRegistry())
    http = await start_http(
        app, "127.0.0.1", 0, max_connections=256, header_timeout=5.0, keepalive=15.0
    )
    gc.freeze()
    conn.send(http.port)
    await asyncio.Event().wait()


def _server_main(conn: Connection, dsn: str) -> None:
    asyncio.run(_serve(conn, dsn))


def _peak_rss_kib(pid: int) -> int:
    """The process's peak resident set (VmHWM), in KiB."""
    with open(f"/proc/{pid}/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


# --------------------------------------------------------------------------- the client


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _latencies(
    http: Any, paths: Callable[[int], str], n: int, headers: dict[str, str]
) -> tuple[list[float], int, int]:
    """`n` requests one after another: their latencies (ms), the last status, rows seen."""
    out: list[float] = []
    status = rows = 0
    for i in range(n):
        started = time.perf_counter()
        async with http.get(paths(i), headers=headers) as resp:
            body = await resp.read()
            status = resp.status
        out.append((time.perf_counter() - started) * 1000)
        rows += body.count(b'"start"')
    return out, status, rows


async def _throughput(
    http: Any, paths: Callable[[int], str], headers: dict[str, str], seconds: float = 5.0
) -> float:
    done = 0
    stop = time.perf_counter() + seconds

    async def client(k: int) -> None:
        nonlocal done
        i = k
        while time.perf_counter() < stop:
            async with http.get(paths(i), headers=headers) as resp:
                await resp.read()
            done += 1
            i += 16

    started = time.perf_counter()
    await asyncio.gather(*(client(k) for k in range(16)))
    return done / (time.perf_counter() - started)


def _months() -> list[tuple[datetime, datetime]]:
    today = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    out = []
    start = today
    for _ in range(11):
        start = (start - timedelta(days=1)).replace(day=1)
        end = (start + timedelta(days=32)).replace(day=1)
        out.append((start, end))
    return out


async def _measure(port: int, key: str, server_pid: int, calls: int) -> list[str]:
    import aiohttp

    headers = {"X-API-Key": key, "X-API-KEY": key}
    months = _months()
    lines = []
    async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http:

        def native(i: int) -> str:
            start, end = months[i % len(months)]
            user = f"user{1 + i % 40:02d}"
            return (
                f"/api/v1/calls?from={start:%Y-%m-%d}&to={end:%Y-%m-%d}&direction=in"
                f"&status=missed&user={user}&limit=50&offset={(i % 5) * 50}"
            )

        def vpbx(i: int) -> str:
            start, end = months[i % len(months)]
            return (
                f"/crmapi/v1/history/json?start={start:%Y%m%dT%H%M%SZ}"
                f"&end={end:%Y%m%dT%H%M%SZ}&type=missed&limit=100"
            )

        rows: list[tuple[str, str, Callable[[int], str]]] = [
            ("native calls page (month, in, missed, one user, 50)", "native", native),
            ("VPBX history/json (a month, missed, 100)", "vpbx", vpbx),
        ]
        for label, _, paths in rows:
            await _latencies(http, paths, 20, headers)  # warm-up: plans and caches
            lat, status, seen = await _latencies(http, paths, 300, headers)
            if status != 200:
                lines.append(f"{label}: skipped (HTTP {status})")
                continue
            p50, p99 = statistics.median(lat), _pct(lat, 0.99)
            rate = await _throughput(http, paths, headers)
            verdict = "met" if p99 <= PAGE_TARGET_MS else "MISSED"
            lines.append(
                f"{label}: p50 {p50:.1f} ms, p99 {p99:.1f} ms (target <= {PAGE_TARGET_MS:.0f}:"
                f" {verdict}); {rate:,.0f} requests/s with 16 clients; {seen / 300:.0f} rows/page"
            )
        lines.extend(await _csv(http, headers, server_pid, calls))
    return lines


async def _csv(http: Any, headers: dict[str, str], pid: int, calls: int) -> list[str]:
    out = []
    base = _peak_rss_kib(pid)
    since = (datetime.now(UTC) - timedelta(days=37)).strftime("%Y-%m-%d")  # ~10 %
    for label, path in (
        ("10 % of the calls", f"/api/v1/calls.csv?from={since}"),
        ("every call", "/api/v1/calls.csv"),
    ):
        started = time.perf_counter()
        size = lines = 0
        async with http.get(path, headers=headers) as resp:
            if resp.status != 200:
                return [f"CSV export: skipped (HTTP {resp.status})"]
            async for chunk in resp.content.iter_chunked(1 << 16):
                size += len(chunk)
                lines += chunk.count(b"\n")
        seconds = time.perf_counter() - started
        peak = _peak_rss_kib(pid) / 1024
        out.append(
            f"CSV export, {label}: {lines - 1:,} rows, {size / 1e6:.0f} MB in {seconds:.1f} s "
            f"({(lines - 1) / seconds:,.0f} rows/s); server peak RSS {peak:.0f} MiB "
            f"(before exports: {base / 1024:.0f} MiB)"
        )
    return out


async def _fill(dsn: str, calls: int) -> str:
    import asyncpg

    from bridge.store.apikeys import create_key
    from bridge.store.directory import User, upsert_user
    from bridge.store.migrations import migrate

    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn)
        await conn.execute(YEARS)
        await conn.execute(GENERATE, PBX, calls)
        for u in range(1, 41):
            login = f"user{u:02d}"
            await upsert_user(conn, PBX, User(login, f"Employee {u}", str(1000 + u)))
        await conn.execute("VACUUM ANALYZE calls")
        return await create_key(conn, PBX, "bench")
    finally:
        await conn.close()


def api_report() -> str:
    """Fill a private PostgreSQL, serve the API in a child process, measure (~2 min)."""
    from bridge.devtools.local_postgres import LocalPostgres

    calls = int(os.environ.get("BENCH_API_CALLS", "1000000"))
    ctx = multiprocessing.get_context("spawn")
    random.seed(7)
    with LocalPostgres() as pg:
        dsn = pg.create_database("bench")
        started = time.perf_counter()
        key = asyncio.run(_fill(dsn, calls))
        filled = time.perf_counter() - started
        parent, child = ctx.Pipe()
        server = ctx.Process(target=_server_main, args=(child, dsn), daemon=True)
        server.start()
        try:
            port = parent.recv()
            assert server.pid is not None
            lines = asyncio.run(_measure(port, key, server.pid, calls))
        finally:
            server.terminate()
            server.join(5)
    head = (
        f"Pull APIs on {calls:,} calls (filled in {filled:.0f} s; the API in its own "
        "process, this one the client; 2 shared cores)"
    )
    return "\n".join([head, *("  " + line for line in lines)])


if __name__ == "__main__":
    print(api_report())
