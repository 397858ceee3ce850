"""The HTTP API's common ground: keys, networks, dialects, request ids, JSON errors."""

from __future__ import annotations

import asyncio
import io
import json
import logging

import pytest
from structlog.testing import capture_logs

from bridge.store.apikeys import list_keys, revoke_key
from tests.support.api import Api
from tests.support.traces import expected, scenario_names

pytestmark = pytest.mark.integration

EXTERNAL = sum(len(expected(n)["calls"]) for n in scenario_names())


async def test_a_key_lets_a_client_read_calls(api: Api) -> None:
    key = await api.key("crm")
    async with api.http.get("/api/v1/calls?limit=500", headers={"X-API-Key": key}) as resp:
        assert resp.status == 200
        body = await resp.json()
    external = [c for c in body["items"] if c["direction"] != "internal"]
    assert len(external) == EXTERNAL
    starts = [c["start"] for c in body["items"]]
    assert starts == sorted(starts, reverse=True), "newest first"
    async with api.http.get("/api/v1/calls", headers={"Authorization": f"Bearer {key}"}) as resp:
        assert resp.status == 200, "a bearer token works as well"
    async with api.pool.acquire() as conn:  # what `crm-bridge apikey list` shows
        (listed,) = [k for k in await list_keys(conn, "lab") if k["name"] == "crm"]
    assert listed["last_used_at"] is not None, "written at its first use"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-API-Key": ""},
        {"X-API-Key": "not-a-key"},
        {"X-API-Key": "cbk_00000000_" + "x" * 32},
        {"Authorization": "Basic dXNlcjpwYXNz"},
    ],
)
async def test_no_or_wrong_key_is_401_with_a_message(api: Api, headers) -> None:
    await api.key("crm")
    async with api.http.get("/api/v1/calls", headers=headers) as resp:
        assert resp.status == 401
        assert resp.content_type == "application/json"
        assert "message" in await resp.json()


async def test_a_tampered_or_revoked_key_stops_working(api: Api) -> None:
    key = await api.key("crm")
    tampered = key[:-1] + ("A" if key[-1] != "A" else "B")
    async with api.http.get("/api/v1/calls", headers={"X-API-Key": tampered}) as resp:
        assert resp.status == 401
    async with api.pool.acquire() as conn:
        assert await revoke_key(conn, "lab", "crm")
    api.services.keys.forget()  # the daemon forgets within its cache's ttl
    async with api.http.get("/api/v1/calls", headers={"X-API-Key": key}) as resp:
        assert resp.status == 401


async def test_networks_and_dialects_limit_a_key(api: Api) -> None:
    outside = await api.key("office", networks=["192.0.2.0/24"])
    inside = await api.key("local", networks=["127.0.0.0/8", "::1/128"])
    other_dialect = await api.key("vpbx-only", dialects=["vpbx"])
    for key, status in ((outside, 401), (inside, 200), (other_dialect, 401)):
        async with api.http.get("/api/v1/calls", headers={"X-API-Key": key}) as resp:
            assert resp.status == status, key


async def test_request_ids_and_an_access_line_without_the_key(api: Api, caplog) -> None:
    key = await api.key("crm")
    caplog.set_level(logging.INFO)
    with capture_logs() as logs:
        await ask_twice(api, key)
    access = [e for e in logs if e["event"] == "api_request"]
    assert [e["request_id"] for e in access][:1] == ["abc-123"]
    assert access[0]["key"] == "crm" and access[0]["status"] == 200
    text = caplog.text + repr(logs)
    assert key not in text and key[12:] not in text, "the key is never logged"


async def ask_twice(api: Api, key: str) -> None:
    async with api.http.get(
        "/api/v1/calls", headers={"X-API-Key": key, "X-Request-Id": "abc-123"}
    ) as resp:
        assert resp.headers["X-Request-Id"] == "abc-123"
    async with api.http.get(
        "/api/v1/calls", headers={"X-API-Key": key, "X-Request-Id": "bad id!"}
    ) as resp:
        assert len(resp.headers["X-Request-Id"]) == 32, "a fresh one replaces a bad one"


