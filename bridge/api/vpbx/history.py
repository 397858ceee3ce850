"""Call history (section 4): `history/json`, `history/csv`, `history/inner/json`,
`history/inner/csv`.

Parameters come from the query string (and from a JSON or form body, which some clients
send as the documentation's examples show). The window follows section 4.5 (`periods`).

External history (`history/*`), newest first (a `limit` up to 1000 is one query; more, or
no limit, is streamed from a cursor, so an export of any size holds no memory):
- `type`: `all` (in and out), `in`, `out`, `missed` (inbound calls no employee answered,
  the ones a CRM calls back); `user` (login or extension), `diversion` (company number),
  `client` (customer number), `limit`; `missedStatus` (one or more numbers: calls whose
  missedStatus is one of them) and `processMissed` (true: only calls that carry a
  missedStatus, false: only calls without one).
- `status` is the webhook's status in lower case: Success -> success, missed -> missed,
  Cancel -> cancel, Busy -> busy, NotAvailable -> notavailable, NotAllowed -> notallowed,
  NotFound -> notfound.
- `destination` (inbound calls; empty for outbound ones), from what the call record knows:
  `user` (answered by an employee, or a missed call offered to one employee; a call
  forwarded to an outside number after ringing an employee names that employee, as its
  webhook does), `telnum` (answered, by no employee: an outside number it was forwarded
  to), `group` (missed by a ring group or queue), `ivr` (missed before reaching anyone, on
  a number routed to an IVR), `hello` (missed before reaching anyone otherwise).
- Besides the documented fields, rows carry `via` (= `diversion`, the CSV's name) and
  `telnum_name` (the company number's name, as the `event` webhook has it).
- CSV (section 4.1): no header line, the nine columns of its example rows, `uid,type,
  client,account,via,start,wait,duration,record` (report scripts name exactly nine: no
  rating); `type` there is `in`, `out` or `missed` (the `type` filter's words: the CSV has
  no status column).
- JSON: `rating` and `missedStatus` are numbers, left out when the call has none (the
  documentation's example has neither; a typed client reads no null).

Internal history (`history/inner/*`): `type` `all`, `success` or `noanswer` (`missed` is
taken for `noanswer`), `user`; rows `uid,status,from,to,from_name,to_name,start,wait,
duration,record` (the CSV without the names).
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import asyncpg
from aiohttp import web
from multidict import MultiDict, MultiDictProxy

from ...crm.links import recording_link
from ...store import history
from ..errors import bad_request
from ..params import Params
from ..services import Services, services_of
from . import names, periods
from .body import read_fields

TYPES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {  # type -> directions, statuses
    "all": (("in", "out"), ()),
    "in": (("in",), ()),
    "out": (("out",), ()),
    "missed": (("in",), ("missed",)),
}
INNER_TYPES = {"all": None, "success": True, "noanswer": False, "missed": False}
STATUSES = {
    "Success": "success",
    "missed": "missed",
    "Cancel": "cancel",
    "Busy": "busy",
    "NotAvailable": "notavailable",
    "NotAllowed": "notallowed",
    "NotFound": "notfound",
}
CSV_COLUMNS = (
    "uid",
    "type",
    "client",
    "account",
    "via",
    "start",
    "wait",
    "duration",
    "record",
)
INNER_CSV_COLUMNS = ("uid", "status", "from", "to", "start", "wait", "duration", "record")
CHUNK = 200  # rows per write
ONE_QUERY = 1000  # a limit up to this is one page fetched at once; more is streamed


def status_name(status: str) -> str:
    return STATUSES.get(status, status.lower())


def iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def request_params(request: web.Request, region: str) -> Params:
    """The query string, plus the fields of a body if the client sent one."""
    p = Params(request, region)
    fields = await read_fields(request)
    if fields:
        merged: MultiDict[str] = MultiDict(request.query)
        for name, value in fields.items():
            values = value if isinstance(value, list) else [value]
            for v in values:
                if isinstance(v, bool):
                    merged.add(name, "true" if v else "false")
                elif isinstance(v, str | int | float):
                    merged.add(name, str(v))
                else:
                    raise bad_request(f"{name}: must be a string or a number")
        p.query = MultiDictProxy(merged)
    return p


def window(p: Params) -> periods.Window:
    period = p.choice("period", (*periods.PERIODS, *periods.ALIASES), "") or None
    start, end = p.time("start"), p.time("end")
    try:
        return periods.history_window(period, start, end, periods.now(), periods.zone())
    except ValueError as exc:
        raise bad_request(str(exc)) from None


def optional_limit(p: Params) -> int | None:
    if p.raw("limit") is None:
        return None
    return p.integer("limit", 0, minimum=1, maximum=10_000_000)


def flag(p: Params, name: str) -> bool | None:
    value = p.raw(name)
    if value is None:
        return None
    words = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
    if value.lower() not in words:
        raise bad_request(f"{name}: {value[:40]!r} is not true or false")
    return words[value.lower()]


def numbers(p: Params, name: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in p.strings(name))
    except ValueError:
        raise bad_request(f"{name}: whole numbers expected") from None


async def external_query(p: Params, s: Services) -> tuple[history.CallQuery, int | None]:
    directions, statuses = TYPES[p.choice("type", tuple(TYPES), "all")]
    w = window(p)
    query = history.CallQuery(
        since=w.since,
        until=w.until,
        directions=directions,
        statuses=statuses,
        users=await employees(p, s),
        phone=p.phone("client"),
        diversion=p.phone("diversion"),
        missed_statuses=numbers(p, "missedStatus"),
        has_missed_status=flag(p, "processMissed"),
    )
    return query, optional_limit(p)


async def employees(p: Params, s: Services) -> tuple[str, ...]:
    """The `user` filter: each login or extension with its other name."""
    wanted = p.strings("user")
    return await names.aliases(s.pool, s.pbx_id, wanted) if wanted else ()


class Links:
    """`record`: a signed link to the recording when links are signed and there is one."""

    def __init__(self, s: Services) -> None:
        api = s.settings.api
        self.secret = api.link_secret
        self.base = api.public_url
        self.expires = int(time.time() + api.link_ttl)

    def __call__(self, callid: str, recording: str) -> str:
        if not self.secret or not recording:
            return ""
        return recording_link(self.base, self.secret, callid, self.expires)


def destination(row: asyncpg.Record, user: str) -> str:
    if row["direction"] != "in":
        return ""
    if row["status"] == "Success":
        return "user" if user else "telnum"
    if row["group_name"]:
        return "group"
    if user:
        return "user"
    return "ivr" if row["number_route"] == "ivr" else "hello"


def external_item(row: asyncpg.Record, links: Links) -> dict[str, Any]:
    """A call row of NAMED_COLUMNS as section 4.2 shows it."""
    user = row["directory_login"] or row["user_login"] or row["ext"]
    item: dict[str, Any] = {
        "uid": row["callid"],
        "type": row["direction"],
        "status": status_name(row["status"]),
        "client": row["phone"],
        "account": user,
        "diversion": row["diversion"],
        "via": row["diversion"],
        "telnum_name": row["number_name"],
        "destination": destination(row, user),
        "user": user,
        "user_name": row["directory_name"],
        "group_name": row["group_name"],
        "start": iso(row["started_at"]),
        "wait": row["wait"],
        "duration": row["duration"],
        "record": links(row["callid"], row["recording"]),
    }
    marks = {"rating": row["rating"], "missedStatus": row["missed_status"]}
    return item | {name: value for name, value in marks.items() if value is not None}


def csv_type(item: dict[str, Any]) -> str:
    return "missed" if item["type"] == "in" and item["status"] == "missed" else item["type"]


def external_csv_row(item: dict[str, Any]) -> list[Any]:
    return [csv_type(item) if c == "type" else item[c] for c in CSV_COLUMNS]


def inner_item(row: asyncpg.Record, links: Links) -> dict[str, Any]:
    start, answered = row["started_at"], row["to_answered_at"]
    ends = [t for t in (row["to_ended_at"], row["ended_at"]) if t is not None]
    if answered is not None:  # the conversation: until the first of the two hung up
        wait = (answered - start).total_seconds()
        duration = ((min(ends) if ends else answered) - answered).total_seconds()
    else:
        wait = ((row["ended_at"] or start) - start).total_seconds()
        duration = 0.0
    return {
        "uid": row["callid"],
        "status": "success" if answered is not None else "noanswer",
        "from": row["from_login"],
        "to": row["to_login"],
        "from_name": row["from_name"],
        "to_name": row["to_name"],
        "start": iso(row["started_at"]),
        "wait": max(0, round(wait)),
        "duration": max(0, round(duration)),
        "record": links(row["callid"], row["recording"]),
    }


def inner_csv_row(item: dict[str, Any]) -> list[Any]:
    return [item[c] for c in INNER_CSV_COLUMNS]


# ---------------------------------------------------------------- output


async def _each(rows: list[asyncpg.Record]) -> AsyncIterator[asyncpg.Record]:
    for row in rows:
        yield row


async def _taken(
    rows: AsyncIterator[asyncpg.Record], limit: int | None
) -> AsyncIterator[asyncpg.Record]:
    """The first `limit` rows; the query's cursor (and its connection) is let go at once."""
    try:
        count = 0
        async for row in rows:
            yield row
            count += 1
            if limit is not None and count >= limit:
                return
    finally:
        close = getattr(rows, "aclose", None)
        if close is not None:
            await close()


