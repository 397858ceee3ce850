"""The reviewer's attack: 1,100 idle TCP connections under systemd's 1,024 open files.

Before the capped listener, that many idle connections to the HTTP port exhausted the
daemon's descriptors: ``/readyz`` and every contact look-up timed out and asyncio wrote
430,000 ``socket.accept() out of system resource`` tracebacks (216 MB in 75 s). Here the
real daemon (``crm-bridge run``, real PostgreSQL, fake AMI and CRM) runs under
``prlimit --nofile=1024:1024`` and takes the same crowd on its HTTP port, then on its
FastAGI port, while we time ``/readyz``, ``/healthz`` and look-ups and count its log lines.

The smaller scripts below run a bare listener (and a bare ``asyncio.start_server``, the
control) under 64 descriptors, where accept() itself fails.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from bridge.devtools.fake_ami import FakeAmiServer
from bridge.devtools.fake_crm import FakeCrm
from tests.support.agi_client import REPO, agi_call, asterisk_env, dialplan_agi
from tests.support.hostile import IdleCrowd, open_files_limit, timed_get
from tests.support.ports import free_port
from tests.support.traces import LAB_CONFIG

ATTACKERS = 1100
FD_LIMIT = 1024  # what systemd gives a service by default (LimitNOFILE soft limit)
CONTACT_TIMEOUT = 1.5  # [crm] contact_timeout's default: the dialplan waits at most this
# before the fix they timed out (10 s); answered they take milliseconds, but the crowd
# shares the 2 CPUs with two other test workers: 1.0 s failed once in CI (1.02 s)
HEALTH_WITHIN = 2.5
PRLIMIT = shutil.which("prlimit")


def limited(argv: list[str], nofile: int) -> list[str]:
    """``argv`` under an open-files limit (util-linux prlimit execs it: same pid)."""
    assert PRLIMIT, "util-linux prlimit is needed (apt-get install util-linux)"
    return [PRLIMIT, f"--nofile={nofile}:{nofile}", *argv]


def config_for(path: Path, ami_port: int, dsn: str, crm_url: str, agi: int, api: int) -> Path:
    path.write_text(
        LAB_CONFIG.read_text()
        + f"""
[asterisk]
host = "127.0.0.1"
port = {ami_port}
username = "bridge"
secret = "bridge"
[database]
url = "{dsn}"
[crm]
url = "{crm_url}"
token = "secret-token"
contact_timeout = {CONTACT_TIMEOUT}
[agi]
listen = "127.0.0.1:{agi}"
# The crowds, and the other tests beside this one, run on this machine at nice 0; at the
# default nice 5 the daemon's figures would measure the kernel's CPU shares between them
# (on a PBX the crowd is remote), not what the listeners do. The worker still runs.
bridge_nice = 0
[api]
listen = "127.0.0.1:{api}"
"""
    )
    return path


async def look_up(agi_port: int, n: int) -> float:
    """One contact look-up as the dialplan makes it; the seconds it took (CRM answered)."""
    env = asterisk_env(
        dialplan_agi("crm-bridge-contact"),
        variables={"ARG1": "74957654321", "CHANNEL(linkedid)": f"1763805600.{n}"},
        callerid=f"+7910{n:07d}",  # a new number each time: the CRM is asked, not the cache
    )
    call = await agi_call(agi_port, env, limit=10)
    assert call.set_vars.get("CRM_CONTACT_NAME") == "Anna Ivanova", call
    return call.seconds


async def health(api_port: int, samples: int = 5) -> dict[str, float]:
    """Worst seconds of ``samples`` /readyz and /healthz, each over a new connection."""
    worst = {"readyz": 0.0, "healthz": 0.0}
    for _ in range(samples):
        for path in worst:
            status, seconds = await timed_get(api_port, f"/{path}", limit=10)
            assert status == 200, (path, status)
            worst[path] = max(worst[path], seconds)
    return worst


def descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@asynccontextmanager
async def crowd_process(port: int, n: int) -> AsyncIterator[dict[str, float]]:
    """tests/support/crowd.py against ``port``: yields its "opened" figures once the ``n``
    connections are open; they gain "reconnects" when it has stopped."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.support.crowd",
        str(port),
        str(n),
        stdout=asyncio.subprocess.PIPE,
        cwd=REPO,
    )
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(25):
            line = await proc.stdout.readline()
        assert line, "the crowd died before opening its connections"
        figures = json.loads(line)
        yield figures
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(10):
            figures.update(json.loads(await proc.stdout.readline()))
            await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


