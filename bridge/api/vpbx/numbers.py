"""Company numbers written (sections 9.3-9.5): where a number's calls go, and whether it
takes calls at all. The numbers themselves are the company's (the config, or learnt): a
number the directory does not have is 404.

- `POST` (or `PUT`, `PATCH`) `telnums/{telnum}`: `type` user (`user`: a login or
  extension), group (`group`: a department's id, extension or name) or ivr (`ivr`: the
  dialplan context of the menu, as a string or `{"name": ...}`); `name` optional;
  `greeting` accepted and ignored (the menu context plays its own). Answers the number as
  `telnums/{telnum}` shows it. The route is rendered by the bridge from then on.
- `DELETE telnums/{telnum}/enabled`: the number refuses its calls (rendered as cause 21,
  "call rejected"); `PUT` (or `POST`) takes them again. 204. A number needs a route for
  the bridge to render either.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from aiohttp import web

from ...provision.rules import number_problems
from ...store import directory as store
from ...store.directory import Number
from ..errors import bad_request, not_found
from ..params import Params
from ..services import services_of
from ..writes import commit, provisioning
from . import body
from . import names as names_mod
from .directory import telnum_json
from .names import Names
from .writing import answer

TYPES = ("user", "group", "ivr")


async def _number(request: web.Request) -> tuple[Names, Number]:
    s = services_of(request)
    names = await names_mod.load(s.pool, s.pbx_id)
    given = request.match_info["telnum"]
    found = names.number(given) or names.number(
        Params(request, s.settings.pbx.region).numbers.normalize(given)
    )
    if found is None:
        raise not_found("Number not found")
    return names, found


def _route(fields: body.Fields, names: Names) -> dict[str, Any]:
    kind = body.required_text(fields, "type")
    if kind not in TYPES:
        raise bad_request("type: one of user, group, ivr (schedules and fax are not the bridge's)")
    body.boolean(fields, "greeting")  # checked, not kept
    found: dict[str, Any] = {"route_type": kind}
    name = body.text(fields, "name")
    if name is not None:
        found["name"] = name
    if kind == "user":
        who = body.required_text(fields, "user", limit=64)
        u = names.user(who)
        if u is None:
            raise bad_request(f"user: {who[:64]!r} is not an employee")
        found.update(route_to=u.login, ivr=[])
    elif kind == "group":
        ref = body.required_text(fields, "group")
        g = names.group(ref)
        if g is None:
            raise bad_request(f"group: {ref[:64]!r} is not a department")
        found.update(route_to=str(g.id), ivr=[])
    else:
        menu = fields.get("ivr")
        context = body.text(menu, "name") if isinstance(menu, dict) else body.text(fields, "ivr")
        if not context:
            raise bad_request('ivr: the dialplan context of the menu (a name, or {"name": ...})')
        found.update(route_to=context, ivr=[])
    return found


async def set_route(request: web.Request) -> web.Response:
    s = services_of(request)
    prov = provisioning(request)
    fields = await body.read_fields(request)
    names, before = await _number(request)
    number = replace(before, **_route(fields, names), source="api", provisioned=True)
    problems = number_problems(number)
    if problems:
        raise bad_request("; ".join(problems))
    await store.upsert_number(s.pool, s.pbx_id, number)

    async def undo() -> None:
        await store.restore_number(s.pool, s.pbx_id, before)

    outcome = await commit(prov, f"number {number.telnum} routed to {number.route_type}", undo)
    names, number = await _number(request)
    return answer(outcome, telnum_json(number, names, s.settings.pbx.main_number))


async def set_enabled(request: web.Request) -> web.Response:
    s = services_of(request)
    prov = provisioning(request)
    _, before = await _number(request)
    disabled = request.method == "DELETE"
    if not before.route_type:
        raise bad_request(
            f"number {before.telnum} has no route: give it one first (POST telnums/{before.telnum})"
        )
    number = replace(before, source="api", provisioned=True)
    problems = number_problems(number)
    if problems:
        raise bad_request("; ".join(problems))
    async with s.pool.acquire() as conn, conn.transaction():
        await store.upsert_number(conn, s.pbx_id, number)
        await store.set_number_disabled(conn, s.pbx_id, number.telnum, disabled)

    async def undo() -> None:
        async with s.pool.acquire() as conn, conn.transaction():
            await store.upsert_number(conn, s.pbx_id, before)
            await store.set_number_disabled(conn, s.pbx_id, before.telnum, before.disabled)

    what = "disabled" if disabled else "enabled"
    return answer(await commit(prov, f"number {number.telnum} {what}", undo))


def add_routes(app: web.Application) -> None:
    for method in ("POST", "PUT", "PATCH"):
        app.router.add_route(method, "/telnums/{telnum}", set_route)
    for method in ("PUT", "POST", "DELETE"):
        app.router.add_route(method, "/telnums/{telnum}/enabled", set_enabled)
