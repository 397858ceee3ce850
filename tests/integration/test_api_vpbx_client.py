"""`/crmapi/v1` as its clients meet it: the key and its refusals (section 3.3), JSON
errors for every path, and a CRM connector written the way vendors write them reading
everything over a real socket."""

from __future__ import annotations

import pytest

from bridge.store.apikeys import revoke_key
from tests.support.api import Api
from tests.support.traces import expected, scenario_names
from tests.support.vpbx import (
    CALLS_DAY,
    USERS,
    CrmConnector,
    VpbxError,
    seed_directory,
    set_clock,
)

pytestmark = pytest.mark.integration

EXTERNAL = sum(len(expected(n)["calls"]) for n in scenario_names())
PATHS = ("history/json", "history/csv", "history/inner/json", "users", "groups", "telnums")


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-API-KEY": ""},
        {"X-API-KEY": "not-a-key"},
        {"X-API-KEY": "cbk_00000000_" + "x" * 32},
        {"Authorization": "Bearer whatever"},
    ],
)
async def test_no_or_wrong_key_is_401_invalid_token(api: Api, headers) -> None:
    await api.key("crm")
    for path in PATHS:
        async with api.http.get(f"/crmapi/v1/{path}", headers=headers) as resp:
            assert resp.status == 401
            assert await resp.json() == {"message": "Invalid token"}
    async with api.http.post("/crmapi/v1/makecall", json={}, headers=headers) as resp:
        assert resp.status == 401


async def test_a_tampered_or_revoked_key_is_refused(api: Api) -> None:
    key = await api.key("crm")
    async with api.http.get("/crmapi/v1/users", headers={"x-api-key": key}) as resp:
        assert resp.status == 200, "header names have no case"
    tampered = key[:-1] + ("A" if key[-1] != "A" else "B")
    async with api.http.get("/crmapi/v1/users", headers={"X-API-KEY": tampered}) as resp:
        assert resp.status == 401
    async with api.pool.acquire() as conn:
        assert await revoke_key(conn, "lab", "crm")
    api.services.keys.forget()
    async with api.http.get("/crmapi/v1/users", headers={"X-API-KEY": key}) as resp:
        assert resp.status == 401 and await resp.json() == {"message": "Invalid token"}


async def test_dialects_and_networks_limit_a_key(api: Api) -> None:
    native_only = await api.key("native-only", dialects=["native"])
    vpbx_only = await api.key("vpbx-only", dialects=["vpbx"])
    elsewhere = await api.key("office", networks=["192.0.2.0/24"])
    both = await api.key("vpbx-office", dialects=["vpbx"], networks=["192.0.2.0/24"])
    local = await api.key("local", dialects=["sangoma", "vpbx"], networks=["127.0.0.0/8"])
    for key, status, message in (
        (native_only, 403, "Don't have permission to access"),
        (vpbx_only, 200, None),
        (elsewhere, 401, "Invalid token"),
        (both, 401, "Invalid token"),
        (local, 200, None),
    ):
        async with api.http.get("/crmapi/v1/users", headers={"X-API-KEY": key}) as resp:
            assert resp.status == status, key
            if message:
                assert await resp.json() == {"message": message}
    async with api.http.get("/api/v1/calls", headers={"X-API-Key": vpbx_only}) as resp:
        assert resp.status == 401, "and the other way round"


async def test_unknown_paths_and_methods_answer_json(api: Api) -> None:
    key = await api.key("crm")
    h = {"X-API-KEY": key}
    async with api.http.get("/crmapi/v1/no/such/thing", headers=h) as resp:
        assert resp.status == 404 and "message" in await resp.json()
    async with api.http.get("/crmapi/v1/no/such/thing") as resp:
        assert resp.status == 401, "nothing is said about paths without a key"
    for method, path in (("DELETE", "history/json"), ("PUT", "users"), ("GET", "webhook/x")):
        async with api.http.request(method, f"/crmapi/v1/{path}", headers=h) as resp:
            assert resp.status == 405, (method, path)
            assert await resp.json() == {"message": "Method Not Allowed"}


async def test_a_crm_connector_reads_everything(api: Api, monkeypatch) -> None:
    """Employees and numbers page by page, then the day's calls, matched as a CRM does:
    every call's employee is one of the employees, every company number is known."""
    seeded = await seed_directory(api.pool)
    key = await api.key("crm-connector", dialects=["vpbx"])
    set_clock(monkeypatch, CALLS_DAY)
    connector = CrmConnector(api.url, key, page_size=3)
    try:
        employees = await connector.employees()
        numbers = await connector.numbers()
        calls = await connector.history("today")
        requests = connector.requests
    finally:
        await connector.close()
    assert sorted(employees) == sorted(u.login for u in USERS)
    assert sorted(numbers) == sorted(n.telnum for n in seeded.numbers)
    assert requests == 3 + 2 + 1, "7 employees and 5 numbers in pages of 3, one history"
    assert len(calls) == EXTERNAL and len({c["uid"] for c in calls}) == EXTERNAL
    for call in calls:
        assert call["user"] == "" or call["user"] in employees, call
        if call["user"]:
            assert call["user_name"] == employees[call["user"]]["name"]
        assert call["diversion"] in numbers, call
    missed = [c for c in calls if c["status"] == "missed" and c["type"] == "in"]
    assert missed and all(c["duration"] == 0 for c in missed)


async def test_a_connector_with_a_wrong_key_learns_why(api: Api) -> None:
    native = await api.key("native", dialects=["native"])
    for key, status, message in (
        ("cbk_deadbeef_" + "x" * 32, 401, "Invalid token"),
        (native, 403, "Don't have permission to access"),
    ):
        connector = CrmConnector(api.url, key)
        try:
            with pytest.raises(VpbxError) as refused:
                await connector.employees()
        finally:
            await connector.close()
        assert (refused.value.status, refused.value.message) == (status, message)
