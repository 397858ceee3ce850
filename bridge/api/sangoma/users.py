"""Users: `users/extension/{ext}` and `users/id/{id}`, in FreePBX userman's shape.

From the bridge's directory; `id` is the employee's userman id (a number kept with the
directory entry), `password` is always "Hidden", fields the directory does not know are
null as userman leaves them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from ...store.queries import QUERIES
from ..errors import not_found
from ..services import services_of


def userman(row: Mapping[str, Any]) -> dict[str, Any]:
    name: str = row["name"] or ""
    first, _, last = name.partition(" ")
    return {
        "id": str(row["userman_id"]),
        "auth": "freepbx",
        "authid": None,
        "username": row["login"],
        "description": None,
        "password": "Hidden",
        "default_extension": row["ext"] or "none",
        "primary_group": None,
        "permissions": None,
        "fname": first or None,
        "lname": last or None,
        "displayname": name or None,
        "title": row["position"] or None,
        "company": None,
        "department": None,
        "email": row["email"] or None,
        "cell": row["mobile"] or None,
        "work": row["telnum"] or None,
        "home": None,
        "fax": None,
    }


async def by_extension(request: web.Request) -> web.Response:
    s = services_of(request)
    ext = request.match_info["ext"]
    row = None
    if 0 < len(ext) <= 64 and ext.isprintable():
        row = await s.pool.fetchrow(QUERIES["sangoma_user_by_ext"], s.pbx_id, ext)
    if row is None:
        raise not_found("User not found")
    return web.json_response(userman(row))


async def by_id(request: web.Request) -> web.Response:
    s = services_of(request)
    raw = request.match_info["id"]
    row = None
    if raw.isascii() and raw.isdigit() and len(raw) <= 18:
        row = await s.pool.fetchrow(QUERIES["sangoma_user_by_id"], s.pbx_id, int(raw))
    if row is None:
        raise not_found("User not found")
    return web.json_response(userman(row))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/users/extension/{ext}", by_extension)
    app.router.add_get("/users/id/{id}", by_id)
