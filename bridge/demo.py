"""`crm-bridge demo`: the whole bridge on one machine, no Asterisk needed, until Ctrl-C.

A private PostgreSQL in `.demo/` (its own folder), an AMI server replaying the real
recorded calls of `traces/asterisk22/` again and again at their recorded pace (as new
calls each round), a CRM receiver on localhost printing one JSON line per webhook it gets,
and the bridge itself, built and run exactly as `crm-bridge run` builds and runs it:
FastAGI, `/healthz`, `/readyz`, `/metrics`, the outbox and its delivery workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .config import Settings
from .daemon import Bridge
from .devtools.endless import EndlessReplay
from .devtools.fake_ami import FakeAmiServer
from .devtools.fake_crm import FakeCrm
from .devtools.local_postgres import LocalPostgres
from .devtools.traces import traces_dir
from .observability.logs import configure_logging

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
RESET = "DROP SCHEMA public CASCADE; CREATE SCHEMA public;"
AHEAD = 30.0  # seconds of replay kept queued in the AMI server


def say(text: str) -> None:
    print(f"demo: {text}", file=sys.stderr, flush=True)


def _free(port: int) -> int:
    """`port` if it is free on localhost, else 0 (any)."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return 0
    return port


def demo_settings(dsn: str, ami_port: int, crm_url: str, http_port: int) -> Settings:
    data: dict[str, Any] = {  # through __init__: BRIDGE_* variables still apply
        "pbx": {
            "id": "demo",
            "trunks": ["PJSIP/trunk-*"],
            "extensions": ["PJSIP/*"],
            "main_number": "74957654321",
        },
        "asterisk": {"host": "127.0.0.1", "port": ami_port, "secret": "bridge"},
        "database": {"url": dsn},
        "crm": {"url": crm_url, "token": "demo-token"},
        "agi": {"listen": f"127.0.0.1:{_free(4573)}"},
        "api": {
            "listen": f"127.0.0.1:{http_port}",
            "public_url": f"http://127.0.0.1:{http_port}",
        },
        "log": {"level": "warning"},
    }
    return Settings(**data)


async def run_demo(speed: float = 1.0, traces: Sequence[str] = (), listen_port: int = 8080) -> int:
    directory = traces_dir()
    paths = [Path(t) for t in traces] or [directory / f"{n}.ami.jsonl" for n in SCENARIOS]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        say(f"traces not found: {', '.join(missing)}")
        return 2
    configure_logging("warning", json=False, stream=sys.stderr)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    folder = Path(os.environ.get("BRIDGE_DEMO_DIR") or REPO / ".demo")
    say(f"starting PostgreSQL in {folder} ...")
    pg = LocalPostgres(folder / "pg")
    await asyncio.to_thread(pg.start)
    replay = EndlessReplay(paths)
    server = FakeAmiServer([], speed=1 / speed if speed > 0 else None)
    server.endpoints = ["1001", "1002", "1003", "trunk"]
    crm = FakeCrm(token="demo-token", print_payloads=True)
    bridge: Bridge | None = None
    try:
        await _reset(pg.dsn)
        crm_url = await crm.start()
        ami_port = await server.start()
        settings = demo_settings(pg.dsn, ami_port, crm_url, _free(listen_port))
        key = await _access(pg.dsn)
        bridge = Bridge(settings)
        await bridge.start()
        say(f"CRM receiver on {crm_url}: one JSON line per webhook it gets (stdout)")
        base = f"http://127.0.0.1:{bridge.http_port}"
        say(f"bridge: {base}/metrics, /readyz, /healthz")
        assert bridge.agi is not None
        say(f"FastAGI: agi://127.0.0.1:{bridge.agi.port}/contact")
        say(f"API key of this demo: {key}")
        for line in _curls(base, key):
            say(f"  {line}")
        say("replaying recorded calls at their recorded pace; Ctrl-C stops")
        feeder = asyncio.create_task(_feed(server, replay, speed))
        await stop.wait()
        feeder.cancel()
        await asyncio.gather(feeder, return_exceptions=True)
        calls = await bridge.store.call_counts()
        done = sum(n for _, status, n in calls if status != "up")
        sent = bridge.delivery.stats.sent if bridge.delivery else 0
        say(f"stopped: {done} calls tracked, {sent} webhooks delivered")
    finally:
        if bridge is not None:
            await bridge.stop()
        await server.stop()
        await crm.stop()
        await asyncio.to_thread(pg.stop)
    return 0


DEMO_LOGIN = ("billing@demo.local", "demo-password")


async def _access(dsn: str) -> str:
    """An API key for the demo, and a login for the billing dialect."""
    import asyncpg

    from .store import apikeys, logins
    from .store.migrations import migrate

    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn)
        await logins.create_login(conn, "demo", *DEMO_LOGIN, dialects=["billing"])
        return await apikeys.create_key(conn, "demo", "demo")
    finally:
        await conn.close()


def _curls(base: str, key: str) -> list[str]:
    """One request per dialect to try, against calls the replay has tracked."""
    user, password = DEMO_LOGIN
    return [
        "try, once the first calls have ended:",
        f"curl -s -H 'X-API-Key: {key}' '{base}/api/v1/calls?limit=5'",
        f"curl -s -H 'X-API-KEY: {key}' '{base}/crmapi/v1/history/json?period=today'",
        f"curl -s -H 'Token: {key}' '{base}/admin/api/sangomacrm/rest/calls/list/both'",
        f"curl -s -X POST -d 'email={user}&password={password}' '{base}/api/login'"
        " (then: -H 'Authorization: Bearer <token>' '" + base + "/api/calls?domain_name=demo')",
        f"the OpenAPI document: {base}/api/v1/openapi.json, a page: {base}/api/v1/docs",
    ]


async def _reset(dsn: str) -> None:
    """Every demo starts from an empty database."""
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(RESET)
    finally:
        await conn.close()


async def _feed(server: FakeAmiServer, replay: EndlessReplay, speed: float) -> None:
    """Keep about AHEAD seconds of calls queued in the AMI server, round after round."""
    while True:
        if server.remaining < 200:
            server.extend(replay.round(time.time()))
        await asyncio.sleep(min(AHEAD, replay.duration) / max(speed, 1.0) / 4)


def main(speed: float, traces: Sequence[str]) -> int:
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(run_demo(speed=speed, traces=traces))
    return 0
