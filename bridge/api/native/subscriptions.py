"""Webhook subscriptions (the targets of `crm-bridge targets`): list, read, create,
replace, remove, enable again after a 410.

A token or signing secret goes in and never comes out: bodies say only whether there is
one (`has_token`, `signed`), and a password in the URL is masked.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg
from aiohttp import web

from ...store import targets
from ...store.queries import QUERIES
from ..errors import ApiError, bad_request, not_found
from ..params import is_text
from .body import Fields, json_object
from .calls import params
from .shapes import iso, path_text

PRIMARY = "primary"


def mask_url(url: str) -> str:
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        host = parts.netloc.rpartition("@")[2]
        return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))
    except ValueError:  # not parseable: stored before it was checked; show the scheme only
        return url.split(":", 1)[0] + "://***"


def subscription_json(r: asyncpg.Record) -> dict[str, Any]:
    return {
        "id": r["id"],
        "name": r["name"],
        "url": mask_url(r["url"]),
        "profile": r["profile"],
        "commands": list(r["commands"]),
        "direction": r["direction"],
        "enabled": r["enabled"],
        "disabled_reason": r["disabled_reason"],
        "has_token": r["has_token"],
        "signed": r["signed"],
        "primary": r["name"] == PRIMARY,
        "created_at": iso(r["created_at"]),
    }


async def _one(conn: asyncpg.Connection, pbx_id: str, name: str) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(QUERIES["native_targets"], pbx_id, name)
    return row


def _subscription(data: dict[str, Any], name: str | None) -> targets.Subscription:
    f = Fields(data)
    if name is None:
        name = f.string("name", required=True, limit=100)
    sub = targets.Subscription(
        name=name,
        url=f.string("url", required=True),
        token=f.string("token"),
        profile=f.string("profile", default="vpbx", limit=40),
        commands=f.strings("commands", targets.COMMANDS),
        direction=f.string("direction", default="both", limit=10),
        signing_secret=f.optional_string("signing_secret", limit=1000),
    )
    f.done()
    problems = sub.problems()
    if problems:
        raise bad_request("; ".join(problems))
    return sub


async def list_subscriptions(request: web.Request) -> web.Response:
    s, _ = params(request, ())
    rows = await s.pool.fetch(QUERIES["native_targets"], s.pbx_id, None)
    return web.json_response({"items": [subscription_json(r) for r in rows]})


async def get_subscription(request: web.Request) -> web.Response:
    s, _ = params(request, ())
    async with s.pool.acquire() as conn:
        found = await _one(conn, s.pbx_id, path_text(request, "name", "subscription"))
    if found is None:
        raise not_found("No such subscription")
    return web.json_response(subscription_json(found))


async def create_subscription(request: web.Request) -> web.Response:
    s, _ = params(request, ())
    sub = _subscription(await json_object(request), None)
    async with s.pool.acquire() as conn, conn.transaction():
        if await _one(conn, s.pbx_id, sub.name) is not None:
            raise ApiError(409, f"name: a subscription {sub.name!r} exists; PUT replaces it")
        await targets.add_target(conn, s.pbx_id, sub)
        created = await _one(conn, s.pbx_id, sub.name)
    assert created is not None
    return web.json_response(
        subscription_json(created),
        status=201,
        headers={"Location": f"{request.path}/{quote(sub.name, safe='')}"},
    )


async def replace_subscription(request: web.Request) -> web.Response:
    s, _ = params(request, ())
    name = request.match_info["name"]  # a new name is checked as the body's would be
    if not is_text(name):
        raise bad_request("name: no control characters")
    sub = _subscription(await json_object(request), name)
    async with s.pool.acquire() as conn, conn.transaction():
        existed = await _one(conn, s.pbx_id, name) is not None
        await targets.add_target(conn, s.pbx_id, sub)
        stored = await _one(conn, s.pbx_id, name)
    assert stored is not None
    return web.json_response(subscription_json(stored), status=200 if existed else 201)


async def delete_subscription(request: web.Request) -> web.Response:
    s, _ = params(request, ())
    name = path_text(request, "name", "subscription")
    if name == PRIMARY:
        raise bad_request("name: 'primary' is the config's [crm]; change it in the config")
    async with s.pool.acquire() as conn:
        if not await targets.remove_target(conn, s.pbx_id, name):
            raise not_found("No such subscription")
    return web.Response(status=204)


async def enable_subscription(request: web.Request) -> web.Response:
    s, _ = params(request, ())
    name = path_text(request, "name", "subscription")
    async with s.pool.acquire() as conn:
        if not await targets.enable_target(conn, s.pbx_id, name):
            raise not_found("No such subscription")
        found = await _one(conn, s.pbx_id, name)
    assert found is not None
    return web.json_response(subscription_json(found))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/subscriptions", list_subscriptions, name="subscriptions")
    app.router.add_post("/subscriptions", create_subscription, name="subscription_create")
    app.router.add_get("/subscriptions/{name}", get_subscription, name="subscription")
    app.router.add_put("/subscriptions/{name}", replace_subscription, name="subscription_put")
    app.router.add_delete("/subscriptions/{name}", delete_subscription, name="subscription_delete")
    app.router.add_post(
        "/subscriptions/{name}/enable", enable_subscription, name="subscription_enable"
    )
