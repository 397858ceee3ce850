"""The PBX lock (bridge.store.leader) on a real PostgreSQL, through a relay that can cut
the lock's connection the way a network cut does: PostgreSQL keeps the old session (and
the lock with it) while the bridge has lost sight of it."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit, urlunsplit

import pytest
from structlog.testing import capture_logs

from bridge.store.leader import PbxLock
from tests.support.cut import CuttableRelay

pytestmark = pytest.mark.integration


def through(dsn: str, port: int) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(netloc=f"{parts.username}@127.0.0.1:{port}"))


async def test_a_cut_lock_connection_is_retaken_not_mistaken_for_another_bridge(
    pg_dsn: str,
) -> None:
    relay = CuttableRelay(urlsplit(pg_dsn).port or 5432)
    await relay.start()
    lock = PbxLock(through(pg_dsn, relay.port), "main", retry_every=0.2, timeout=1.0)
    other = PbxLock(pg_dsn, "main", retry_every=0.2, timeout=1.0)
    try:
        await lock.acquire()
        relay.cut()  # the old session lives on in PostgreSQL, holding the lock
        watch = asyncio.create_task(lock.watch(every=0.3))
        async with asyncio.timeout(10):
            await lock.lost.wait()
        await watch
        with capture_logs() as logs:
            assert await lock.retake(), "its own stale session is no other bridge"
        assert "leader_lock_stale_session_ended" in [e["event"] for e in logs]
        assert lock.held

        # another bridge does hold it after a real loss: then retake says so (and ends
        # nobody's session: this bridge's last one is not the holder)
        await lock.release()
        taking = asyncio.create_task(other.acquire())
        async with asyncio.timeout(10):
            await taking
        assert not await lock.retake(), "held by the other bridge"
    finally:
        await lock.release()
        await other.release()
        await relay.close()