async def json_array(items: AsyncIterator[dict[str, Any]]) -> AsyncIterator[bytes]:
    parts = ["["]
    first = True
    async for item in items:
        parts.append(("" if first else ",") + json.dumps(item, ensure_ascii=False))
        first = False
        if len(parts) >= CHUNK:
            yield "".join(parts).encode()
            parts = []
    parts.append("]")
    yield "".join(parts).encode()


async def csv_lines(rows: AsyncIterator[list[Any]]) -> AsyncIterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    count = 0
    async for row in rows:
        writer.writerow(row)
        count += 1
        if count % CHUNK == 0:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    if buffer.getvalue():
        yield buffer.getvalue().encode()


def streamed(body: AsyncIterator[bytes], content_type: str, filename: str | None) -> web.Response:
    """The response head now, the rows as they come (no export is held in memory)."""
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'} if filename else {}
    response = web.Response(body=body, headers=headers)
    response.content_type = content_type
    response.charset = "utf-8"
    return response


Shape = Callable[[asyncpg.Record, Links], dict[str, Any]]


async def _items(
    rows: AsyncIterator[asyncpg.Record], shape: Shape, links: Links
) -> AsyncIterator[dict[str, Any]]:
    async for row in rows:
        yield shape(row, links)


async def _csv_rows(
    items: AsyncIterator[dict[str, Any]], row: Callable[[dict[str, Any]], list[Any]]
) -> AsyncIterator[list[Any]]:
    async for item in items:
        yield row(item)


