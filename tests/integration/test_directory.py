"""The directory seeded and refreshed from Asterisk and the config, in a real PostgreSQL.

Asterisk is the fake AMI server over real TCP (panoramisk's protocol on our side),
configured from the lab's own pjsip.conf / sip.conf and queues.conf and answering
PJSIPShowEndpoints, PJSIPShowEndpoint, SIPpeers, SIPshowpeer and QueueStatus in the
shapes Asterisk's source gives them (bridge.devtools.fake_directory).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest

from bridge.agi.directory import Directory
from bridge.ami.ingest import AmiIngest
from bridge.config import PbxSettings
from bridge.devtools.fake_ami import FakeAmiServer, Headers, parse_message
from bridge.devtools.fake_directory import FakePbx, FakeQueue, QueueMember
from bridge.devtools.traces import traces_dir
from bridge.directory_sync import DirectorySync, DirectoryView
from bridge.store import directory as store
from bridge.store.directory import Group, Number, User
from bridge.store.migrations import migrate

pytestmark = pytest.mark.integration

LAB = {
    "id": "lab",
    "trunks": ["PJSIP/trunk-*", "SIP/trunk-*"],
    "extensions": ["PJSIP/*", "SIP/*"],
    "main_number": "74957654321",
}
CONFIG = {
    "users": {"1001": "ivanov"},
    "groups": {"sales": "Sales dept", "600": "Support", "74957654323": "Ring group line"},
    "numbers": {
        "74957654321": "Main line",
        "74957654324": {"name": "Sales line", "route": "queue:sales"},
        "74957654322": {"name": "Ivanov direct", "route": "user:1001"},
    },
}


@dataclass
class Lab:
    server: FakeAmiServer
    ingest: AmiIngest
    pool: asyncpg.Pool

    def sync(self, **pbx: Any) -> DirectorySync:
        settings = PbxSettings(**{**LAB, **pbx})
        return DirectorySync(settings, self.pool, DirectoryView(settings, Directory({})))

    async def users(self) -> dict[str, tuple[str, str, str]]:
        return {u.login: (u.name, u.ext, u.source) for u in await store.users(self.pool, "lab")}

    async def groups(self) -> dict[tuple[str, str], Group]:
        return {(g.kind, g.ext): g for g in await store.groups(self.pool, "lab")}

    async def numbers(self) -> dict[str, Number]:
        return {n.telnum: n for n in await store.numbers(self.pool, "lab")}

    def asked(self) -> list[str]:
        """The actions of the directory's reads (not the ingest's own)."""
        own = ("Login", "Ping", "CoreShowChannels")
        return [a.get("Action", "") for a in self.server.actions if a.get("Action") not in own]


async def start_lab(pg_dsn: str, lab_config: str) -> Lab:
    server = FakeAmiServer()
    server.pbx = FakePbx.from_config(traces_dir(lab_config) / "asterisk-config")
    port = await server.start()
    ingest = AmiIngest("127.0.0.1", port, "bridge", "bridge", ping_interval=60)
    await ingest.start()
    async with asyncio.timeout(5):
        await ingest.logged_in.wait()
    pool = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=4)
    async with pool.acquire() as conn:
        await migrate(conn)
    return Lab(server, ingest, pool)


@pytest.fixture
async def lab(pg_dsn: str) -> AsyncIterator[Lab]:
    lab = await start_lab(pg_dsn, "asterisk22")
    yield lab
    await lab.ingest.stop()
    await lab.server.stop()
    await lab.pool.close()


async def test_a_login_fills_the_directory_from_asterisk_and_the_config(lab: Lab) -> None:
    sync = lab.sync(**CONFIG)
    assert await sync.refresh(lab.ingest)
    assert await lab.users() == {
        "ivanov": ("Ivan Petrov", "1001", "config"),  # the config's login, Asterisk's name
        "1002": ("Olga Smirnova", "1002", "pbx"),
        "1003": ("Sergey Ivanov", "1003", "pbx"),
    }, "the trunk endpoint is nobody's phone"
    groups = await lab.groups()
    sales = groups["queue", "sales"]
    assert (sales.name, sales.strategy, sales.members, sales.source) == (
        "Sales dept",
        "ringall",
        ("ivanov", "1002"),  # queues.conf's Local/100x@queue-members members, as logins
        "pbx",
    )
    assert (groups["ringgroup", "600"].name, groups["ringgroup", "600"].source) == (
        "Support",
        "config",
    )
    assert len(groups) == 2, "a DID in [pbx] groups is no ring group"
    numbers = await lab.numbers()
    assert {n.telnum: (n.name, n.route_type, n.route_to) for n in numbers.values()} == {
        "74957654321": ("Main line", "", ""),
        "74957654322": ("Ivanov direct", "user", "ivanov"),
        "74957654324": ("Sales line", "group", str(sales.id)),
    }
    # what Asterisk was asked: the endpoints, each phone's details, chan_sip (absent on
    # Asterisk 22: "Invalid/unknown command"), the queues
    assert lab.asked() == [
        "PJSIPShowEndpoints",
        "PJSIPShowEndpoint",
        "PJSIPShowEndpoint",
        "PJSIPShowEndpoint",
        "SIPpeers",
        "QueueStatus",
    ]
    shown = sorted(a["Endpoint"] for a in lab.server.actions if "Endpoint" in a)
    assert shown == ["1001", "1002", "1003"]
    view = sync.view
    assert view.logins == {"1001": "ivanov", "1002": "1002", "1003": "1003"}
    assert view.groups["sales"] == "Sales dept" and view.groups["74957654323"] == "Ring group line"
    assert view.number_names["74957654324"] == "Sales line"
    assert view.techs == {"1001": "PJSIP", "1002": "PJSIP", "1003": "PJSIP"}
    assert view.agi is not None and view.agi.resolve("ivanov") == "1001"


async def test_a_refresh_follows_what_changed_in_asterisk(lab: Lab) -> None:
    sync = lab.sync(**CONFIG)
    await sync.refresh(lab.ingest)
    pbx = lab.server.pbx
    del pbx.endpoints["1003"]
    pbx.endpoints["1002"] = '"Olga Petrova" <1002>'
    pbx.endpoints["1004"] = '"Anna Kim" <1004>'
    pbx.queues["sales"].members.pop(0)
    pbx.queues["support"] = FakeQueue("rrmemory", [QueueMember("Anna", "PJSIP/1004")])
    assert await sync.refresh(lab.ingest)
    assert await lab.users() == {
        "ivanov": ("Ivan Petrov", "1001", "config"),
        "1002": ("Olga Petrova", "1002", "pbx"),
        "1004": ("Anna Kim", "1004", "pbx"),
    }
    groups = await lab.groups()
    assert groups["queue", "sales"].members == ("1002",)
    assert (groups["queue", "support"].strategy, groups["queue", "support"].members) == (
        "rrmemory",
        ("1004",),
    )
    del pbx.queues["support"]
    await sync.refresh(lab.ingest)
    assert ("queue", "support") not in await lab.groups()


async def test_what_an_api_client_wrote_survives_every_refresh(lab: Lab) -> None:
    await store.upsert_user(lab.pool, "lab", User("olga", "Olga (CRM)", "1002", source="api"))
    await store.upsert_group(
        lab.pool, "lab", Group(0, "queue", "Sales (CRM)", "sales", source="api")
    )
    await store.upsert_number(lab.pool, "lab", Number("74957654321", "Head office", source="api"))
    sync = lab.sync(**CONFIG)
    for _ in range(2):
        assert await sync.refresh(lab.ingest)
        users = await lab.users()
        assert users["olga"] == ("Olga (CRM)", "1002", "api")
        assert "1002" not in users, "Asterisk's 1002 is the API's olga"
        sales = (await lab.groups())["queue", "sales"]
        assert (sales.name, sales.members, sales.source) == ("Sales (CRM)", (), "api")
        number = (await lab.numbers())["74957654321"]
        assert (number.name, number.source) == ("Head office", "api")
    assert sync.view.logins["1002"] == "olga"
    assert sync.view.number_names["74957654321"] == "Head office"


async def test_an_api_client_takes_an_extension_from_a_learnt_employee(lab: Lab) -> None:
    sync = lab.sync(**CONFIG)
    await sync.refresh(lab.ingest)
    await store.upsert_user(lab.pool, "lab", User("i.petrov", "Ivan", "1001", source="api"))
    assert (await lab.users())["ivanov"] == ("Ivan Petrov", "", "config")
    assert await sync.refresh(lab.ingest)
    users = await lab.users()
    assert "ivanov" not in users and users["i.petrov"] == ("Ivan", "1001", "api")
    assert sync.view.logins["1001"] == "i.petrov"


async def test_the_config_names_phones_asterisk_listed_first(lab: Lab) -> None:
    """A phone learnt under its extension gets the config's login once the config names
    it, and two configured employees may swap extensions."""
    await lab.sync().refresh(lab.ingest)
    assert (await lab.users())["1001"] == ("Ivan Petrov", "1001", "pbx")
    await lab.sync(users={"1001": "ivanov", "1002": "smirnova"}).refresh(lab.ingest)
    users = await lab.users()
    assert "1001" not in users and "1002" not in users
    assert users["ivanov"] == ("Ivan Petrov", "1001", "config")
    assert await lab.sync(users={"1001": "smirnova", "1002": "ivanov"}).refresh(lab.ingest)
    users = await lab.users()
    assert (users["smirnova"][1], users["ivanov"][1]) == ("1001", "1002")
    await lab.sync(users={"1002": "ivanov"}).refresh(lab.ingest)
    users = await lab.users()
    assert "smirnova" not in users and users["1001"] == ("Ivan Petrov", "1001", "pbx")


async def test_an_asterisk_that_does_not_answer_in_full_forgets_nothing(lab: Lab) -> None:
    sync = lab.sync(**CONFIG)
    await sync.refresh(lab.ingest)

    def denied(headers: dict[str, str]) -> list[str]:  # a manager.conf without `system`
        return [
            f"Response: Error\r\nActionID: {headers['ActionID']}\r\nMessage: Permission denied\r\n"
        ]

    lab.server.respond_with("PJSIPShowEndpoints", denied)
    lab.server.respond_with("QueueStatus", denied)
    del lab.server.pbx.endpoints["1003"]
    assert await sync.refresh(lab.ingest)
    assert set(await lab.users()) == {"ivanov", "1002", "1003"}
    assert ("queue", "sales") in await lab.groups()
    # the config is still applied: it is always read in full
    assert await lab.sync(users={"1001": "petrov"}).refresh(lab.ingest)
    users = await lab.users()
    assert "ivanov" not in users and users["petrov"] == ("Ivan Petrov", "1001", "config")


async def test_the_config_alone_at_the_start_of_a_term(lab: Lab) -> None:
    """Before Asterisk answers: the config is written, Asterisk's phones stay, names too."""
    await lab.sync(**CONFIG).refresh(lab.ingest)
    sync = lab.sync(**{**CONFIG, "users": {"1001": "ivanov", "1003": "sidorov"}})
    assert await sync.refresh(None)
    users = await lab.users()
    assert users["ivanov"] == ("Ivan Petrov", "1001", "config")
    assert users["sidorov"] == ("Sergey Ivanov", "1003", "config"), "the phone's name stays"
    assert "1003" not in users
    assert users["1002"] == ("Olga Smirnova", "1002", "pbx")
    assert ("queue", "sales") in await lab.groups(), "the queues Asterisk showed stay"
    assert ("ringgroup", "sales") not in await lab.groups()


