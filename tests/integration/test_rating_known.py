"""Ratings through the whole daemon: one for a call nobody knows is refused at once and
holds nothing up; the next, for a call the bridge stored, reaches the CRM."""

from __future__ import annotations

import asyncio

import pytest

from bridge.devtools.fake_ami import FakeAmiServer
from bridge.devtools.fake_crm import FakeCrm
from tests.support.agi_client import give_rating
from tests.support.bridge import bridge_settings, leading, running_bridge
from tests.support.traces import TRACES

pytestmark = pytest.mark.integration


async def test_a_rating_for_an_unknown_call_holds_no_other_up(pg_dsn: str) -> None:
    server = FakeAmiServer(TRACES / "in_answered.ami.jsonl")
    crm = FakeCrm(token="tok")
    settings = bridge_settings(pg_dsn, await server.start(), await crm.start())
    try:
        async with running_bridge(settings) as bridge:
            await leading(bridge)
            (history,) = await crm.wait_count("history", 1, timeout=20)
            callid = history.fields["callid"]
            port = settings.agi.listen_port

            await give_rating(port, "1795999999.1", "7", limit=5.0)  # no such call, anywhere
            await give_rating(port, callid, "4", limit=5.0)
            (rating,) = await crm.wait_count("rating", 1, timeout=10)
            assert (rating.fields["callid"], rating.fields["rating"]) == (callid, "4")

            assert bridge.ratings is not None and len(bridge.ratings) == 0, "nothing waits"
            assert bridge.ratings.counts["buffered"] == 0
            async with asyncio.timeout(5):  # the worker's counters reach the daemon each second
                while bridge.agi is None or bridge.agi.stats().get("rating_unknown_call") != 1:
                    await asyncio.sleep(0.1)
            assert len(crm.requests("rating")) == 1
    finally:
        await server.stop()
        await crm.stop()
