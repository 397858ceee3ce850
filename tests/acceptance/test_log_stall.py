"""journald stalls (a slow disk, a hung journal): nobody reads the daemon's log. The daemon
blocks writing its lines; the FastAGI worker, whose lines go through the daemon, keeps
answering the dialplan, and no line is lost without being counted."""

from __future__ import annotations

import asyncio
import time

import pytest

from bridge.devtools.fake_crm import FakeCrm
from tests.support.agi_client import agi_call, asterisk_env, dialplan_agi
from tests.support.daemon import Ports, free_port, running_daemon, write_config

LOOK_UPS = 1_500  # ~450 KB of log lines: more than twice what the pipe and its reader hold


@pytest.mark.integration
async def test_look_ups_are_answered_while_nobody_reads_the_log(pg_dsn: str, tmp_path) -> None:
    crm = FakeCrm(token="tok", contact_answer={"contact_name": "Anna Ivanova"})
    crm_url = await crm.start()
    ports = Ports(ami=free_port())  # no Asterisk: look-ups need none
    config = write_config(tmp_path / "bridge.toml", ports, pg_dsn, crm_url)
    line = dialplan_agi("crm-bridge-contact")
    try:
        async with running_daemon(config, ports) as daemon:
            await daemon.wait_log("bridge_nice")  # started (its last start-up line)
            await asyncio.sleep(0.5)
            daemon.stop_reading()  # journald stalls from here on

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

            daemon.resume_reading()  # journald is back: each line written, or dropped and counted
            async with asyncio.timeout(20):
                while True:
                    written = len(daemon.logs("agi_contact"))
                    drops = daemon.logs("agi_worker_log_lines_dropped")
                    dropped = int(drops[-1]["total"]) if drops else 0
                    if written + dropped >= LOOK_UPS:
                        break
                    await asyncio.sleep(0.1)
            assert written + dropped == LOOK_UPS
        assert daemon.proc.returncode == 0
    finally:
        await crm.stop()
