"""The four requests of cloud virtual PBXs' "API integration": user calls, queue calls,
ring-group calls (a date range, a sort, one or more users / queues / groups, offset and
limit) and "call a number". Thin aliases over the calls query and click-to-call, in the
shape those clients read: call id, type, caller ID and name, destination, user name and
extension, date, duration, status.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ...store import history
from ..errors import bad_request
from ..params import Params
from ..services import Services
from .body import Fields, json_object
from .calls import params
from .dial import dial_number, place_call
from .query import MAX_LIMIT, MAX_OFFSET, ORDERS, group_names, logins_of, user_names
from .shapes import caller_and_destination, iso

TYPES = {"in": "inbound", "out": "outbound", "internal": "internal"}
SORTS = {"date": "start", "duration": "duration"}
COMMON = ("from", "to", "sort", "order", "offset", "limit")


def cloud_call_json(row: Any, names: dict[str, str]) -> dict[str, Any]:
    caller, destination = caller_and_destination(row)
    user_name = names.get(row["user_login"], "")
    return {
        "call_id": row["callid"],
        "type": TYPES.get(row["direction"], row["direction"]),
        "caller_id": caller,
        "caller_name": row["phone_name"] if row["direction"] == "in" else user_name,
        "destination": destination,
        "user_name": user_name,
        "extension": row["ext"],
        "group": row["group_name"],
        "date": iso(row["started_at"]),
        "duration": row["duration"],
        "status": row["status"],
    }


def _query(
    p: Params, *, participants: tuple[str, ...] = (), groups: tuple[str, ...] = ()
) -> history.CallQuery:
    sort = SORTS[p.choice("sort", tuple(SORTS), "date")]
    try:
        return history.CallQuery(
            since=p.time("from"),
            until=p.time("to"),
            sort=sort,
            descending=p.choice("order", ORDERS, "desc") == "desc",
            offset=p.integer("offset", 0, minimum=0, maximum=MAX_OFFSET),
            limit=p.integer("limit", 100, minimum=1, maximum=MAX_LIMIT),
            participants=participants,
            groups=groups,
        )
    except ValueError as exc:
        raise bad_request(str(exc)) from None


def _required(p: Params, name: str) -> tuple[str, ...]:
    values = p.strings(name)
    if not values:
        raise bad_request(f"{name}: give one or more")
    return values


async def _page(s: Services, q: history.CallQuery) -> web.Response:
    rows = await history.search_calls(s.pool, s.pbx_id, q)
    total = await history.count_calls(s.pool, s.pbx_id, q)
    names = await user_names(s.pool, s.pbx_id, (r["user_login"] for r in rows))
    return web.json_response(
        {
            "items": [cloud_call_json(r, names) for r in rows],
            "total": total,
            "offset": q.offset,
            "limit": q.limit,
        }
    )


async def user_calls(request: web.Request) -> web.Response:
    """Calls these employees (login or extension) took part in: rung, talked or placed."""
    s, p = params(request, COMMON, ("users",))
    logins = await logins_of(s.pool, s.pbx_id, _required(p, "users"))
    return await _page(s, _query(p, participants=logins))


async def queue_calls(request: web.Request) -> web.Response:
    s, p = params(request, COMMON, ("queues",))
    names = await group_names(s.pool, s.pbx_id, _required(p, "queues"), "queue")
    return await _page(s, _query(p, groups=names))


async def ring_group_calls(request: web.Request) -> web.Response:
    s, p = params(request, COMMON, ("groups",))
    names = await group_names(s.pool, s.pbx_id, _required(p, "groups"), "ringgroup")
    return await _page(s, _query(p, groups=names))


async def call_number(request: web.Request) -> web.Response:
    s, p = params(request, ())
    f = Fields(await json_object(request))
    user = f.string("user", required=True, limit=100)
    number = dial_number(p, "number", f.string("number", required=True, limit=40))
    f.done()
    return await place_call(s, user, number, None)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/cloud/user-calls", user_calls, name="cloud_user_calls")
    app.router.add_get("/cloud/queue-calls", queue_calls, name="cloud_queue_calls")
    app.router.add_get("/cloud/ring-group-calls", ring_group_calls, name="cloud_ring_calls")
    app.router.add_post("/cloud/call", call_number, name="cloud_call")
