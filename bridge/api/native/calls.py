"""`GET /api/v1/calls` and `GET /api/v1/calls/{callid}`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web

from ...store import history
from ..errors import bad_request, not_found
from ..params import Params
from ..services import services_of


def call_json(row: Any) -> dict[str, Any]:
    return {
        "callid": row["callid"],
        "direction": row["direction"],
        "status": row["status"],
        "phone": row["phone"],
        "diversion": row["diversion"],
        "user": row["user_login"],
        "ext": row["ext"],
        "group": row["group_name"],
        "start": _iso(row["started_at"]),
        "answered": _iso(row["answered_at"]),
        "end": _iso(row["ended_at"]),
        "duration": row["duration"],
        "wait": row["wait"],
        "recorded": bool(row["recording"]),
        "rating": row["rating"],
        "missed_status": row["missed_status"],
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def query_from(p: Params) -> history.CallQuery:
    try:
        return history.CallQuery(
            since=p.time("from"),
            until=p.time("to"),
            directions=p.choices("direction", ("in", "out", "internal")),
            statuses=p.strings("status"),
            users=p.strings("user"),
            exts=p.strings("ext"),
            participants=p.strings("participant"),
            groups=p.strings("group"),
            phone=p.phone("phone"),
            diversion=p.phone("diversion"),
            search=p.text("q"),
            sort=p.choice("sort", tuple(history.SORTS), "start"),
            descending=p.choice("order", ("asc", "desc"), "desc") == "desc",
            offset=p.integer("offset", 0, minimum=0),
            limit=p.integer("limit", 100, minimum=1, maximum=1000),
        )
    except ValueError as exc:
        raise bad_request(str(exc)) from None


async def list_calls(request: web.Request) -> web.Response:
    s = services_of(request)
    q = query_from(Params(request, s.settings.pbx.region))
    rows = await history.search_calls(s.pool, s.pbx_id, q)
    return web.json_response({"items": [call_json(r) for r in rows], "offset": q.offset})


async def get_call(request: web.Request) -> web.Response:
    s = services_of(request)
    found = await history.call_details(s.pool, s.pbx_id, request.match_info["callid"])
    if found is None:
        raise not_found("No such call")
    body = call_json(found.call)
    body["legs"] = [
        {
            "uniqueid": leg["uniqueid"],
            "channel": leg["channel"],
            "kind": leg["kind"],
            "ext": leg["ext"],
            "start": _iso(leg["started_at"]),
            "answered": _iso(leg["answered_at"]),
            "end": _iso(leg["ended_at"]),
            "cause": leg["cause"],
            "dial_status": leg["dial_status"],
        }
        for leg in found.legs
    ]
    body["events"] = [
        {
            "seq": e["seq"],
            "type": e["type"],
            "at": _iso(e["at"]),
            "ext": e["ext"],
            "user": e["user_login"],
            "second_callid": e["second_callid"],
        }
        for e in found.events
    ]
    return web.json_response(body)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/calls", list_calls)
    app.router.add_get("/calls/{callid}", get_call)
