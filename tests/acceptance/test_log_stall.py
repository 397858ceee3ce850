"""journald stalls (a slow disk, a hung journal): nobody reads the daemon's log. The
daemon's lines wait for a thread to write them (bridge.observability.log_output), so it
goes on following AMI and delivering calls; the FastAGI worker, whose lines go through the
daemon, keeps answering the dialplan; and no line is lost without being counted."""

from __future__ import annotations

import asyncio
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bridge.devtools.fake_ami import FakeAmiServer, concat_traces
from bridge.devtools.fake_crm import FakeCrm
from tests.support.agi_client import agi_call, asterisk_env, dialplan_agi
from tests.support.daemon import Ports, running_daemon, write_config
from tests.support.ports import free_port
from tests.support.traces import TRACES, expected

LOOK_UPS = 1_500  # ~450 KB of log lines: more than twice what the pipe and its reader hold
CALLS = ("in_answered", "in_noanswer", "in_ringgroup", "in_blind_transfer", "out_answered")


@pytest.mark.integration
async def test_the_bridge_goes_on_while_nobody_reads_its_log(pg_dsn: str, tmp_path) -> None:
    crm = FakeCrm(token="tok", contact_answer={"contact_name": "Anna Ivanova"})
    crm_url = await crm.start()
    ports = Ports(ami=free_port())  # Asterisk comes up once the log is stalled
    asterisk = FakeAmiServer(concat_traces(TRACES / f"{name}.ami.jsonl" for name in CALLS))
    histories = sum(len(expected(name)["calls"]) for name in CALLS)
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
            assert slowest < 1.5, slowest  # within the contact deadline

            # the pipe is full by now; Asterisk starts and its calls reach the CRM
            await asterisk.start(port=ports.ami)
            await crm.wait_count("history", histories, timeout=30)

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
            await daemon.wait_log("call_finished", count=histories, within=10)
            assert not daemon.logs("log_lines_dropped")  # 4 MiB may wait: all of it did
            status, text = await daemon.get("/metrics")
            assert status == 200
            dropped_metric = {
                sample.name: sample.value
                for family in text_string_to_metric_families(text)
                for sample in family.samples
            }["bridge_log_lines_dropped_total"]
            assert dropped_metric == 0
        assert daemon.proc.returncode == 0
    finally:
        await asterisk.stop()
        await crm.stop()
