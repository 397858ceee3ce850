"""journald stalls (a slow disk, a hung journal): nobody reads the daemon's log. The daemon
blocks writing its lines; the FastAGI worker, whose lines go through the daemon, keeps
answering the dialplan, and no line is lost without being counted."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import threading
import time

import pytest

from bridge.devtools.fake_crm import FakeCrm
from tests.support.agi_client import agi_call, asterisk_env, dialplan_agi
from tests.support.daemon import CLI, Ports, free_port, write_config

LOOK_UPS = 1_500  # ~450 KB of log lines: seven times what the pipe and its reader hold


class StallableLog:
    """The daemon's stdout: a pipe read line by line, until told to stop reading."""

    def __init__(self, fd: int) -> None:
        self.lines: list[str] = []
        self.reading = threading.Event()
        self.reading.set()
        self._thread = threading.Thread(target=self._read, args=(fd,), daemon=True)
        self._thread.start()

    def _read(self, fd: int) -> None:
        with open(fd, "rb") as pipe:
            for raw in pipe:
                self.lines.append(raw.decode("utf-8", "replace"))
                self.reading.wait()

    def events(self, name: str) -> list[dict[str, object]]:
        found = []
        for line in list(self.lines):
            if f'"{name}"' in line:
                record = json.loads(line)
                if record.get("event") == name:
                    found.append(record)
        return found

    async def wait_for(self, name: str, within: float = 30.0) -> None:
        async with asyncio.timeout(within):
            while not self.events(name):
                await asyncio.sleep(0.05)

    def join(self) -> None:
        self._thread.join(10)


@pytest.mark.integration
async def test_look_ups_are_answered_while_nobody_reads_the_log(pg_dsn: str, tmp_path) -> None:
    crm = FakeCrm(token="tok", contact_answer={"contact_name": "Anna Ivanova"})
    crm_url = await crm.start()
    ports = Ports(ami=free_port())  # no Asterisk: look-ups need none
    config = write_config(tmp_path / "bridge.toml", ports, pg_dsn, crm_url)
    read_end, write_end = os.pipe()
    proc = await asyncio.create_subprocess_exec(
        *CLI,
        "run",
        "--config",
        str(config),
        stdout=write_end,
        stderr=subprocess.STDOUT,
        env={**os.environ, "NOTIFY_SOCKET": ""},
    )
    os.close(write_end)
    log = StallableLog(read_end)
    line = dialplan_agi("crm-bridge-contact")
    try:
        await log.wait_for("bridge_nice")  # started (its last start-up line)
        await asyncio.sleep(0.5)
        log.reading.clear()  # journald stalls from here on

        slowest = 0.0
        for n in range(LOOK_UPS):
            variables = {"CHANNEL(linkedid)": f"1763805600.{n}"}
            started = time.perf_counter()
            call = await agi_call(
                ports.agi,
                asterisk_env(line, variables=variables, callerid="+79101234567"),
                limit=5.0,
            )
            slowest = max(slowest, time.perf_counter() - started)
            assert call.set_vars.get("CRM_CONTACT_NAME") == "Anna Ivanova", n
        assert slowest < 1.0, slowest  # the contact deadline is 1.5 s

        log.reading.set()  # journald is back: every line written, or dropped and counted
        async with asyncio.timeout(20):
            while True:
                written = len(log.events("agi_contact"))
                drops = log.events("agi_worker_log_lines_dropped")
                dropped = int(drops[-1]["total"]) if drops else 0  # type: ignore[call-overload]
                if written + dropped >= LOOK_UPS:
                    break
                await asyncio.sleep(0.1)
        assert written + dropped == LOOK_UPS
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(15):
            assert await proc.wait() == 0
    finally:
        log.reading.set()
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await crm.stop()
        log.join()
