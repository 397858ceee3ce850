"""The FastAGI server in its own process (`[agi] own_process`): a real child process
(`python -m bridge.agi.worker`) on the port the daemon bound, a real CRM, real sockets.

What the daemon keeps (the ratings' sink, which calls it knows, the directory) is asked
for over the link; what the worker counts comes back for /metrics.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from bridge.agi import AgiCollector, Directory
from bridge.agi.metrics import ROUND_TRIP_METRIC
from bridge.agi.worker import LINK_LIMIT, AgiWorker, LinkLog
from bridge.observability.logs import configure_logging
from tests.integration import test_agi
from tests.integration.test_agi import (
    CHANNEL,
    LINKEDID,
    PHONE,
    USERS,
    KnownCalls,
    RecordingSink,
    contact_env,
    rating_env,
    settings_for,
    until,
)
from tests.support.agi_client import FakeCrm, agi_call
from tests.support.processes import children, command_line, running

crm = test_agi.crm  # the fixture: a CRM answering `contact`, as in test_agi


@asynccontextmanager
async def worker_for(
    crm: FakeCrm, sink: RecordingSink, known: KnownCalls, directory: Directory
) -> AsyncIterator[AgiWorker]:
    worker = AgiWorker(settings_for(crm.url), sink, directory, known)
    await worker.start()
    try:
        yield worker
    finally:
        await worker.close()


def worker_pid(worker: AgiWorker) -> int:
    assert worker.pid is not None
    return worker.pid


async def test_look_ups_ratings_and_directory_go_through_the_worker(crm: FakeCrm) -> None:
    crm.contacts[PHONE] = json.dumps({"contact_name": "Ivan Petrov", "responsible": "anna"})
    sink, known = RecordingSink(), KnownCalls(LINKEDID)
    directory = Directory(USERS, region="RU")
    async with worker_for(crm, sink, known, directory) as worker:
        assert worker_pid(worker) in children(os.getpid())
        call = await agi_call(worker.port, contact_env(), variables=CHANNEL)
        # "anna" is nobody yet: no CRM_RESPONSIBLE, only known extensions are dialled
        assert call.set_vars == {"CALLERID(name)": "Ivan Petrov", "CRM_CONTACT_NAME": "Ivan Petrov"}

        # the daemon's directory learns anna; the worker's copy follows
        directory.replace({**USERS, "103": "anna"})
        looked_up = 1
        async with asyncio.timeout(5):  # pushed at once; a loaded machine may take a while
            while "CRM_RESPONSIBLE" not in call.set_vars:
                call = await agi_call(worker.port, contact_env(), variables=CHANNEL)
                looked_up += 1
        assert call.set_vars["CRM_RESPONSIBLE"] == "103"

        # ratings: the daemon's `known` decides, the daemon's sink stores
        await agi_call(worker.port, rating_env("5"))
        await agi_call(worker.port, rating_env("4", linkedid="1763805600.999"))
        await until(lambda: len(sink.ratings) == 1)
        assert sink.ratings == [(LINKEDID, 5, PHONE, "101")]
        assert known.asked == [LINKEDID, "1763805600.999"]

        # the worker's counters and histograms reach the daemon's /metrics
        await until(lambda: worker.stats().get("agi_completed", 0) >= looked_up + 2)
        registry = CollectorRegistry()
        registry.register(AgiCollector(worker.stats, lambda: worker.latency))
        families = {
            f.name: f for f in text_string_to_metric_families(generate_latest(registry).decode())
        }
        counts = {
            s.labels["route"]: s.value
            for s in families[ROUND_TRIP_METRIC].samples
            if s.name == f"{ROUND_TRIP_METRIC}_count"
        }
        assert counts == {"contact": float(looked_up), "other": 0.0, "rating": 2.0}
        assert families["bridge_crm_contact_cache_entries"].samples[0].value == 1
    assert worker._process is not None and worker._process.returncode == 0


async def test_a_dead_worker_is_replaced_on_the_same_port(crm: FakeCrm) -> None:
    crm.contacts[PHONE] = json.dumps({"contact_name": "Ivan Petrov"})
    directory = Directory(USERS, region="RU")
    with capture_logs() as logs:
        async with worker_for(crm, RecordingSink(), KnownCalls(), directory) as worker:
            first = worker_pid(worker)
            os.kill(first, signal.SIGKILL)
            # Asterisk's connection waits in the kernel's backlog until the new worker is up
            call = await agi_call(worker.port, contact_env(), variables=CHANNEL, limit=15)
            assert call.set_vars["CRM_CONTACT_NAME"] == "Ivan Petrov"
            assert worker_pid(worker) != first and worker.restarts == 1
            await until(lambda: worker.stats().get("agi_worker_restarts") == 1.0)
    (exited,) = [e for e in logs if e["event"] == "agi_worker_exited"]
    assert exited["code"] == -signal.SIGKILL


# A daemon side alone in a process: the worker it starts, then waits.
DAEMON = """
import asyncio
from bridge.agi import Directory
from bridge.agi.worker import AgiWorker
from tests.integration.test_agi import USERS, KnownCalls, RecordingSink, settings_for

async def main():
    settings = settings_for({url!r})
    worker = AgiWorker(settings, RecordingSink(), Directory(USERS), KnownCalls())
    await worker.start()
    print("port", worker.port, flush=True)  # among the worker's log lines
    await asyncio.Event().wait()

