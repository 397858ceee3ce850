"""Dead letters (webhooks their CRM refused for good): the list, and re-drive."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ...store import outbox
from ..errors import bad_request
from .body import Fields, json_object
from .calls import params
from .shapes import iso


def dead_letter_json(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": r["id"],
        "target": r["target"],
        "callid": r["callid"],
        "cmd": r["cmd"],
        "attempts": r["attempts"],
        "last_status": r["last_status"],
        "last_error": r["last_error"],
        "created_at": iso(r["created_at"]),
        "webhook_id": r["webhook_id"],
    }


async def list_dead_letters(request: web.Request) -> web.Response:
    s, p = params(request, ("limit",))
    limit = p.integer("limit", 100, minimum=1, maximum=1000)
    async with s.pool.acquire() as conn:
        rows = await outbox.list_rows(conn, s.pbx_id, "dead", limit)
        total = (await outbox.counts(conn, s.pbx_id)).get("dead", 0)
    return web.json_response({"items": [dead_letter_json(r) for r in rows], "total": total})


async def redrive(request: web.Request) -> web.Response:
    """`{"ids": [...]}` re-drives those dead letters, `{"all": true}` every one."""
    s, _ = params(request, ())
    data = await json_object(request)
    f = Fields(data)
    ids = f.ids("ids")
    every = f.boolean("all")
    f.done()
    if len(data) != 1 or (ids is None and not every):
        raise bad_request('ids: give the dead letters\' "ids", or "all": true (one of them)')
    async with s.pool.acquire() as conn:
        done = await outbox.redrive(conn, s.pbx_id, ids)
    return web.json_response({"redriven": done})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/dead-letters", list_dead_letters, name="dead_letters")
    app.router.add_post("/dead-letters/redrive", redrive, name="dead_letters_redrive")
