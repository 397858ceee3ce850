"""Webhook subscriptions: `webhooks` GET (all, `inbound`, `outbound`, `both`, or one id),
POST, PATCH `{id}`, DELETE `{id}`; bodies `{"url": ..., "direction": ...}` as JSON or a form.

A subscription is a webhook target of profile `sangoma` (its id is the target's): the
durable outbox sends it the call object (`crm/sangoma_call.py`) at call start, end or
both, as `[api] sangoma_webhooks` says, with the outbox's retries, per-call order and
signatures. Directions are the module's `inbound` / `outbound` / `both`.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

import asyncpg
from aiohttp import web

from ...config import http_url_problem
from ...crm.sangoma_call import END, START
from ...store import targets
from ...store.queries import QUERIES
from .. import json_input
from ..errors import bad_request, not_found
from ..services import Services, services_of

TO_STORED = {"inbound": "in", "outbound": "out", "both": "both"}
FROM_STORED = {v: k for k, v in TO_STORED.items()}
MAX_URL = 512  # the module's column is varchar(512)


def commands_for(setting: str) -> tuple[str, ...]:
    """`[api] sangoma_webhooks` (start / end / both) as the subscriptions' commands."""
    return {"start": (START,), "end": (END,)}.get(setting, (START, END))


async def follow_setting(pool: asyncpg.Pool | asyncpg.Connection, s: Services) -> None:
    """Every Sangoma subscription of this PBX receives what the config says."""
    wanted = list(commands_for(s.settings.api.sangoma_webhooks))
    await pool.execute(QUERIES["sangoma_webhook_commands"], s.pbx_id, wanted)


def webhook_json(row: Mapping[str, Any]) -> dict[str, str]:
    return {
        "id": str(row["id"]),
        "url": row["url"],
        "direction": FROM_STORED.get(row["direction"], row["direction"]),
    }


def _id(raw: str) -> int:
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        raise not_found("Webhook not found")
    return int(raw)


async def list_all(request: web.Request) -> web.Response:
    s = services_of(request)
    rows = await s.pool.fetch(QUERIES["sangoma_webhooks"], s.pbx_id, None)
    return web.json_response([webhook_json(r) for r in rows])


async def get_some(request: web.Request) -> web.Response:
    s = services_of(request)
    which = request.match_info["id"]
    if which == "all":
        return await list_all(request)
    if which in TO_STORED:
        rows = await s.pool.fetch(QUERIES["sangoma_webhooks"], s.pbx_id, TO_STORED[which])
        return web.json_response([webhook_json(r) for r in rows])
    row = await s.pool.fetchrow(QUERIES["sangoma_webhook"], s.pbx_id, _id(which))
    if row is None:
        raise not_found("Webhook not found")
    return web.json_response(webhook_json(row))


async def _body(request: web.Request) -> dict[str, Any]:
    if request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.post()
        return {k: v for k, v in form.items() if isinstance(v, str)}
    raw = await request.read()
    try:
        data = json_input.loads(raw) if raw.strip() else {}
    except ValueError:
        raise bad_request("The body is not valid JSON") from None
    if not isinstance(data, dict):
        raise bad_request("The body must be a JSON object with url and direction")
    return data


def _url(data: Mapping[str, Any]) -> str:
    url = data.get("url")
    if url is None or url == "":
        raise bad_request("url is required")
    if not isinstance(url, str):
        raise bad_request("url must be a string")
    if len(url) > MAX_URL:
        raise bad_request(f"url must be at most {MAX_URL} characters")
    if http_url_problem(url) is not None:
        raise bad_request("url must be an http(s) URL")
    return url.strip()


def _direction(data: Mapping[str, Any], default: str | None) -> str:
    direction = data.get("direction", default)
    if direction is None or direction == "":
        if default is None:
            raise bad_request("direction must be inbound, outbound or both")
        direction = default
    if not isinstance(direction, str) or direction not in TO_STORED:
        raise bad_request("direction must be inbound, outbound or both")
    return TO_STORED[direction]


async def create(request: web.Request) -> web.Response:
    s = services_of(request)
    data = await _body(request)
    sub = targets.Subscription(
        f"sangoma-{secrets.token_hex(6)}",
        _url(data),
        profile="sangoma",
        commands=commands_for(s.settings.api.sangoma_webhooks),
        direction=_direction(data, "both"),
    )
    async with s.pool.acquire() as conn:
        target_id = await targets.add_target(conn, s.pbx_id, sub)
        row = await conn.fetchrow(QUERIES["sangoma_webhook"], s.pbx_id, target_id)
    return web.json_response(webhook_json(row))


async def update(request: web.Request) -> web.Response:
    s = services_of(request)
    webhook_id = _id(request.match_info["id"])
    current = await s.pool.fetchrow(QUERIES["sangoma_webhook"], s.pbx_id, webhook_id)
    if current is None:
        raise not_found("Webhook not found")
    data = await _body(request)
    url = _url(data)
    direction = _direction(data, FROM_STORED.get(current["direction"], "both"))
    row = await s.pool.fetchrow(
        QUERIES["sangoma_webhook_update"], s.pbx_id, webhook_id, url, direction
    )
    if row is None:
        raise not_found("Webhook not found")
    return web.json_response(webhook_json(row))


async def delete(request: web.Request) -> web.Response:
    s = services_of(request)
    webhook_id = _id(request.match_info["id"])
    row = await s.pool.fetchrow(QUERIES["sangoma_webhook_delete"], s.pbx_id, webhook_id)
    if row is None:
        raise not_found("Webhook not found")
    return web.json_response({"status": True, "message": f"Webhook {webhook_id} deleted"})


def add_routes(app: web.Application) -> None:
    for path in ("/webhooks", "/webhooks/"):
        app.router.add_get(path, list_all)
        app.router.add_post(path, create)
    app.router.add_get("/webhooks/{id}", get_some)
    app.router.add_patch("/webhooks/{id}", update)
    app.router.add_delete("/webhooks/{id}", delete)
