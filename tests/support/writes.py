"""The write side of the API dialects, end to end: the HTTP API on a real socket over a real
PostgreSQL, with a Provisioning wired to the fake Asterisk (bridge.provision.testing) over
real AMI, and this process's directory view reloaded after each write, as the daemon wires
them. The fake Asterisk records every action (Reload, DBPut, DBDel, ...) and answers the
confirmation queries from what it loaded."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp.test_utils import TestServer
from argon2 import PasswordHasher
from prometheus_client import CollectorRegistry

from bridge.agi.directory import Directory
from bridge.ami.ingest import AmiIngest
from bridge.api.app import create_app
from bridge.api.issabel.tokens import Tokens
from bridge.api.services import Services
from bridge.config import Settings
from bridge.devtools.fake_ami import FakeAmiServer
from bridge.directory_sync import DirectorySync, DirectoryView
from bridge.provision import PROVISIONING, Provisioning
from bridge.provision.testing import FakeAsteriskConfig
from bridge.store.apikeys import KeyRing, create_key
from bridge.store.calls import CallStore
from bridge.store.logins import Login
from bridge.store.queries import QUERIES

PBX = "lab"
PASSWORD = "correct horse battery"


@cache
def password_hash() -> str:
    """Hashed once per test session: argon2 costs about half a second here on purpose."""
    return PasswordHasher().hash(PASSWORD)


@dataclass
class Lab:
    pool: asyncpg.Pool
    settings: Settings
    server: TestServer
    http: aiohttp.ClientSession
    ami: FakeAmiServer
    asterisk: FakeAsteriskConfig
    ingest: AmiIngest
    prov: Provisioning
    view: DirectoryView
    agi: Directory
    folder: Path
    ami_up: bool = True
    keys: dict[str, str] = field(default_factory=dict)

    def link(self) -> AmiIngest | None:
        return self.ingest if self.ami_up and self.ingest.connected else None

    def actions(self, *names: str) -> list[dict[str, str]]:
        return [a for a in self.ami.actions if a.get("Action") in names]

    def changes(self) -> list[dict[str, str]]:
        """What was asked of Asterisk that changes it: reloads and AstDB writes."""
        return self.actions("Reload", "DBPut", "DBDel")

    def read(self, name: str) -> str:
        path = self.folder / name
        return path.read_text(encoding="utf-8") if path.exists() else ""

    async def key(self, name: str = "crm", **limits: list[str]) -> str:
        async with self.pool.acquire() as conn:
            self.keys[name] = await create_key(conn, PBX, name, **limits)
        return self.keys[name]

    async def login(self, name: str = "admin", dialects: list[str] | None = None) -> Login:
        """A login as `crm-bridge login add` makes it (its password hashed once a session)."""
        row = await self.pool.fetchrow(
            QUERIES["create_login"], PBX, name, "", password_hash(), dialects or ["issabel"]
        )
        return Login.from_row(row)

    async def token(self, name: str = "admin") -> str:
        """An access token of a new login (without the argon2 cost of authenticate)."""
        issued = await Tokens(self.pool, PBX).issue(await self.login(name))
        return str(issued["access_token"])


def lab_settings(dsn: str, port: int, folder: Path) -> Settings:
    return Settings.model_validate(
        {
            "pbx": {
                "id": PBX,
                "region": "RU",
                "trunks": ["PJSIP/trunk-*"],
                "extensions": ["PJSIP/*"],
            },
            "asterisk": {
                "host": "127.0.0.1",
                "port": port,
                "username": "bridge",
                "secret": "bridge",
            },
            "database": {"url": dsn},
            "provision": {"config_dir": str(folder), "confirm_timeout": 1.0},
        }
    )


async def _ready() -> dict[str, bool]:
    return {"database": True}


@pytest.fixture
async def lab(migrated_dsn: str, tmp_path: Path) -> AsyncIterator[Lab]:
    ami = FakeAmiServer()
    asterisk = FakeAsteriskConfig(tmp_path).install(ami)
    port = await ami.start()
    ingest = AmiIngest("127.0.0.1", port, "bridge", "bridge", ping_interval=60)
    await ingest.start()
    async with asyncio.timeout(5):
        await ingest.logged_in.wait()
    pool = await asyncpg.create_pool(migrated_dsn, min_size=1, max_size=8)
    settings = lab_settings(migrated_dsn, port, tmp_path)
    agi = Directory({})
    view = DirectoryView(settings.pbx, agi)
    sync = DirectorySync(settings.pbx, pool, view)
    holder: dict[str, Lab] = {}
    prov = Provisioning(settings, pool, lambda: holder["lab"].link(), reload_view=sync.reload)
    services = Services(settings, pool, CallStore(pool, PBX), KeyRing(pool, PBX))
    app = create_app(services, ready=_ready, registry=CollectorRegistry())
    app[PROVISIONING] = prov
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    http = aiohttp.ClientSession(server.make_url("/"))
    lab = Lab(pool, settings, server, http, ami, asterisk, ingest, prov, view, agi, tmp_path)
    holder["lab"] = lab
    try:
        yield lab
    finally:
        await http.close()
        await server.close()
        await ingest.stop()
        await ami.stop()
        await pool.close()


async def call(
    lab: Lab,
    method: str,
    path: str,
    status: int,
    *,
    headers: dict[str, str] | None = None,
    **kw: Any,
) -> Any:
    """One request; its status checked; the JSON body (None when there is none)."""
    async with lab.http.request(method, path, headers=headers, **kw) as r:
        text = await r.text()
        assert r.status == status, (method, path, r.status, text)
        if not text:
            return None
        assert r.content_type == "application/json", text
        return await r.json()
