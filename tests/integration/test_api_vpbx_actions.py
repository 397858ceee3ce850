"""`/crmapi/v1/makecall` and `/crmapi/v1/webhook`: bodies as clients send them (JSON,
form), malformed ones refused with a 4xx JSON message, click-to-call through the Dialer
port, subscriptions that really get the primary CRM's webhooks."""

from __future__ import annotations

import io
from typing import Any

import pytest

from bridge.api.services import DialError
from bridge.crm.outbox_rows import OutboxRows
from bridge.store.targets import Subscription, add_target, list_targets
from tests.support.api import Api
from tests.support.delivery import store_scenarios
from tests.support.vpbx import FakeDialer

pytestmark = pytest.mark.integration


async def post(api: Api, path: str, key: str, status: int, **kw: Any) -> dict[str, Any] | list[Any]:
    headers = {"X-API-KEY": key, **kw.pop("headers", {})}
    async with api.http.post(f"/crmapi/v1/{path}", headers=headers, **kw) as r:
        assert r.status == status, (kw, r.status, await r.text())
        assert r.content_type == "application/json"
        return await r.json()


# ---------------------------------------------------------------- makecall


async def test_makecall_with_json_and_form_bodies(api: Api) -> None:
    key = await api.key("crm")
    dialer = api.services.dialer = FakeDialer()
    body = {"user": "anna", "phone": "79101234567"}
    assert await post(api, "makecall", key, 200, json=body) == {"callid": "1795350000.1"}
    form = {"user": "1001", "phone": "8 (926) 123-45-67", "clid": "+7 495 765-43-21"}
    answer = await post(api, "makecall", key, 200, data=form)
    assert answer == {"callid": "1795350000.2", "clid": "74957654321"}
    numbers = {"user": 1001, "phone": 79101234567}  # numbers as JSON numbers
    await post(api, "makecall", key, 200, json=numbers)
    assert dialer.calls == [
        ("anna", "79101234567", None),
        ("1001", "79261234567", "74957654321"),
        ("1001", "79101234567", None),
    ]


async def test_makecall_without_a_dialer_or_with_a_failing_one(api: Api) -> None:
    key = await api.key("crm")
    body = {"user": "anna", "phone": "79101234567"}
    api.services.dialer = None
    gone = await post(api, "makecall", key, 503, json=body)
    assert gone == {"message": "Click-to-call is not available now"}
    api.services.dialer = FakeDialer(DialError(400, "no employee 'anna'"))
    assert await post(api, "makecall", key, 400, json=body) == {
        "message": "Validation error: no employee 'anna'"
    }
    api.services.dialer = FakeDialer(DialError(503, "Asterisk is not connected"))
    down = await post(api, "makecall", key, 503, json=body)
    assert down == {"message": "Asterisk is not connected"}


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"data": b"{not json", "headers": {"Content-Type": "application/json"}}, "body"),
        ({"json": ["anna", "79101234567"]}, "body"),
        ({"json": "anna"}, "body"),
        ({"json": {"user": ["anna"], "phone": "79101234567"}}, "user"),
        ({"json": {"user": True, "phone": "79101234567"}}, "user"),
        ({"json": {"user": {"login": "anna"}, "phone": "1"}}, "user"),
        ({"json": {"user": "anna"}}, "phone"),
        ({"json": {"phone": "79101234567"}}, "user"),
        ({"json": {"user": "anna", "phone": "call me"}}, "phone"),
        ({"json": {"user": "anna", "phone": 7.5e20}}, "phone"),
        ({"json": {"user": "anna\x00", "phone": "79101234567"}}, "user"),
        ({"json": {"user": "a" * 5000, "phone": "79101234567"}}, "user"),
        ({"json": {"user": "anna", "phone": "79101234567", "clid": "x"}}, "clid"),
        ({"data": b"\xff\xfe\x00", "headers": {"Content-Type": "text/plain"}}, "body"),
        ({}, "user"),
    ],
)
async def test_makecall_refuses_malformed_bodies(api: Api, kw, field) -> None:
    key = await api.key("crm")
    dialer = api.services.dialer = FakeDialer()
    answer = await post(api, "makecall", key, 400, **kw)
    assert isinstance(answer, dict) and field in answer["message"]
    assert dialer.calls == []


async def test_huge_bodies_are_413(api: Api) -> None:
    key = await api.key("crm")
    api.services.dialer = FakeDialer()
    big = {"user": "anna", "phone": "79101234567", "pad": "x" * 100_000}
    for path in ("makecall", "webhook"):
        answer = await post(api, path, key, 413, json=big)
        assert answer == {"message": "Request body too large"}
        huge = io.BytesIO(b"x" * (3 << 20))  # beyond what the server reads at all
        async with api.http.post(
            f"/crmapi/v1/{path}", data=huge, headers={"X-API-KEY": key}
        ) as resp:
            assert resp.status == 413