async def test_errors_are_json(api: Api) -> None:
    key = await api.key("crm")
    h = {"X-API-Key": key}
    async with api.http.get("/no/such/path") as resp:
        assert resp.status == 404 and (await resp.json())["message"]
    async with api.http.delete("/api/v1/calls", headers=h) as resp:
        assert resp.status == 405 and (await resp.json())["message"] == "Method Not Allowed"
    async with api.http.get("/api/v1/calls/no.such.call", headers=h) as resp:
        assert resp.status == 404 and (await resp.json()) == {"message": "No such call"}
    for bad in ("limit=0", "limit=x", "from=yesterday", "direction=sideways", "sort=size"):
        async with api.http.get(f"/api/v1/calls?{bad}", headers=h) as resp:
            assert resp.status == 400, bad
            assert bad.split("=")[0] in (await resp.json())["message"]
    async with api.http.post("/api/v1/calls", data=io.BytesIO(b"x" * (2 << 20)), headers=h) as resp:
        assert resp.status in (405, 413)


async def test_one_call_with_its_legs_and_events(api: Api) -> None:
    key = await api.key("crm")
    h = {"X-API-Key": key}
    async with api.http.get("/api/v1/calls?phone=79101234567&limit=1000", headers=h) as resp:
        calls = (await resp.json())["items"]
    assert calls and all(c["phone"] == "79101234567" for c in calls)
    async with api.http.get(f"/api/v1/calls/{calls[0]['callid']}", headers=h) as resp:
        body = await resp.json()
    assert body["legs"] and body["events"]
    assert [e["seq"] for e in body["events"]] == sorted(e["seq"] for e in body["events"])
    assert json.dumps(body)  # plain JSON all the way


async def raw_get(api: Api, target: str, **headers: str) -> tuple[int, dict[str, str], object]:
    """GET `target` exactly as written (client libraries may merge slashes themselves):
    (status, headers, JSON body)."""
    port = api.server.port
    assert port is not None
    lines = [f"GET {target} HTTP/1.1", "Host: pbx", "Connection: close"]
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        head, _, body = (await reader.read()).partition(b"\r\n\r\n")
    finally:
        writer.close()
        await writer.wait_closed()
    status_line, *fields = head.decode().split("\r\n")
    found = {k.lower(): v.strip() for k, _, v in (f.partition(":") for f in fields)}
    return int(status_line.split()[1]), found, json.loads(body)


async def test_repeated_slashes_are_one_without_a_redirect(api: Api) -> None:
    """Sangoma's examples use a base URL ending in `/` (`http://pbx//admin/api/...`), which
    Apache serves: so does the bridge, in place, for every route."""
    key = await api.key("crm")
    rest = "/admin/api/sangomacrm/rest"
    status, headers, call = await raw_get(
        api, f"/{rest}//calls/1795346445.14", Token=key, X_Request_Id="slashes-1"
    )
    assert status == 200 and isinstance(call, dict) and call["uuid"] == "1795346445.14"
    assert headers["x-request-id"] == "slashes-1"
    _, _, page = await raw_get(api, "//api/v1/calls?limit=2", X_API_Key=key)
    assert isinstance(page, dict) and len(page["items"]) == 2, "the query string is kept"
    # each dialect's own auth and error shape, the root's for paths no dialect owns
    status, _, body = await raw_get(api, f"/{rest}/calls/list")
    assert (status, body) == (401, {"status": False, "message": "A Token header is needed"})
    status, _, body = await raw_get(api, "//pbxapi//extensions")
    assert status == 403 and isinstance(body, dict) and body["status"] == "fail"
    status, _, body = await raw_get(api, "//api/v1//calls")
    assert (status, body) == (
        401,
        {"message": "An API key is needed (Authorization: Bearer <key>)"},
    )
    status, _, body = await raw_get(api, "//no//such/path")
    assert status == 404 and isinstance(body, dict) and body["message"]
    assert (await raw_get(api, "//healthz"))[0] == 200