# ---------------------------------------------------------------- handlers


async def _external(request: web.Request) -> AsyncIterator[dict[str, Any]]:
    s = services_of(request)
    p = await request_params(request, s.settings.pbx.region)
    query, limit = await external_query(p, s)
    rows: AsyncIterator[asyncpg.Record]
    if limit is not None and limit <= ONE_QUERY:
        page = replace(query, limit=limit)
        rows = _each(await history.search_named_calls(s.pool, s.pbx_id, page))
    else:
        rows = _taken(history.stream_named_calls(s.pool, s.pbx_id, query), limit)
    return _items(rows, external_item, Links(s))


async def _inner(request: web.Request) -> AsyncIterator[dict[str, Any]]:
    s = services_of(request)
    p = await request_params(request, s.settings.pbx.region)
    w = window(p)
    query = history.InnerQuery(
        since=w.since,
        until=w.until,
        parties=await employees(p, s),
        answered=INNER_TYPES[p.choice("type", tuple(INNER_TYPES), "all")],
        limit=optional_limit(p),
    )
    rows = history.stream_inner_calls(s.pool, s.pbx_id, query)
    return _items(rows, inner_item, Links(s))


async def history_json(request: web.Request) -> web.Response:
    return streamed(json_array(await _external(request)), "application/json", None)


async def history_csv(request: web.Request) -> web.Response:
    rows = _csv_rows(await _external(request), external_csv_row)
    return streamed(csv_lines(rows), "text/csv", "history.csv")


async def inner_json(request: web.Request) -> web.Response:
    return streamed(json_array(await _inner(request)), "application/json", None)


async def inner_csv(request: web.Request) -> web.Response:
    rows = _csv_rows(await _inner(request), inner_csv_row)
    return streamed(csv_lines(rows), "text/csv", "inner-history.csv")


def add_routes(app: web.Application) -> None:
    routes: Iterable[tuple[str, Any]] = (
        ("/history/json", history_json),
        ("/history/csv", history_csv),
        ("/history/inner/json", inner_json),
        ("/history/inner/csv", inner_csv),
    )
    for path, handler in routes:
        app.router.add_get(path, handler)
        app.router.add_post(path, handler)