@pytest.mark.integration
async def test_idle_crowds_on_either_port_leave_health_and_look_ups_answering(
    pg_dsn: str, tmp_path: Path
) -> None:
    ami = FakeAmiServer()
    ami_port = await ami.start()
    crm = FakeCrm(token="secret-token", contact_answer={"contact_name": "Anna Ivanova"})
    crm_url = await crm.start()
    agi_port, api_port = free_port(), free_port()
    config = config_for(tmp_path / "bridge.toml", ami_port, pg_dsn, crm_url, agi_port, api_port)
    log_path = tmp_path / "daemon.log"
    figures: dict[str, dict[str, float]] = {}
    with log_path.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            *limited([sys.executable, "-m", "bridge", "run", "--config", str(config)], FD_LIMIT),
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "NOTIFY_SOCKET": ""},
        )
        try:
            async with asyncio.timeout(30):
                while True:
                    assert proc.returncode is None, log_path.read_text()
                    try:
                        if (await timed_get(api_port, "/readyz", limit=2))[0] == 200:
                            break
                    except OSError:
                        pass
                    await asyncio.sleep(0.1)
            assert await look_up(agi_port, 0) < CONTACT_TIMEOUT

            for name, port in (("http", api_port), ("agi", agi_port)):
                async with crowd_process(port, ATTACKERS) as opened:
                    # The crowd now reconnects whatever the daemon closes: it stays 1,100
                    # strong while we measure.
                    started = time.perf_counter()
                    worst = await health(api_port)
                    looked = [await look_up(agi_port, n) for n in range(1, 6)]
                    figures[name] = {
                        "open_s": opened["seconds"],
                        "closed_by_daemon": opened["closed_by_server"],
                        **worst,
                        "look_up_max": max(looked),
                        "checks_s": time.perf_counter() - started,
                        "daemon_fds": descriptors(proc.pid),
                    }
                figures[name]["reconnects"] = opened["reconnects"]
                assert proc.returncode is None, "the daemon is still running"
                print(name, figures[name])  # the report's figures (pytest -s)
                f = figures[name]
                assert f["readyz"] < HEALTH_WITHIN and f["healthz"] < HEALTH_WITHIN, f
                assert f["look_up_max"] < CONTACT_TIMEOUT, f
                # capped: HTTP 256 + AGI 256 + the pool and the rest, far from the limit
                assert f["daemon_fds"] < 512, f
            proc.send_signal(signal.SIGTERM)
            async with asyncio.timeout(15):
                await proc.wait()
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            await ami.stop()
            await crm.stop()
    assert proc.returncode == 0, log_path.read_text()[-3000:]
    text = log_path.read_text()
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    about_accept = [x for x in lines if "accept" in x.get("event", "")]
    assert len(about_accept) < 50, about_accept[:5]
    assert "Traceback" not in text and not [x for x in lines if x.get("level") == "error"]
    assert len(text) < 100_000, f"{len(text)} bytes of log"
    shed = [x for x in lines if x.get("event") == "listener_full_closing_idle"]
    assert {x["listener"] for x in shed} == {"http", "agi"}, "both crowds met the cap"
    print("log", {"lines": len(lines), "bytes": len(text), "about_accept": len(about_accept)})


# --------------------------------------------------------------------------- accept() fails

SERVE_SCRIPT = """
import asyncio, json, signal, sys
from aiohttp import web
from bridge.observability.logs import configure_logging

mode = sys.argv[1]

async def main():
    configure_logging("info")
    if mode == "bare-unfiltered":
        import logging
        logging.getLogger("asyncio").filters.clear()
    async def ping(_):
        return web.Response(text="pong")
    async def hold(_):
        await asyncio.sleep(2.0)
        return web.Response(text="held")
    app = web.Application()
    app.router.add_get("/ping", ping)
    app.router.add_get("/hold", hold)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    if mode == "capped":
        from bridge.api.server import start_http
        server = await start_http(
            app, "127.0.0.1", 0, max_connections=10_000, header_timeout=30, keepalive=30
        )
        port = server.port
    else:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
    print(json.dumps({"event": "test_ready", "port": port}), flush=True)
    await stop.wait()
    if mode == "capped":
        print(json.dumps({"event": "test_stats", **server.stats()}), flush=True)
        await server.close(grace=0.5)

asyncio.run(main())
"""


