"""The VPBX dialect's tests' common ground: a directory for the lab's calls, a fixed
clock, a fake click-to-call dialer, and a CRM connector written the way CRM vendors write
them against `/crmapi/v1`."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, tzinfo
from typing import Any

import aiohttp
import asyncpg
import pytest

from bridge.api.services import DialError
from bridge.api.vpbx import periods
from bridge.store import directory
from bridge.store.directory import Group, Number, User

PBX = "lab"
SOURCE = "config"  # as the [pbx] section of a config would seed them
# the lab's calls started on Sunday 2026-11-22 between 11:20 and 11:24 UTC
CALLS_DAY = datetime(2026, 11, 22, 15, 0, tzinfo=UTC)
EVERYTHING = {"start": "20261101T000000Z", "end": "20261201T000000Z"}

# who the lab's extensions are, plus colleagues who took no call (lists have pages)
USERS = [
    User("anna", "Anna Petrova", "1001", email="anna@example.com", position="Sales"),
    User("boris", "Boris Ivanov", "1002", telnum="74957650002"),
    User("vera", "Vera Smirnova", "1003", mobile="79990000003"),
    User("gleb", "Gleb Orlov", "1004"),
    User("dina", "Dina Volkova", "1005", email="dina@example.com"),
    User("egor", "Egor Sokolov", "1006"),
    User("zoya", "Zoya Kuznetsova", "", position="Accountant"),
]


@dataclass
class Directory:
    users: list[User]
    groups: dict[str, int] = field(default_factory=dict)  # name -> id
    numbers: list[Number] = field(default_factory=list)


async def seed_directory(pool: asyncpg.Pool) -> Directory:
    """The lab's employees, its queue `sales` and ring group `support`, and its numbers:
    each routed to an employee, a group or an IVR."""
    seeded = Directory(list(USERS))
    async with pool.acquire() as conn:
        for u in USERS:
            await directory.upsert_user(conn, PBX, replace(u, source=SOURCE))
        for g in (
            Group(0, "queue", "sales", "sales", "rrmemory", 15, ("anna", "boris")),
            Group(0, "ringgroup", "support", "600", "ringall", 20, ("1001", "1002", "1003")),
            Group(0, "ringgroup", "night", "601", "hunt", 30, ("egor",)),
        ):
            seeded.groups[g.name] = await directory.upsert_group(
                conn, PBX, replace(g, source=SOURCE)
            )
        sales, support = str(seeded.groups["sales"]), str(seeded.groups["support"])
        seeded.numbers = [
            Number("74957654321", "Main line", "user", "anna"),
            Number("74957654322", "Ads", "user", "1001"),
            Number("74957654323", "Support", "group", support),
            Number("74957654324", "Sales", "group", sales),
            Number(
                "74957654327",
                "Menu",
                "ivr",
                "main-menu",
                [{"button": "1", "group": int(sales)}, {"button": "2", "user": "vera"}],
            ),
        ]
        for n in seeded.numbers:
            await directory.upsert_number(conn, PBX, replace(n, source=SOURCE))
    return seeded


def set_clock(monkeypatch: pytest.MonkeyPatch, now: datetime, zone: tzinfo = UTC) -> None:
    """The VPBX history's "now" and the PBX's time zone, fixed (until the test ends)."""
    monkeypatch.setattr(periods, "now", lambda: now)
    monkeypatch.setattr(periods, "zone", lambda: zone)


class FakeDialer:
    """The click-to-call Dialer port: records what it was asked, answers a call id or
    raises the DialError it was given."""

    def __init__(self, fail: DialError | None = None) -> None:
        self.fail = fail
        self.calls: list[tuple[str, str, str | None]] = []

    async def call(self, employee: str, number: str, clid: str | None = None) -> str:
        self.calls.append((employee, number, clid))
        if self.fail is not None:
            raise self.fail
        return f"1795350000.{len(self.calls)}"


class VpbxError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


class CrmConnector:
    """What a CRM vendor's connector to a cloud PBX does: its own session with timeouts,
    the key in `X-API-KEY`, lists read page by page following `info.next`, errors read
    from `message`; nothing of the bridge imported."""

    def __init__(self, base_url: str, key: str, page_size: int = 3) -> None:
        self.base = base_url.rstrip("/") + "/crmapi/v1"
        self.key = key
        self.page_size = page_size
        self.session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=10, connect=2),
            headers={"X-API-KEY": key, "Accept": "application/json"},
        )
        self.requests = 0

    async def close(self) -> None:
        await self.session.close()

    async def get(self, path: str, **params: Any) -> Any:
        self.requests += 1
        async with self.session.get(f"{self.base}/{path}", params=params) as resp:
            body = await resp.json(content_type=None)
            if resp.status >= 400:
                raise VpbxError(resp.status, body.get("message", ""))
            return body

    async def all_items(self, path: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        start = 0
        while True:
            page = await self.get(path, start=start, limit=self.page_size)
            items += page["items"]
            if page["info"].get("next") is None:
                return items
            start = page["info"]["next"]

    async def employees(self) -> dict[str, dict[str, Any]]:
        return {u["login"]: u for u in await self.all_items("users")}

    async def numbers(self) -> dict[str, dict[str, Any]]:
        return {n["telnum"]: n for n in await self.all_items("telnums")}

    async def history(self, period: str) -> list[dict[str, Any]]:
        calls = await self.get("history/json", period=period, type="all")
        assert isinstance(calls, list)
        return calls
