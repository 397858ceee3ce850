"""Employees (section 6), departments (8) and company numbers (9), read from the bridge's
directory.

- `users`, `users/{login}` (login or extension), `users/{login}/groups`;
- `groups`, `groups/{id}` (id, else extension or queue name, else name), `groups/{id}/users`;
- `telnums`, `telnums/{telnum}` (as given, else normalised to E.164 digits).

What Asterisk does not have is given its neutral value (no roles: `user`; no mobile
redirect; no greeting, schedule or call-tracking options), never invented.
Group `call_order` from the ring strategy: ringall -> ALL, hunt/linear -> BYORDER,
memoryhunt -> WATERFALL, the others (round robin, least recent, fewest calls, random,
...) -> EVENLY; `call_duration` is 0 for ALL (as section 8.1 says), else the ring time
(each member's turn); `timeout.time` is how long the group rings in all (ALL: the ring
time; BYORDER, WATERFALL: a turn per member) and `timeout.target` where an unanswered call
goes (user, group, telnum, msg_busy, voicemail with the employee whose mailbox it is;
none when the call ends there).
An employee's `record` is false when their conversations are never recorded (the
recording exception); a number's `disabled` whether it refuses its calls. `with=status`
adds the employee's registration `status` (`presence`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from aiohttp import web

from ...store.directory import Group, Number, User
from ..errors import not_found
from ..params import Params
from ..services import services_of
from . import names as names_mod
from . import presence
from .names import Names
from .paging import listing

CALL_ORDERS = {
    "ringall": "ALL",
    "ringall-prim": "ALL",
    "hunt": "BYORDER",
    "hunt-prim": "BYORDER",
    "linear": "BYORDER",
    "memoryhunt": "WATERFALL",
    "memoryhunt-prim": "WATERFALL",
}


def user_json(u: User, names: Names) -> dict[str, Any]:
    return {
        "login": u.login,
        "name": u.name,
        "position": u.position,
        "email": u.email,
        "ext": u.ext,
        "telnum": u.telnum,
        "role": "user",
        "mobile": u.mobile,
        "mobile_redirect": {"enabled": False},
        "record": u.login not in names.norecord,
    }


def user_fields(u: User) -> Iterable[str]:
    return (u.login, u.name, u.ext, u.telnum, u.mobile, u.email, u.position)


def member_json(login: str, names: Names) -> dict[str, Any]:
    u = names.user(login)
    return {
        "login": u.login if u is not None else login,
        "name": u.name if u is not None else "",
        "calls_enable": True,
        "group_head": False,
        "is_absence_active": False,
        "is_forwarding_disabled": False,
    }


def group_json(g: Group, names: Names) -> dict[str, Any]:
    order = CALL_ORDERS.get(g.strategy, "EVENLY")
    return {
        "id": str(g.id),
        "name": g.name,
        "ext": g.ext,
        "kind": g.kind,
        "call_order": order,
        "call_duration": 0 if order == "ALL" else g.ring_time,
        "users": [member_json(m, names) for m in g.members],
        "timeout": timeout_json(g, order, names),
        "advanced": "off",
        "queue_position": False,
    }


def timeout_json(g: Group, order: str, names: Names) -> dict[str, Any]:
    turns = 1 if order == "ALL" else max(1, len(g.members))
    found: dict[str, Any] = {"time": g.ring_time * turns}
    kind, _, target = g.noanswer.partition(":")
    if kind == "busy":
        found["target"] = "msg_busy"
    elif kind in ("user", "voicemail"):
        u = names.user(target)
        found.update(target=kind, user=u.login if u is not None else target)
    elif kind == "group":
        found.update(target="group", group=target)
    elif kind == "number":
        found.update(target="telnum", telnum=target)
    elif kind == "ivr":
        found.update(target="ivr", ivr=target)
    return found


def group_brief(g: Group) -> dict[str, Any]:
    return {"id": str(g.id), "name": g.name, "ext": g.ext}


def group_fields(g: Group) -> Iterable[str]:
    return (str(g.id), g.name, g.ext)


def telnum_json(n: Number, names: Names, main_number: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "telnum": n.telnum,
        "name": n.name,
        "type": n.route_type,
        "greeting": False,
        "is_main_phone": n.telnum == main_number,
        "location": "",
        "disabled": n.disabled,
        "crm": "",
        "calltracking": "",
        "route_group_id": "",
        "route_group_name": "",
    }
    if n.route_type == "user":
        u = names.user(n.route_to)
        body["user"] = u.login if u is not None else n.route_to
        body["user_name"] = u.name if u is not None else ""
    elif n.route_type == "group":
        g = names.group(n.route_to)
        body["group"] = str(g.id) if g is not None else n.route_to
        body["group_name"] = g.name if g is not None else ""
    elif n.route_type == "ivr":
        body["ivr"] = {"name": n.route_to, "items": [ivr_item(i, names) for i in n.ivr]}
    return body


def ivr_item(item: dict[str, Any], names: Names) -> dict[str, Any]:
    """One button of a menu: `{"button": "1", "group": id}` or `{"button": "2", "user": login}`."""
    button = str(item.get("button", ""))
    if "group" in item:
        g = names.group(str(item["group"]))
        return {
            "button": button,
            "type": "group",
            "group": str(g.id) if g is not None else str(item["group"]),
            "group_name": g.name if g is not None else "",
        }
    if "user" in item:
        u = names.user(str(item["user"]))
        return {
            "button": button,
            "type": "user",
            "user": u.login if u is not None else str(item["user"]),
            "user_name": u.name if u is not None else "",
        }
    return {"button": button, "type": str(item.get("type", ""))}


def telnum_fields(item: dict[str, Any]) -> Iterable[str]:
    return (
        item["telnum"],
        item["name"],
        item.get("user", ""),
        item.get("user_name", ""),
        item.get("group_name", ""),
    )


# ---------------------------------------------------------------- handlers


async def _context(request: web.Request) -> tuple[Params, Names]:
    s = services_of(request)
    return Params(request, s.settings.pbx.region), await names_mod.load(s.pool, s.pbx_id)


def _user(names: Names, request: web.Request) -> User:
    u = names.user(request.match_info["login"])
    if u is None:
        raise not_found("User not found")
    return u


def _group(names: Names, request: web.Request) -> Group:
    g = names.group(request.match_info["id"])
    if g is None:
        raise not_found("Group not found")
    return g


async def _user_shape(
    request: web.Request, p: Params, names: Names
) -> Callable[[User], dict[str, Any]]:
    """`user_json`, with `status` when `with=status` asks for it (Asterisk asked once)."""
    if not presence.wanted(p):
        return lambda u: user_json(u, names)
    phones = await presence.online(services_of(request))
    return lambda u: user_json(u, names) | {"status": presence.status(u, phones)}


async def list_users(request: web.Request) -> web.Response:
    p, names = await _context(request)
    shape = await _user_shape(request, p, names)
    return web.json_response(listing(p, names.users, user_fields, shape))


async def get_user(request: web.Request) -> web.Response:
    p, names = await _context(request)
    user = _user(names, request)
    shape = await _user_shape(request, p, names)
    return web.json_response(shape(user))


async def groups_of_user(request: web.Request) -> web.Response:
    p, names = await _context(request)
    found = names.groups_of(_user(names, request))
    return web.json_response(listing(p, found, group_fields, group_brief))


async def list_groups(request: web.Request) -> web.Response:
    p, names = await _context(request)
    return web.json_response(listing(p, names.groups, group_fields, lambda g: group_json(g, names)))


async def get_group(request: web.Request) -> web.Response:
    _, names = await _context(request)
    return web.json_response(group_json(_group(names, request), names))


async def users_of_group(request: web.Request) -> web.Response:
    p, names = await _context(request)
    members = [member_json(m, names) for m in _group(names, request).members]
    return web.json_response(listing(p, members, lambda m: (m["login"], m["name"]), lambda m: m))


async def list_telnums(request: web.Request) -> web.Response:
    p, names = await _context(request)
    main = services_of(request).settings.pbx.main_number
    items = [telnum_json(n, names, main) for n in names.numbers]
    return web.json_response(listing(p, items, telnum_fields, lambda t: t))


async def get_telnum(request: web.Request) -> web.Response:
    p, names = await _context(request)
    given = request.match_info["telnum"]
    n = names.number(given) or names.number(p.numbers.normalize(given))
    if n is None:
        raise not_found("Number not found")
    main = services_of(request).settings.pbx.main_number
    return web.json_response(telnum_json(n, names, main))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/users", list_users)
    app.router.add_get("/users/{login}", get_user)
    app.router.add_get("/users/{login}/groups", groups_of_user)
    app.router.add_get("/groups", list_groups)
    app.router.add_get("/groups/{id}", get_group)
    app.router.add_get("/groups/{id}/users", users_of_group)
    app.router.add_get("/telnums", list_telnums)
    app.router.add_get("/telnums/{telnum}", get_telnum)
