"""The black list (section 10), kept in Asterisk's AstDB (bridge.provision.runtime).

- `GET blacklist/telnums`: a bare array of `{"telnum", "comment"}` as 10.1 shows it (a
  number in E.164 digits, or a range: its first digits and `*`); `with=statistics` is
  accepted, but the bridge does not count blocked calls, so no `week`/`year` are given;
- `POST blacklist/telnums`: `{"telnum": "79988871221", "comment": "text"}`, `telnum` a
  string or a list of them, or a JSON array of such objects; a number in any form a person
  writes it (`+7 (998) 887-12-21`, `89988871221`) or a range (`7906888*`). 204;
- `DELETE blacklist/telnums`: `telnum` (one or a list) in the body or the query string;
  204, 404 when none of them was on the list;
- `GET blacklist/block-anonymous`: `{"state": bool}`; `POST` (or `PUT`) turns blocking of
  callers without a number on, `DELETE` off. 204.
Stored, not applied (Asterisk away): 202 with the message (see `writing`).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .. import json_input
from ..errors import ApiError, bad_request, not_found
from ..writes import Outcome, provisioning
from . import body
from .writing import answer

MAX_NUMBERS = 100


def _numbers(value: Any, where: str) -> list[str]:
    values = value if isinstance(value, list) else [value]
    if not values or len(values) > MAX_NUMBERS:
        raise bad_request(f"{where}: one to {MAX_NUMBERS} numbers")
    found: list[str] = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, str | int) or len(str(v)) > 40:
            raise bad_request(f"{where}: a number, a range like 7900800*, or a list of them")
        found.append(str(v))
    return found


async def _entries(request: web.Request) -> list[tuple[str, str]]:
    """(number, comment) pairs of an add: an object, or an array of objects."""
    if request.content_type == "multipart/form-data":  # a form: one entry, read as such
        return _pairs([await body.read_fields(request)])
    raw = await request.read() if request.body_exists else b""
    if len(raw) > body.MAX_BODY:
        raise ApiError(413, "Request body too large")
    if raw.lstrip()[:1] == b"[":
        try:
            items = json_input.loads(raw)
        except ValueError:
            raise bad_request("body: not valid JSON") from None
        if len(items) > MAX_NUMBERS or not all(isinstance(i, dict) for i in items):
            raise bad_request(f"body: at most {MAX_NUMBERS} objects with telnum and comment")
    else:
        items = [await body.read_fields(request)]
    return _pairs(items)


def _pairs(items: list[dict[str, Any]]) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for item in items:
        if item.get("telnum") in (None, ""):
            raise bad_request("telnum: required")
        comment = body.text(item, "comment", limit=500) or ""
        pairs += [(n, comment) for n in _numbers(item["telnum"], "telnum")]
    return pairs


def _worst(outcomes: list[Outcome]) -> Outcome:
    return next((o for o in outcomes if not o.applied), outcomes[0])


async def list_blocked(request: web.Request) -> web.Response:
    with_ = request.query.get("with")
    if with_ not in (None, "", "statistics"):
        raise bad_request("with: only statistics")
    blocked = await provisioning(request).blocked()
    return web.json_response([{"telnum": b.telnum, "comment": b.comment} for b in blocked])


async def block(request: web.Request) -> web.Response:
    prov = provisioning(request)
    pairs = await _entries(request)
    return answer(_worst([Outcome.of(await prov.block(n, c)) for n, c in pairs]))


async def unblock(request: web.Request) -> web.Response:
    prov = provisioning(request)
    fields = await body.read_fields(request)
    given = fields.get("telnum")
    if given in (None, ""):
        given = [v for v in request.query.getall("telnum", []) if v.strip()]
    if not given:
        raise bad_request("telnum: required")
    done = [await prov.unblock(n) for n in _numbers(given, "telnum")]
    found = [Outcome.of(d) for d in done if d is not None]
    if not found:
        raise not_found("Number not found")
    return answer(_worst(found))


async def get_anonymous(request: web.Request) -> web.Response:
    return web.json_response({"state": await provisioning(request).get_block_anonymous()})


async def set_anonymous(request: web.Request) -> web.Response:
    on = request.method != "DELETE"
    return answer(Outcome.of(await provisioning(request).set_block_anonymous(on)))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/blacklist/telnums", list_blocked)
    app.router.add_post("/blacklist/telnums", block)
    app.router.add_delete("/blacklist/telnums", unblock)
    app.router.add_get("/blacklist/block-anonymous", get_anonymous)
    app.router.add_post("/blacklist/block-anonymous", set_anonymous)
    app.router.add_put("/blacklist/block-anonymous", set_anonymous)
    app.router.add_delete("/blacklist/block-anonymous", set_anonymous)