async def test_makecall_is_post_only(api: Api) -> None:
    key = await api.key("crm")
    async with api.http.get("/crmapi/v1/makecall", headers={"X-API-KEY": key}) as resp:
        assert resp.status == 405
        assert await resp.json() == {"message": "Method Not Allowed"}


# ---------------------------------------------------------------- webhook


async def webhooks(api: Api, key: str) -> list[dict[str, Any]]:
    async with api.http.get("/crmapi/v1/webhook", headers={"X-API-KEY": key}) as resp:
        assert resp.status == 200
        body = await resp.json()
    assert isinstance(body, list)
    return body


async def test_subscriptions_list_add_delete(api: Api) -> None:
    key = await api.key("crm")
    assert await webhooks(api, key) == []
    url = "https://crm2.example.com/pbx"
    added = await post(api, "webhook", key, 200, json={"url": url})
    assert isinstance(added, dict) and added["type"] == "crm" and added["url"] == url
    assert await webhooks(api, key) == [added]
    again = await post(api, "webhook", key, 200, data={"url": url, "type": "crm"})
    assert again == added, "the same url and type is the same subscription"
    only = await post(api, "webhook", key, 200, json={"url": url, "type": "history"})
    assert isinstance(only, dict) and only["id"] != added["id"]
    assert await webhooks(api, key) == [added, only]
    async with api.pool.acquire() as conn:
        stored = {
            t["url"]: t for t in await list_targets(conn, "lab") if t["commands"] == ["history"]
        }
        ours = [t for t in await list_targets(conn, "lab") if t["name"].endswith(added["id"])]
    assert len(ours) == 1 and stored[url]
    target = ours[0]
    assert (target["profile"], target["direction"]) == ("vpbx", "both")
    assert sorted(target["commands"]) == ["event", "history", "rating"]
    async with api.http.delete(
        f"/crmapi/v1/webhook/{added['id']}", headers={"X-API-KEY": key}
    ) as r:
        assert r.status == 204
    assert await webhooks(api, key) == [only]
    async with api.http.delete(
        f"/crmapi/v1/webhook/{added['id']}", headers={"X-API-KEY": key}
    ) as r:
        assert r.status == 404 and await r.json() == {"message": "Subscription not found"}


async def test_a_subscription_is_added_with_put_as_well(api: Api) -> None:
    """Section 17's badge for adding a subscription is the one it uses for PUT."""
    key = await api.key("crm")
    url = "https://crm2.example.com/pbx"
    async with api.http.put(
        "/crmapi/v1/webhook", json={"url": url}, headers={"X-API-KEY": key}
    ) as r:
        assert r.status == 200, await r.text()
        added = await r.json()
    assert (added["type"], added["url"]) == ("crm", url)
    assert await webhooks(api, key) == [added]
    assert await post(api, "webhook", key, 200, json={"url": url}) == added


async def test_a_subscription_gets_the_primary_crms_webhooks(api: Api) -> None:
    key = await api.key("crm")
    added = await post(api, "webhook", key, 200, json={"url": "https://crm2.example.com/hook"})
    assert isinstance(added, dict)
    await store_scenarios(api.pool, OutboxRows("lab"), names=["in_answered", "out_busy"])
    rows = await api.pool.fetch(
        "SELECT o.cmd, o.payload FROM webhook_outbox o JOIN webhook_targets t "
        "ON t.id = o.target_id WHERE t.name LIKE $1 ORDER BY o.id",
        f"%{added['id']}",
    )
    cmds = [r["cmd"] for r in rows]
    assert cmds.count("history") == 2, "both directions"
    assert {"event", "history"} <= set(cmds)


async def test_the_operators_targets_are_not_this_apis(api: Api) -> None:
    key = await api.key("crm")
    async with api.pool.acquire() as conn:
        await add_target(conn, "lab", Subscription("billing", "https://billing.example.com/h"))
    assert await webhooks(api, key) == []
    async with api.http.delete("/crmapi/v1/webhook/billing", headers={"X-API-KEY": key}) as r:
        assert r.status == 404
    async with api.pool.acquire() as conn:
        assert [t["name"] for t in await list_targets(conn, "lab")] == ["billing"]


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"json": {"url": "ftp://crm.example.com/x"}}, "url"),
        ({"json": {"url": "https://crm.example.com/x", "type": "sipregs_error"}}, "type"),
        ({"json": {"type": "crm"}}, "url"),
        ({"json": {"url": ["https://crm.example.com/x"]}}, "url"),
        ({"json": {"url": "https://crm.example.com/x", "type": 5}}, "type"),
        ({"json": [{"url": "https://crm.example.com/x"}]}, "body"),
        ({"data": b'{"url": ', "headers": {"Content-Type": "application/json"}}, "body"),
        ({"json": {"url": "https://crm.example.com/" + "x" * 3000}}, "url"),
    ],
)
async def test_malformed_subscriptions_are_400(api: Api, kw, field) -> None:
    key = await api.key("crm")
    answer = await post(api, "webhook", key, 400, **kw)
    assert isinstance(answer, dict) and field in answer["message"]
    assert await webhooks(api, key) == []
