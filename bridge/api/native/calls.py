"""Calls: the filtered list (offset or cursor paging), one call, the CSV export, the
recording."""

from __future__ import annotations

import asyncio
import csv
import io
import os
import re
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import replace
from pathlib import Path
from typing import Any

from aiohttp import web

from ...store import directory, history
from ...store.queries import QUERIES
from ..errors import not_found
from ..params import Params
from ..recordings import recording_response, regular_file
from ..services import Services, services_of
from . import cursor
from .query import FILTER_LISTS, FILTERS, ORDERING, PAGING, call_query, user_names
from .shapes import CALL_FIELDS, call_json, iso, path_text

_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")
CSV_CHUNK = 64 * 1024  # characters of CSV handed to the socket at a time
AUDIO_TYPES = {
    ".wav": "audio/wav",
    ".wav49": "audio/wav",
    ".mp3": "audio/mpeg",
    ".gsm": "audio/x-gsm",
    ".ogg": "audio/ogg",
}


def params(
    request: web.Request, scalars: tuple[str, ...], lists: tuple[str, ...] = ()
) -> tuple[Services, Params]:
    """The services, and the query's parameters once no unknown or repeated one is found."""
    s = services_of(request)
    p = Params(request, s.settings.pbx.region, strict=True)
    p.check_names(scalars, lists)
    return s, p


async def list_calls(request: web.Request) -> web.Response:
    s, p = params(request, FILTERS + ORDERING + PAGING, FILTER_LISTS)
    q = await call_query(s.pool, s.pbx_id, p, paged=True)
    with_total = p.boolean("total", False)
    rows = await history.search_calls(s.pool, s.pbx_id, replace(q, limit=q.limit + 1))
    page = rows[: q.limit]
    after = None
    if len(rows) > q.limit:  # one row more than asked: there is a next page
        after = cursor.encode(history.cursor_of(page[-1], q.sort), q.sort, q.descending)
    names = await user_names(s.pool, s.pbx_id, (r["user_login"] for r in page))
    body: dict[str, Any] = {
        "items": [call_json(r, names) for r in page],
        "offset": q.offset,
        "limit": q.limit,
        "next": after,
    }
    if with_total:
        body["total"] = await history.count_calls(s.pool, s.pbx_id, replace(q, after=None))
    return web.json_response(body)


async def get_call(request: web.Request) -> web.Response:
    s, _ = params(request, ())
    found = await history.call_details(s.pool, s.pbx_id, path_text(request, "callid", "call"))
    if found is None:
        raise not_found("No such call")
    logins = [found.call["user_login"], *(e["user_login"] for e in found.events)]
    names = await user_names(s.pool, s.pbx_id, logins)
    body = call_json(found.call, names)
    body["legs"] = [
        {
            "uniqueid": leg["uniqueid"],
            "channel": leg["channel"],
            "kind": leg["kind"],
            "ext": leg["ext"],
            "start": iso(leg["started_at"]),
            "answered": iso(leg["answered_at"]),
            "end": iso(leg["ended_at"]),
            "cause": leg["cause"],
            "dial_status": leg["dial_status"],
        }
        for leg in found.legs
    ]
    body["events"] = [
        {
            "seq": e["seq"],
            "type": e["type"],
            "at": iso(e["at"]),
            "ext": e["ext"],
            "user": e["user_login"],
            "user_name": names.get(e["user_login"], ""),
            "second_callid": e["second_callid"],
        }
        for e in found.events
    ]
    return web.json_response(body)


# A cell a spreadsheet would run as a formula is quoted as text, as OWASP advises for CSV
# exports. Only the free-text columns can start one (a caller chooses the name it presents,
# an API client the directory's names); the others are numbers, ids, dates and fixed words.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
FREE_TEXT = [CALL_FIELDS.index(f) for f in ("phone_name", "user", "user_name", "group")]


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _csv_row(item: dict[str, Any]) -> list[Any]:
    values = [_csv_value(item[f]) for f in CALL_FIELDS]
    for i in FREE_TEXT:
        if values[i].startswith(FORMULA_STARTS):
            values[i] = "'" + values[i]
    return values


async def csv_chunks(
    s: Services, q: history.CallQuery, names: dict[str, str]
) -> AsyncIterator[bytes]:
    """The header row, then every call of `q`, read through a server-side cursor and sent
    on in chunks: memory stays flat however many calls there are."""
    buffer = io.StringIO()
    out = csv.writer(buffer)
    out.writerow(CALL_FIELDS)
    # closed here, not whenever the garbage collector comes: a client gone mid-body must
    # give its pooled connection back at once
    async with aclosing(history.stream_calls(s.pool, s.pbx_id, q)) as rows:
        async for row in rows:
            item = call_json(row, names)
            out.writerow(_csv_row(item))
            if buffer.tell() >= CSV_CHUNK:
                yield buffer.getvalue().encode()
                buffer.seek(0)
                buffer.truncate()
    yield buffer.getvalue().encode()


async def export_csv(request: web.Request) -> web.Response:
    s, p = params(request, FILTERS + ORDERING, FILTER_LISTS)
    q = await call_query(s.pool, s.pbx_id, p, paged=False)
    names = {u.login: u.name for u in await directory.users(s.pool, s.pbx_id)}
    # The body is written after this handler returns (chunked): the request timeout covers
    # the answer's head only, and a long export goes on as long as it needs.
    return web.Response(
        body=csv_chunks(s, q, names),
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": 'attachment; filename="calls.csv"'},
    )


async def recording(request: web.Request) -> web.StreamResponse:
    """The call's recording file (Range requests as `recordings.recording_response`
    answers them); only files under `[api] recordings_dir` are served."""
    s, _ = params(request, ())
    callid = path_text(request, "callid", "call")
    stored: str | None = await s.pool.fetchval(QUERIES["call_recording"], s.pbx_id, callid)
    if stored is None:
        raise not_found("No such call")
    if not stored:
        raise not_found("No recording for this call")
    root = Path(s.settings.api.recordings_dir)

    def locate() -> tuple[Path, os.stat_result] | None:
        base = root.resolve()
        file = (base / stored).resolve()  # an absolute stored path stays itself
        found = regular_file(file) if file.is_relative_to(base) else None
        return (file, found) if found is not None else None

    located = await asyncio.to_thread(locate)
    if located is None:  # outside the recordings folder (never served) or not written (yet)
        raise not_found("Recording file not found")
    file, found = located
    return recording_response(
        request,
        file,
        found,
        {
            "Content-Type": AUDIO_TYPES.get(file.suffix.lower(), "application/octet-stream"),
            "Content-Disposition": f'inline; filename="{_SAFE_NAME.sub("_", file.name)}"',
        },
    )


def add_routes(app: web.Application) -> None:
    app.router.add_get("/calls", list_calls, name="calls")
    app.router.add_get("/calls.csv", export_csv, name="calls_csv")
    app.router.add_get("/calls/{callid}", get_call, name="call")
    app.router.add_get("/calls/{callid}/recording", recording, name="call_recording")
