"""`crm-bridge run` as a subprocess, on localhost ports, for acceptance tests."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from tests.support.ports import free_port
from tests.support.traces import LAB_CONFIG

CLI = [sys.executable, "-m", "bridge"]


@dataclass
class Ports:
    ami: int
    agi: int = field(default_factory=free_port)
    api: int = field(default_factory=free_port)


def write_config(path: Path, ports: Ports, dsn: str, crm_url: str, extra: str = "") -> Path:
    """The lab's [pbx] plus everything `crm-bridge run` needs, all on localhost; `extra`
    is appended (whole sections)."""
    path.write_text(
        LAB_CONFIG.read_text()
        + f"""
[asterisk]
host = "127.0.0.1"
port = {ports.ami}
username = "bridge"
secret = "bridge"
reconnect_max_delay = 0.5
[database]
url = "{dsn}"
[crm]
url = "{crm_url}"
token = "tok"
[agi]
listen = "127.0.0.1:{ports.agi}"
[api]
listen = "127.0.0.1:{ports.api}"
{extra}
"""
    )
    return path


class Daemon:
    """A running `crm-bridge run`; its stdout (JSON log lines) is collected as it comes."""

    def __init__(self, proc: asyncio.subprocess.Process, ports: Ports) -> None:
        self.proc = proc
        self.ports = ports
        self.lines: list[str] = []
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))

    def logs(self, event: str | None = None) -> list[dict[str, Any]]:
        found = []
        for line in self.lines:
            if line.startswith("{"):
                with contextlib.suppress(ValueError):
                    record = json.loads(line)
                    if event is None or record.get("event") == event:
                        found.append(record)
        return found

    def stop_reading(self) -> None:
        """Read no more of its stdout, as a stalled journald: once the pipe and the
        reader's buffer are full, the daemon's writes block."""
        self._reader.cancel()

    def resume_reading(self) -> None:
        if self._reader.done():
            self._reader = asyncio.create_task(self._read())

    async def get(self, path: str, within: float = 5.0) -> tuple[int, Any]:
        url = f"http://127.0.0.1:{self.ports.api}{path}"
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=within)) as http:
            async with http.get(url) as resp:
                body = await resp.json() if resp.content_type == "application/json" else None
                return resp.status, body if body is not None else await resp.text()

    async def wait_log(self, event: str, within: float = 30.0, count: int = 1) -> dict[str, Any]:
        """The `count`-th log line of this event, once it was written."""
        async with asyncio.timeout(within):
            while True:
                found = self.logs(event)
                if len(found) >= count:
                    return found[count - 1]
                assert self.proc.returncode is None, "\n".join(self.lines[-30:])
                await asyncio.sleep(0.05)

    async def stop(self) -> int:
        self.resume_reading()  # its last lines, and room to write them
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(30):
                    await self.proc.wait()
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        await self._reader
        return self.proc.returncode if self.proc.returncode is not None else -1


@contextlib.asynccontextmanager
async def running_daemon(config: Path, ports: Ports) -> AsyncIterator[Daemon]:
    proc = await asyncio.create_subprocess_exec(
        *CLI,
        "run",
        "--config",
        str(config),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "NOTIFY_SOCKET": ""},
    )
    daemon = Daemon(proc, ports)
    try:
        yield daemon
    finally:
        await daemon.stop()
