"""Click-to-call: ring the employee's phones, then dial the number; the call id at once."""

from __future__ import annotations

import re

from aiohttp import web

from ..errors import ApiError, bad_request
from ..params import Params
from ..services import DialError, Services
from .body import Fields, json_object
from .calls import params

NUMBER = re.compile(r"\+?[0-9]{3,15}")  # E.164 (with or without +), or a short number


def dial_number(p: Params, name: str, value: str) -> str:
    """The number to dial as E.164 digits without `+` (a national form is normalised)."""
    if not NUMBER.fullmatch(value):
        raise bad_request(f"{name}: {value[:40]!r} is not a phone number (E.164, + allowed)")
    return p.numbers.normalize(value)


async def place_call(s: Services, employee: str, number: str, clid: str | None) -> web.Response:
    if s.dialer is None:
        raise ApiError(503, "Click-to-call is not available on this bridge")
    try:
        callid = await s.dialer.call(employee, number, clid)
    except DialError as exc:
        # 4xx: the request was wrong (unknown employee, bad number); else the PBX is away
        raise ApiError(400 if 400 <= exc.status < 500 else 503, exc.message) from None
    return web.json_response({"callid": callid}, status=201)


async def dial(request: web.Request) -> web.Response:
    s, p = params(request, ())
    f = Fields(await json_object(request))
    employee = f.string("employee", required=True, limit=100)
    number = dial_number(p, "number", f.string("number", required=True, limit=40))
    clid = f.optional_string("clid", limit=40)
    f.done()
    if clid is not None:
        clid = dial_number(p, "clid", clid)
    return await place_call(s, employee, number, clid)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/dial", dial, name="dial")
