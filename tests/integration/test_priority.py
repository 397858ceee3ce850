"""FastAGI look-ups go before an AMI burst on the same event loop (bridge.net.priority).

Real parts: the bridge's AGI server, a FakeAmiServer sending recorded calls as fast as the
socket takes them, the daemon's AMI ingest, tracker and pipeline (into a store that keeps
nothing), and Asterisk's side of FastAGI played over TCP. Timing on a shared CI machine is
no verdict, so these tests check the mechanism: the AMI side stepped back while look-ups
were in progress, lost nothing by it, and an idle connection never counted.
"""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import pytest

from bridge.agi import start_agi_server
from bridge.ami.ingest import AmiIngest
from bridge.ami.protocol import READ_SIZE
from bridge.devtools.endless import EndlessReplay
from bridge.devtools.fake_ami import FakeAmiServer
from bridge.devtools.traces import traces_dir
from bridge.net.priority import Priority
from bridge.pipeline import CallPipeline
from bridge.tracker.tracker import CallTracker
from tests.integration.test_agi import CHANNEL, RecordingSink, contact_env, settings_for
from tests.support.agi_client import agi_call

pytestmark = pytest.mark.integration


class NullStore:
    def __init__(self) -> None:
        self.outputs = 0

    async def save(self, outputs: Any) -> None:
        self.outputs += len(outputs)


async def test_turn_waits_for_look_ups_and_never_longer_than_max_wait() -> None:
    priority = Priority(max_wait=1.0)
    started = time.monotonic()
    await priority.turn()
    assert time.monotonic() - started < 0.2, "nobody waits: at once"
    priority.begin()
    asyncio.get_running_loop().call_later(0.05, priority.end)
    started = time.monotonic()
    await priority.turn()
    assert 0.04 <= time.monotonic() - started < 0.9, "until the look-up ended"
    priority.begin()  # a look-up that goes on and on
    started = time.monotonic()
    await priority.turn()
    assert 0.99 <= time.monotonic() - started < 3.0, "at most max_wait"
    assert priority.yielded == 2


async def test_look_ups_during_an_ami_burst_make_the_ami_side_step_back() -> None:
    paths = sorted(p for p in traces_dir().glob("*.ami.jsonl") if "load" not in p.name)
    replay = EndlessReplay(paths)
    now = time.time()
    pairs = [pair for n in range(25) for pair in replay.round(now + n * 100)]
    ami = FakeAmiServer(pairs, speed=None)
    ami_port = await ami.start()
    settings = settings_for(None, agi={"cache_ttl": 60})
    server = await start_agi_server(settings, RecordingSink())
    tracker = CallTracker(["PJSIP/trunk-*"], ["PJSIP/*"], "RU", "74957654321")
    ingest = AmiIngest(
        "127.0.0.1", ami_port, "bridge", "bridge", wants=tracker.wants, priority=server.priority
    )
    store = NullStore()
    pipeline = CallPipeline(ingest, tracker, store, priority=server.priority)
    task = asyncio.create_task(pipeline.run())
    idle = socket.create_connection(("127.0.0.1", server.port))  # says nothing, ever
    try:
        await ingest.start()
        async with asyncio.timeout(10):
            while ingest.received < 2000:  # the burst is on
                await asyncio.sleep(0.001)
        assert server.priority.lookups == 0, "an idle connection is no look-up"
        assert ingest.manager is not None
        assert ingest.manager.protocol.transport.max_size == READ_SIZE, "short reads"
        for n in range(20):
            call = await agi_call(server.port, contact_env(), variables=CHANNEL)
            assert call.closed_by_server, n
        assert server.priority.yielded > 0, "the AMI side waited for the look-ups"
        assert server.priority.lookups == 0, "each closed look-up ended"
        async with asyncio.timeout(60):  # and lost nothing by it: every event was read
            while ingest.received < len(pairs) + 1:  # + the FullyBooted of the login
                await asyncio.sleep(0.01)
        assert ingest.received == len(pairs) + 1 and ingest.dropped == 0
    finally:
        idle.close()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await ingest.stop()
        await server.close()
        await ami.stop()
    assert store.outputs > 0