async def test_chan_sip_peers_of_an_older_asterisk(pg_dsn: str) -> None:
    lab = await start_lab(pg_dsn, "asterisk18")
    try:
        sync = lab.sync(**CONFIG)
        assert await sync.refresh(lab.ingest)
        assert await lab.users() == {
            "ivanov": ("Ivan Petrov", "1001", "config"),
            "1002": ("Olga Smirnova", "1002", "pbx"),
            "1003": ("Sergey Ivanov", "1003", "pbx"),
        }
        assert (await lab.groups())["queue", "sales"].members == ("ivanov", "1002")
        assert sync.view.techs == {"1001": "SIP", "1002": "SIP", "1003": "SIP"}
        peers = [a["Peer"] for a in lab.server.actions if a.get("Action") == "SIPshowpeer"]
        assert sorted(peers) == ["1001", "1002", "1003"]
        assert "PJSIPShowEndpoint" not in lab.asked(), "no PJSIP: nothing to show"
    finally:
        await lab.ingest.stop()
        await lab.server.stop()
        await lab.pool.close()


async def test_the_link_dropping_during_a_read_forgets_nothing(lab: Lab) -> None:
    sync = lab.sync(**CONFIG)
    await sync.refresh(lab.ingest)

    def cut_the_link(headers: Headers) -> list[str]:
        lab.server.cut()
        return []

    lab.server.respond_with("QueueStatus", cut_the_link)
    assert await sync.refresh(lab.ingest), "the config is still written"
    assert ("queue", "sales") in await lab.groups()
    assert set(await lab.users()) == {"ivanov", "1002", "1003"}


