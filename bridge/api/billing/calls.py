"""`GET /api/calls?domain_name=` and `GET /api/call_range?from&to&domain_name`.

Both answer a bare JSON array of CDR objects (`cdr.py`), oldest call first, streamed from
a server-side cursor so "every call of the domain" stays flat in memory. `call_range`
filters on the call's end, both bounds included, as the original's
`whereBetween('end_stamp', [from, to])` does (`to=2026-11-22` means its midnight, not the
whole day); times without an offset are UTC, and `2026/11/22` or `11/22/2026` are read as
PHP reads them (`laravel.parse_date`).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from aiohttp import web

from ...store import directory, history
from ...store.queries import QUERIES
from ..services import Services, services_of
from .cdr import cdr
from .laravel import ValidationFailed, date, parse_date, read_input, validate

CHUNK = 500  # calls whose legs are read in one query
_INCLUSIVE = timedelta(microseconds=1)


def _domain(s: Services, data: dict[str, Any]) -> str:
    """`domain_name` must name this bridge's PBX (Laravel's `exists:v_domains`)."""
    domain = data["domain_name"]
    if domain != s.pbx_id:
        raise ValidationFailed({"domain_name": ["The selected domain name is invalid."]})
    return s.pbx_id


async def list_calls(request: web.Request) -> web.StreamResponse:
    s = services_of(request)
    data = validate(await read_input(request), {"domain_name": ()})
    domain = _domain(s, data)
    return await _answer(request, s, domain, history.CallQuery(descending=False))


async def call_range(request: web.Request) -> web.StreamResponse:
    s = services_of(request)
    data = validate(await read_input(request), {"domain_name": (), "from": (date,), "to": (date,)})
    domain = _domain(s, data)
    since: datetime = parse_date(data["from"])
    q = history.CallQuery(
        ended_since=since, ended_until=_just_after(parse_date(data["to"])), descending=False
    )
    return await _answer(request, s, domain, q)


def _just_after(to: datetime) -> datetime | None:
    """The exclusive bound that includes `to`; none after the last moment Python can hold
    (`9999-12-31T23:59:59.999999`), which nothing ends after."""
    try:
        return to + _INCLUSIVE
    except OverflowError:
        return None


async def _answer(
    request: web.Request, s: Services, domain: str, q: history.CallQuery
) -> web.StreamResponse:
    names = {u.login: u.name for u in await directory.users(s.pool, domain) if u.name}
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(request)
    first = True
    await response.write(b"[")
    async for chunk in _chunks(history.stream_calls(s.pool, domain, q)):
        legs = await _legs_of(s.pool, domain, [c["callid"] for c in chunk])
        parts = [
            json.dumps(cdr(c, legs.get(c["callid"], []), domain=domain, names=names)) for c in chunk
        ]
        text = ",".join(parts)
        await response.write((text if first else "," + text).encode())
        first = False
    await response.write(b"]")
    await response.write_eof()
    return response


async def _chunks(rows: AsyncIterator[asyncpg.Record]) -> AsyncIterator[list[asyncpg.Record]]:
    chunk: list[asyncpg.Record] = []
    async for row in rows:
        chunk.append(row)
        if len(chunk) >= CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


async def _legs_of(
    pool: asyncpg.Pool, pbx_id: str, callids: Sequence[str]
) -> dict[str, list[asyncpg.Record]]:
    found: dict[str, list[asyncpg.Record]] = {}
    for leg in await pool.fetch(QUERIES["billing_legs_of"], pbx_id, list(callids)):
        found.setdefault(leg["callid"], []).append(leg)
    return found


def add_routes(app: web.Application) -> None:
    app.router.add_get("/calls", list_calls)
    app.router.add_get("/call_range", call_range)