asyncio.run(main())
"""


async def test_the_worker_ends_with_a_killed_daemon(crm: FakeCrm) -> None:
    """kill -9 of the daemon: no stop, no SIGTERM; the link closes and the worker exits."""
    daemon = await asyncio.create_subprocess_exec(
        sys.executable, "-c", DAEMON.format(url=crm.url), stdout=asyncio.subprocess.PIPE
    )
    try:
        assert daemon.stdout is not None
        async with asyncio.timeout(30):
            while not (line := await daemon.stdout.readline()).startswith(b"port "):
                assert line, "the daemon side ended"
        port = int(line.split()[1])
        (worker,) = children(daemon.pid)
        assert "bridge.agi.worker" in command_line(worker)
        call = await agi_call(port, contact_env(), variables=CHANNEL)
        assert call.closed_by_server  # it serves
    finally:
        daemon.kill()
        await daemon.wait()
    async with asyncio.timeout(10):
        while running(worker):  # reparented to init, which reaps it once it exits
            await asyncio.sleep(0.05)


async def test_a_port_in_use_fails_at_start_in_the_daemon(crm: FakeCrm) -> None:
    directory = Directory(USERS, region="RU")
    first = AgiWorker(settings_for(crm.url), RecordingSink(), directory, KnownCalls())
    await first.start()
    try:
        settings = settings_for(crm.url, agi={"listen": f"127.0.0.1:{first.port}"})
        with pytest.raises(OSError):
            await AgiWorker(settings, RecordingSink(), directory, KnownCalls()).start()
    finally:
        await first.close()


# --------------------------------------------------------------------------- log lines


@pytest.mark.usefixtures("restore_logging")
async def test_the_workers_log_lines_are_written_with_the_daemons(crm: FakeCrm) -> None:
    crm.contacts[PHONE] = json.dumps({"contact_name": "Ivan Petrov"})
    out = io.StringIO()
    configure_logging("info", stream=out)  # the daemon's; the worker is told at its start
    async with worker_for(crm, RecordingSink(), KnownCalls(), Directory(USERS)) as worker:
        await agi_call(worker.port, contact_env(), variables=CHANNEL)
        await until(lambda: '"agi_contact"' in out.getvalue())
        pid = worker_pid(worker)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    (contact,) = [x for x in lines if x["event"] == "agi_contact"]
    assert (contact["callid"], contact["logger"], contact["source"]) == (
        LINKEDID,
        "bridge.agi",
        "crm",
    )
    # the worker's last line too (its server closing), before close() returned
    closed = [x for x in lines if x["event"] == "agi_closed"]
    assert len(closed) == 2, "the worker's server, then the daemon's side"
    assert any(x["event"] == "agi_worker_started" and x["pid"] == pid for x in lines)

    out = io.StringIO()
    configure_logging("warning", json=False, stream=out)  # and the daemon's threshold
    async with worker_for(crm, RecordingSink(), KnownCalls(), Directory(USERS)) as worker:
        await agi_call(worker.port, contact_env(), variables=CHANNEL)
        await until(lambda: worker.stats().get("agi_completed") == 1.0)
    assert "agi_contact" not in out.getvalue()


async def test_log_lines_wait_in_the_link_then_are_dropped_and_counted() -> None:
    ours, theirs = socket.socketpair()
    _, writer = await asyncio.open_connection(sock=ours)
    logs = LinkLog(writer, backlog=64 * 1024)
    line = json.dumps({"event": "agi_contact", "pad": "x" * 1000}) + "\n"
    for _ in range(2000):  # 2 MB while the daemon reads nothing (journald stalled)
        assert logs.write(line) == len(line)
    assert 0 < logs.dropped < 2000
    assert writer.transport.get_write_buffer_size() <= 64 * 1024 + 2 * len(line)

    # the daemon reads again: what waited arrives whole, then lines pass again
    reader, daemon_end = await asyncio.open_connection(sock=theirs, limit=LINK_LIMIT)
    received = 0
    while writer.transport.get_write_buffer_size() > 0 or received < 2000 - logs.dropped:
        message = json.loads(await asyncio.wait_for(reader.readline(), 5))
        assert message == {"op": "log", "text": line}
        received += 1
    dropped = logs.dropped
    logs.write(line)
    assert json.loads(await asyncio.wait_for(reader.readline(), 5))["text"] == line
    assert logs.dropped == dropped
    writer.close()
    daemon_end.close()


async def test_a_bad_line_from_the_worker_is_logged_and_the_link_goes_on() -> None:
    """The daemon's end of the link: a line it cannot use (not JSON, not an object, figures
    of the wrong shape) is one logged line, and the next good one is taken."""
    worker = AgiWorker(settings_for(None), RecordingSink(), Directory({}))
    ours, theirs = socket.socketpair()
    reader, writer = await asyncio.open_connection(sock=ours, limit=LINK_LIMIT)
    _, worker_end = await asyncio.open_connection(sock=theirs)
    for line in (b"not json\n", b"[1, 2]\n", b'{"op": "stats", "stats": "nope"}\n'):
        worker_end.write(line)
    worker_end.write(b'{"op": "stats", "stats": {"agi_completed": 7}, "latency": {}}\n')
    worker_end.close()
    with capture_logs() as logs:
        await asyncio.wait_for(worker._serve(reader, writer), 5)
    assert [e["event"] for e in logs] == ["agi_worker_garbage"] * 3
    assert worker.stats()["agi_completed"] == 7.0
