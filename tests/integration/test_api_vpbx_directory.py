"""`/crmapi/v1/users`, `/groups`, `/telnums`: the directory as sections 6, 8 and 9 shape
it, lists paged and searched as section 3.2 says."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any

import pytest

from bridge.ami.ingest import AmiIngest
from bridge.devtools.fake_ami import FakeAmiServer
from tests.support.api import Api
from tests.support.vpbx import USERS, seed_directory

pytestmark = pytest.mark.integration


async def get(api: Api, path: str, key: str, status: int = 200, /, **params: str) -> Any:
    async with api.http.get(f"/crmapi/v1/{path}", params=params, headers={"X-API-KEY": key}) as r:
        assert r.status == status, (path, params, r.status, await r.text())
        assert r.content_type == "application/json"
        return await r.json()


async def pages(api: Api, path: str, key: str, limit: int, **params: str) -> list[list[Any]]:
    """Follow `info.next` from the start; every page's items."""
    found: list[list[Any]] = []
    start = 0
    while True:
        body = await get(api, path, key, start=str(start), limit=str(limit), **params)
        info = body["info"]
        assert (info["start"], info["limit"]) == (start, limit)
        assert isinstance(info["total"], int) and not isinstance(info["total"], bool)
        found.append(body["items"])
        if "next" not in info:
            assert start + limit >= info["total"]
            return found
        assert info["next"] == start + limit < info["total"]
        start = info["next"]


async def test_empty_directory_is_an_empty_list(api: Api) -> None:
    key = await api.key("crm")
    for path in ("users", "groups", "telnums"):
        body = await get(api, path, key)
        assert body == {"items": [], "info": {"search": "", "total": 0, "start": 0, "limit": 0}}
    assert await get(api, "users/1001", key, 404) == {"message": "User not found"}


async def test_users_list_and_one_user(api: Api) -> None:
    key = await api.key("crm")
    await seed_directory(api.pool)
    body = await get(api, "users", key)
    assert body["info"] == {"search": "", "total": len(USERS), "start": 0, "limit": len(USERS)}
    logins = [u["login"] for u in body["items"]]
    assert sorted(logins) == sorted(u.login for u in USERS)
    anna = next(u for u in body["items"] if u["login"] == "anna")
    assert anna == {
        "login": "anna",
        "name": "Anna Petrova",
        "position": "Sales",
        "email": "anna@example.com",
        "ext": "1001",
        "telnum": "",
        "role": "user",
        "mobile": "",
        "mobile_redirect": {"enabled": False},
        "record": True,
    }
    assert await get(api, "users/anna", key) == anna
    assert await get(api, "users/1001", key) == anna, "a short number finds its employee"
    assert await get(api, "users/nobody", key, 404) == {"message": "User not found"}


def device_state_list(states: dict[str, str]) -> Callable[[dict[str, str]], Iterable[str]]:
    """`DeviceStateList` as res_manager_devicestate.c answers it."""

    def answer(headers: dict[str, str]) -> list[str]:
        id_line = f"ActionID: {headers['ActionID']}\r\n"
        return [
            f"Response: Success\r\n{id_line}EventList: start\r\n"
            "Message: Device State Changes will follow\r\n",
            *(
                f"Event: DeviceStateChange\r\n{id_line}Device: {device}\r\nState: {state}\r\n"
                for device, state in states.items()
            ),
            f"Event: DeviceStateListComplete\r\n{id_line}EventList: Complete\r\n"
            f"ListItems: {len(states)}\r\n",
        ]

    return answer


