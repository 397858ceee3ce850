"""`crm-bridge demo` as a newcomer runs it: it replays calls until Ctrl-C, prints a key and
requests to try, the requests work, and Ctrl-C ends it calmly with exit 0."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

pytestmark = pytest.mark.integration


async def test_demo_serves_the_apis_until_ctrl_c(tmp_path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bridge",
        "demo",
        "--speed",
        "4",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "BRIDGE_DEMO_DIR": str(tmp_path / "demo"), "NOTIFY_SOCKET": ""},
    )
    assert proc.stderr is not None and proc.stdout is not None
    said: list[str] = []
    try:
        async with asyncio.timeout(60):
            while not any("Ctrl-C stops" in line for line in said):
                said.append((await proc.stderr.readline()).decode())
        text = "".join(said)
        key = re.search(r"API key of this demo: (\S+)", text).group(1)  # type: ignore[union-attr]
        base = re.search(r"bridge: (http://127\.0\.0\.1:\d+)", text).group(1)  # type: ignore[union-attr]
        assert f"'{base}/api/v1/calls" in text and "crmapi/v1/history/json" in text
        webhook = await asyncio.wait_for(proc.stdout.readline(), 30)
        assert b'"cmd": "event"' in webhook, "the CRM receiver prints what it gets"
        async with aiohttp.ClientSession(base) as http:
            async with asyncio.timeout(60):
                while True:  # until the first call of the replay has ended
                    async with http.get("/api/v1/calls", headers={"X-API-Key": key}) as resp:
                        assert resp.status == 200
                        if (await resp.json())["items"]:
                            break
                    await asyncio.sleep(0.5)
            now = datetime.now(UTC)  # a day either side: a run at midnight finds it too
            since, until = (f"{now + timedelta(days=d):%Y%m%dT%H%M%SZ}" for d in (-1, 1))
            async with http.get(
                f"/crmapi/v1/history/json?start={since}&end={until}", headers={"X-API-KEY": key}
            ) as resp:
                assert resp.status == 200 and await resp.json()
        proc.send_signal(signal.SIGINT)
        async with asyncio.timeout(60):
            rest = (await proc.stderr.read()).decode()
            await proc.stdout.read()
            await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0
    lines = [line for line in rest.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("demo: stopped:"), rest