class Served:
    """SERVE_SCRIPT in a subprocess under 64 open files; its log lines once stopped."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.proc: asyncio.subprocess.Process | None = None
        self.port = 0
        self.lines: list[dict[str, object]] = []

    async def __aenter__(self) -> Served:
        self.proc = await asyncio.create_subprocess_exec(
            *limited([sys.executable, "-c", SERVE_SCRIPT, self.mode], 64),
            stdout=asyncio.subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        assert self.proc.stdout is not None
        async with asyncio.timeout(10):
            first = json.loads(await self.proc.stdout.readline())
        self.port = int(first["port"])
        self.output = asyncio.create_task(self.proc.stdout.read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.proc is not None
        running = self.proc.returncode is None
        if running:
            self.proc.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(10):
                text = (await self.output).decode()
                await self.proc.wait()
        finally:
            if self.proc.returncode is None:
                self.proc.kill()
        self.running_until_stopped = running
        self.lines = [json.loads(x) for x in text.splitlines() if x.startswith("{")]

    def events(self, name: str) -> list[dict[str, object]]:
        return [x for x in self.lines if str(x.get("event", "")).startswith(name)]


async def test_accept_failures_are_counted_logged_sparingly_and_survived() -> None:
    """Descriptors run out (64 for 200 idle peers): the oldest idle peer makes room."""
    with open_files_limit(1024):
        crowd = IdleCrowd()
        try:
            async with Served("capped") as served:
                await crowd.open(served.port, 200)
                await asyncio.sleep(1.0)
                status, seconds = await timed_get(served.port, "/ping")
                assert status == 200 and seconds < 1.0, seconds
        finally:
            crowd.close()
    assert served.running_until_stopped
    (stats,) = served.events("test_stats")
    assert float(stats["accept_errors"]) > 0, "descriptors did run out"  # type: ignore[arg-type]
    assert len(served.events("listener_accept_failed")) <= 3, served.events("listener_")
    assert not served.events("socket.accept()")


async def test_accept_failures_with_nobody_idle_pause_instead_of_spinning() -> None:
    """Every descriptor holds a request in progress: accept() is retried every 0.1 s."""
    with open_files_limit(1024):
        async with Served("capped") as served:
            started = time.perf_counter()
            held = await asyncio.gather(
                *(timed_get(served.port, "/hold", limit=15) for _ in range(80)),
            )
            elapsed = time.perf_counter() - started
    assert [status for status, _ in held] == [200] * 80, "all served once slots freed"
    (stats,) = served.events("test_stats")
    errors = float(stats["accept_errors"])  # type: ignore[arg-type]
    assert 0 < errors <= elapsed / 0.1 + 5, (errors, elapsed)
    assert len(served.events("listener_accept_failed")) <= 3


@pytest.mark.parametrize(
    ("mode", "most"), [("bare", 3), ("bare-unfiltered", None)], ids=["filtered", "control"]
)
async def test_asyncio_own_accept_error_flood_is_bounded(mode: str, most: int | None) -> None:
    """aiohttp's TCPSite (loop.create_server) under the same shortage, with and without
    our filter on the asyncio logger: the control shows the flood the reviewer saw."""
    with open_files_limit(1024):
        crowd = IdleCrowd()
        try:
            async with Served(mode) as served:
                # No more than the descriptors (about 50 free) and the backlog (128) take:
                # this server stops accepting, and further connects would hang.
                await crowd.open(served.port, 150)
                await asyncio.sleep(1.5)
        finally:
            crowd.close()
    floods = served.events("socket.accept() out of system resource")
    if most is None:
        assert len(floods) > 100, len(floods)
    else:
        assert 1 <= len(floods) <= most, len(floods)