async def test_with_status_is_whether_the_employees_phone_is_registered(api: Api) -> None:
    """6.1 and 6.2 `with=status`: online while Asterisk can reach the phone (its device
    state), offline when not or without a phone, unknown while Asterisk cannot say."""
    key = await api.key("crm")
    await seed_directory(api.pool)
    plain = await get(api, "users", key)
    assert all("status" not in u for u in plain["items"])
    standby = await get(api, "users", key, **{"with": "status"})
    assert {u["status"] for u in standby["items"]} == {"unknown"}, "no AMI link"
    ami = FakeAmiServer()
    states = {
        "PJSIP/1001": "NOT_INUSE",
        "PJSIP/1002": "INUSE",
        "PJSIP/1003": "UNAVAILABLE",
        "PJSIP/1004": "UNKNOWN",
        "PJSIP/trunk-main": "NOT_INUSE",
        "Queue:sales": "NOT_INUSE",
    }
    ami.respond_with("DeviceStateList", device_state_list(states))
    ingest = AmiIngest("127.0.0.1", await ami.start(), "bridge", "bridge", ping_interval=60)
    await ingest.start()
    try:
        async with asyncio.timeout(5):
            await ingest.logged_in.wait()
        api.services.ami = lambda: ingest
        body = await get(api, "users", key, **{"with": "status"})
        online = {u["login"] for u in body["items"] if u["status"] == "online"}
        assert online == {"anna", "boris"}
        assert {u["status"] for u in body["items"]} == {"online", "offline"}
        anna = next(u for u in plain["items"] if u["login"] == "anna")
        assert await get(api, "users/1001", key, **{"with": "status"}) == {
            **anna,
            "status": "online",
        }
        assert [a["Action"] for a in ami.actions if a["Action"] == "DeviceStateList"] == [
            "DeviceStateList"
        ] * 2, "Asterisk is asked once per request"
        unknown = "Message: Invalid/unknown command: DeviceStateList\r\n"
        ami.respond_with(
            "DeviceStateList",
            lambda h: [f"Response: Error\r\nActionID: {h['ActionID']}\r\n{unknown}"],
        )
        refused = await get(api, "users/anna", key, **{"with": "status"})
        assert refused["status"] == "unknown", "res_manager_devicestate not loaded"
    finally:
        await ingest.stop()
        await ami.stop()


@pytest.mark.parametrize("limit", [1, 2, 3, 7, 50])
async def test_users_pages_cover_everyone_once(api: Api, limit: int) -> None:
    key = await api.key("crm")
    await seed_directory(api.pool)
    found = await pages(api, "users", key, limit)
    logins = [u["login"] for page in found for u in page]
    assert sorted(logins) == sorted(u.login for u in USERS)
    assert all(len(page) == limit for page in found[:-1])
    beyond = await get(api, "users", key, start="100", limit="5")
    assert beyond["items"] == [] and "next" not in beyond["info"]
    assert beyond["info"]["total"] == len(USERS)


async def test_search_finds_a_substring_in_several_fields(api: Api) -> None:
    key = await api.key("crm")
    await seed_directory(api.pool)

    async def logins(search: str, **more: str) -> list[str]:
        body = await get(api, "users", key, search=search, **more)
        assert body["info"]["search"] == search
        assert body["info"]["total"] == len(body["items"]) or "limit" in more
        return sorted(u["login"] for u in body["items"])

    assert await logins("ANNA") == ["anna"], "any case"
    assert await logins("example.com") == ["anna", "dina"], "email"
    assert await logins("100") == ["anna", "boris", "dina", "egor", "gleb", "vera"], "ext"
    assert await logins("Accountant") == ["zoya"], "position"
    assert await logins("7999000") == ["vera"], "mobile"
    assert await logins("nobody") == []
    paged = await pages(api, "users", key, 4, search="100")
    assert [len(p) for p in paged] == [4, 2]


