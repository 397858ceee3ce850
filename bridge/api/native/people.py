"""The directory, read: employees, ring groups and queues (with their members), company
numbers."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ...store import directory
from ..errors import not_found
from .calls import params
from .shapes import path_text


def user_json(u: directory.User) -> dict[str, Any]:
    return u.as_dict()


def group_json(g: directory.Group, users: dict[str, directory.User]) -> dict[str, Any]:
    body = g.as_dict()
    body["members"] = [
        {"login": login, "name": u.name if u else "", "ext": u.ext if u else ""}
        for login in g.members
        for u in [users.get(login)]
    ]
    return body


def number_json(n: directory.Number) -> dict[str, Any]:
    return n.as_dict()


async def list_users(request: web.Request) -> web.Response:
    s, _ = params(request, ())
    items = [user_json(u) for u in await directory.users(s.pool, s.pbx_id)]
    return web.json_response({"items": items, "total": len(items)})


async def get_user(request: web.Request) -> web.Response:
    s, _ = params(request, ())
    found = await directory.user(s.pool, s.pbx_id, path_text(request, "login", "user"))
    if found is None:
        raise not_found("No such user")
    return web.json_response(user_json(found))


async def list_groups(request: web.Request) -> web.Response:
    s, p = params(request, ("kind",))
    kind = p.choice("kind", ("ringgroup", "queue"), "")
    snap = await directory.snapshot(s.pool, s.pbx_id)
    users = snap.user_by_login()
    items = [group_json(g, users) for g in snap.groups if not kind or g.kind == kind]
    return web.json_response({"items": items, "total": len(items)})


async def get_group(request: web.Request) -> web.Response:
    s, _ = params(request, ())
    raw = request.match_info["id"]
    group_id = int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 19 else None
    found = await directory.group(s.pool, s.pbx_id, group_id) if group_id is not None else None
    if found is None:
        raise not_found("No such group")
    users = {u.login: u for u in await directory.users(s.pool, s.pbx_id)}
    return web.json_response(group_json(found, users))


async def list_numbers(request: web.Request) -> web.Response:
    s, _ = params(request, ())
    items = [number_json(n) for n in await directory.numbers(s.pool, s.pbx_id)]
    return web.json_response({"items": items, "total": len(items)})


async def get_number(request: web.Request) -> web.Response:
    s, p = params(request, ())
    digits = p.numbers.normalize(path_text(request, "telnum", "number"))  # +7 (495) ... too
    found = await directory.number(s.pool, s.pbx_id, digits) if digits.isdigit() else None
    if found is None:
        raise not_found("No such number")
    return web.json_response(number_json(found))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/users", list_users, name="users")
    app.router.add_get("/users/{login}", get_user, name="user")
    app.router.add_get("/groups", list_groups, name="groups")
    app.router.add_get("/groups/{id}", get_group, name="group")
    app.router.add_get("/numbers", list_numbers, name="numbers")
    app.router.add_get("/numbers/{telnum}", get_number, name="number")
