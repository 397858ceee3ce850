"""Webhook subscriptions (section 17): `GET webhook`, `POST webhook` (or `PUT`: the
documentation's badge for adding one is the one it uses for PUT), `DELETE webhook/{id}`.

A subscription receives the webhooks the primary CRM receives (`history`, `event`,
`rating` in the `vpbx` profile, both directions); `type` may narrow it to one command.
Types: `crm` (the default: all of them), `history`, `event`, `rating`. The documentation's
`sipregs_error` (SIP registration failures) is not something this bridge reports: asking
for it is a 400 rather than a subscription that would never fire. An optional `crm_token`
is sent as the webhooks' token (the primary CRM's token is never handed to another URL).

Only subscriptions made through this API are listed and deleted here (the operator's own
targets are the CLI's business); the same url and type twice is the same subscription.
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
from aiohttp import web

from ...store import targets
from ...store.targets import COMMANDS, Subscription
from ..errors import bad_request, not_found
from ..services import services_of
from . import body

PREFIX = "vpbx:"  # target names of the subscriptions made here: "vpbx:<id>"
TYPES = {"crm": COMMANDS, **{c: (c,) for c in COMMANDS}}


def _type_of(commands: list[str]) -> str:
    return "crm" if set(commands) == set(COMMANDS) else ",".join(commands)


def _ours(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"id": r["name"][len(PREFIX) :], "type": _type_of(r["commands"]), "url": r["url"]}
        for r in rows
        if r["name"].startswith(PREFIX)
    ]


async def _list(conn: asyncpg.Connection, pbx_id: str) -> list[dict[str, Any]]:
    return _ours(await targets.list_targets(conn, pbx_id))


async def list_webhooks(request: web.Request) -> web.Response:
    s = services_of(request)
    async with s.pool.acquire() as conn:
        return web.json_response(await _list(conn, s.pbx_id))


async def add_webhook(request: web.Request) -> web.Response:
    s = services_of(request)
    fields = await body.read_fields(request)
    url = body.required_text(fields, "url", limit=2000)
    kind = body.text(fields, "type") or "crm"
    token = body.text(fields, "crm_token", limit=500) or ""
    if not url.lower().startswith(("http://", "https://")):
        raise bad_request(f"url: {url[:100]!r} is not an http(s) URL")
    if kind not in TYPES:
        raise bad_request(f"type: {kind[:40]!r} is not one of {', '.join(TYPES)}")
    async with s.pool.acquire() as conn:
        for existing in await _list(conn, s.pbx_id):
            if existing["url"] == url and existing["type"] == kind:
                return web.json_response(existing)
        sub = Subscription(
            name=PREFIX + str(uuid.uuid4()),
            url=url,
            token=token,
            profile="vpbx",
            commands=TYPES[kind],
            direction="both",
        )
        try:
            await targets.add_target(conn, s.pbx_id, sub)
        except ValueError as exc:
            raise bad_request(str(exc)) from None
    return web.json_response({"id": sub.name[len(PREFIX) :], "type": kind, "url": url})


async def delete_webhook(request: web.Request) -> web.Response:
    s = services_of(request)
    name = PREFIX + request.match_info["id"]
    async with s.pool.acquire() as conn:
        if not await targets.remove_target(conn, s.pbx_id, name):
            raise not_found("Subscription not found")
    return web.Response(status=204)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/webhook", list_webhooks)
    app.router.add_post("/webhook", add_webhook)
    app.router.add_put("/webhook", add_webhook)
    app.router.add_delete("/webhook/{id}", delete_webhook)
