"""The whole daemon (`bridge.daemon.Bridge`) in the test's own event loop: the fake AMI
server over TCP, a real PostgreSQL, a fake CRM. In-process so a test can reach the
parts it checks (the dialer, the directory view) while everything else runs for real."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from bridge.config import Settings
from bridge.daemon import Bridge, Term
from tests.support.ports import free_port

LAB_PBX = {
    "id": "lab",
    "region": "RU",
    "trunks": ["PJSIP/trunk-*"],
    "extensions": ["PJSIP/*"],
    "main_number": "74957654321",
}


def bridge_settings(dsn: str, ami_port: int, crm_url: str, **sections: dict[str, Any]) -> Settings:
    """The lab's [pbx], everything on localhost; `sections` are merged into the defaults."""
    base: dict[str, dict[str, Any]] = {
        "pbx": dict(LAB_PBX),
        "asterisk": {
            "host": "127.0.0.1",
            "port": ami_port,
            "username": "bridge",
            "secret": "bridge",
            "reconnect_max_delay": 0.5,
        },
        "database": {"url": dsn},
        "crm": {"url": crm_url, "token": "tok"},
        "agi": {"listen": f"127.0.0.1:{free_port()}"},
        "api": {"listen": f"127.0.0.1:{free_port()}"},
        "delivery": {"poll_interval": 0.2},
    }
    for name, values in sections.items():
        base[name] = {**base.get(name, {}), **values}
    return Settings.model_validate(base)


@asynccontextmanager
async def running_bridge(settings: Settings) -> AsyncIterator[Bridge]:
    bridge = Bridge(settings)
    await bridge.start()
    try:
        yield bridge
    finally:
        bridge.stopped.set()
        await bridge.stop()
        assert not bridge.failed, "a task of the bridge crashed"


async def leading(bridge: Bridge, within: float = 20.0) -> Term:
    """Until the bridge leads, is logged in to AMI and has read Asterisk's directory."""
    async with asyncio.timeout(within):
        while True:
            term = bridge.term
            if term is not None and term.ingest.connected and bridge.sync.read_at is not None:
                return term
            assert not bridge.failed
            await asyncio.sleep(0.02)