async def test_groups(api: Api) -> None:
    key = await api.key("crm")
    seeded = await seed_directory(api.pool)
    sales_id, support_id = str(seeded.groups["sales"]), str(seeded.groups["support"])
    body = await get(api, "groups", key)
    assert body["info"]["total"] == 3
    by_name = {g["name"]: g for g in body["items"]}
    sales = by_name["sales"]
    assert sales["id"] == sales_id and sales["ext"] == "sales"
    assert (sales["call_order"], sales["call_duration"]) == ("EVENLY", 15)
    assert [m["login"] for m in sales["users"]] == ["anna", "boris"]
    assert sales["users"][0] == {
        "login": "anna",
        "name": "Anna Petrova",
        "calls_enable": True,
        "group_head": False,
        "is_absence_active": False,
        "is_forwarding_disabled": False,
    }
    support = by_name["support"]
    assert (support["call_order"], support["call_duration"]) == ("ALL", 0)
    assert [m["login"] for m in support["users"]] == ["anna", "boris", "vera"], "by extension"
    assert by_name["night"]["call_order"] == "BYORDER"
    assert await get(api, f"groups/{sales_id}", key) == sales
    assert await get(api, "groups/600", key) == support, "its number finds it too"
    assert await get(api, "groups/999999", key, 404) == {"message": "Group not found"}
    members = await get(api, f"groups/{support_id}/users", key)
    assert [m["login"] for m in members["items"]] == ["anna", "boris", "vera"]
    assert members["info"]["total"] == 3
    assert [len(p) for p in await pages(api, f"groups/{support_id}/users", key, 2)] == [2, 1]
    found = await get(api, "groups", key, search="SUPP")
    assert [g["name"] for g in found["items"]] == ["support"]


async def test_groups_of_a_user(api: Api) -> None:
    key = await api.key("crm")
    seeded = await seed_directory(api.pool)
    body = await get(api, "users/anna/groups", key)
    assert sorted(body["items"], key=lambda g: g["name"]) == [
        {"id": str(seeded.groups["sales"]), "name": "sales", "ext": "sales"},
        {"id": str(seeded.groups["support"]), "name": "support", "ext": "600"},
    ]
    assert body["info"]["total"] == 2
    assert await get(api, "users/1001/groups", key) == body
    assert (await get(api, "users/zoya/groups", key))["items"] == []
    assert await get(api, "users/nobody/groups", key, 404) == {"message": "User not found"}


async def test_telnums(api: Api) -> None:
    key = await api.key("crm")
    seeded = await seed_directory(api.pool)
    api.services.settings.pbx.main_number = "74957654321"
    body = await get(api, "telnums", key)
    assert body["info"]["total"] == len(seeded.numbers)
    numbers = {n["telnum"]: n for n in body["items"]}
    main = numbers["74957654321"]
    assert main["type"] == "user" and main["is_main_phone"] is True
    assert (main["user"], main["user_name"], main["name"]) == ("anna", "Anna Petrova", "Main line")
    ads = numbers["74957654322"]
    assert (ads["user"], ads["user_name"], ads["is_main_phone"]) == ("anna", "Anna Petrova", False)
    sales = numbers["74957654324"]
    assert sales["type"] == "group"
    assert (sales["group"], sales["group_name"]) == (str(seeded.groups["sales"]), "sales")
    menu = numbers["74957654327"]
    assert menu["type"] == "ivr" and menu["ivr"]["name"] == "main-menu"
    assert menu["ivr"]["items"] == [
        {
            "button": "1",
            "type": "group",
            "group": str(seeded.groups["sales"]),
            "group_name": "sales",
        },
        {"button": "2", "type": "user", "user": "vera", "user_name": "Vera Smirnova"},
    ]
    for n in body["items"]:
        assert {"telnum", "name", "type", "is_main_phone", "disabled"} <= n.keys()
    assert await get(api, "telnums/74957654324", key) == sales
    assert await get(api, "telnums/+7 (495) 765-43-24", key) == sales, "any written form"
    assert await get(api, "telnums/84957654324", key) == sales
    assert await get(api, "telnums/74950000000", key, 404) == {"message": "Number not found"}
    found = await get(api, "telnums", key, search="anna petrova")
    assert sorted(n["telnum"] for n in found["items"]) == ["74957654321", "74957654322"]
    chain = await pages(api, "telnums", key, 2)
    assert sorted(n["telnum"] for p in chain for n in p) == sorted(numbers)


@pytest.mark.parametrize("query", ["start=-1", "start=x", "limit=0", "limit=x", "limit=100001"])
async def test_bad_paging_is_400(api: Api, query: str) -> None:
    key = await api.key("crm")
    for path in ("users", "groups", "telnums"):
        async with api.http.get(f"/crmapi/v1/{path}?{query}", headers={"X-API-KEY": key}) as r:
            assert r.status == 400
            assert query.split("=")[0] in (await r.json())["message"]