def test_the_lab_config_is_read_as_asterisk_reads_it() -> None:
    pbx = FakePbx.from_config(traces_dir("asterisk22") / "asterisk-config")
    assert pbx.endpoints == {
        "1001": '"Ivan Petrov" <1001>',
        "1002": '"Olga Smirnova" <1002>',
        "1003": '"Sergey Ivanov" <1003>',
        "trunk": "",
    }
    answer = pbx.answer("pjsipshowendpoint", {"Endpoint": "1001"}, "ActionID: 7\r\n")
    assert answer is not None
    detail = parse_message(answer[1])
    assert (detail["Event"], detail["Callerid"], detail["ActionID"]) == (
        "EndpointDetail",
        '"Ivan Petrov" <1001>',
        "7",
    )


def test_what_the_lab_asterisk_answers_for_what_it_does_not_have() -> None:
    pbx = FakePbx.from_config(traces_dir("asterisk22") / "asterisk-config")
    aid = "ActionID: 7\r\n"
    (missing,) = pbx.answer("pjsipshowendpoint", {"Endpoint": "1009"}, aid) or []
    assert missing == (
        "Response: Error\r\nActionID: 7\r\nMessage: Unable to retrieve endpoint 1009\n\r\n"
    )
    (unknown,) = pbx.answer("sippeers", {"Action": "SIPpeers"}, aid) or []
    assert parse_message(unknown)["Message"].startswith("Invalid/unknown command: SIPpeers.")
    assert pbx.answer("sipshowpeer", {"Action": "SIPshowpeer", "Peer": "1001"}, aid) == [
        unknown.replace("SIPpeers", "SIPshowpeer")
    ]
    assert pbx.answer("coreshowchannels", {}, aid) is None
    empty = FakePbx()
    (none,) = empty.answer("pjsipshowendpoints", {}, aid) or []
    assert "Message: No endpoints found" in none
