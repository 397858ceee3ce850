"""`POST makecall` (section 5): ring the employee, then the customer.

Body (JSON or form; query parameters are taken when there is no body): `user` (login or
extension), `phone`, optional `clid` (the number to present). Answers `{"callid": ...}`,
plus `clid` when one was given. An unknown employee or a bad number is 400 (the dialer's
word); no dialer on this bridge (a standby, Asterisk away) is 503 with a message, in this
API's error shape: the client may try again later, its key is fine.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ...tracker.numbers import PhoneNormalizer
from ..errors import ApiError, bad_request
from ..services import DialError, services_of
from . import body

UNAVAILABLE = "Click-to-call is not available now"


def _number(numbers: PhoneNormalizer, name: str, value: str) -> str:
    digits = numbers.normalize(value)
    if not digits or not digits.isdigit():
        raise bad_request(f"{name}: {value[:40]!r} is not a phone number")
    return digits


async def makecall(request: web.Request) -> web.Response:
    s = services_of(request)
    fields: dict[str, Any] = await body.read_fields(request) or dict(request.query)
    user = body.required_text(fields, "user")
    phone = body.required_text(fields, "phone")
    clid = body.text(fields, "clid")
    numbers = PhoneNormalizer(s.settings.pbx.region)
    number = _number(numbers, "phone", phone)
    presented = _number(numbers, "clid", clid) if clid is not None else None
    if s.dialer is None:
        raise ApiError(503, UNAVAILABLE)
    try:
        callid = await s.dialer.call(user, number, presented)
    except DialError as exc:
        raise ApiError(400 if 400 <= exc.status < 500 else 503, exc.message) from None
    answer = {"callid": callid}
    if presented is not None:
        answer["clid"] = presented
    return web.json_response(answer)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/makecall", makecall)
