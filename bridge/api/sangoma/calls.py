"""Calls: `calls/{uuid}`, `calls/list/{both|inbound|outbound}[/{since}[/{limit}[/{offset}]]]`
(or `?since=&limit=&offset=`), `calls/recording/{uuid}` and `calls/voicemail/{uuid}`
(octet streams).

`{uuid}` is any Asterisk UniqueID of any channel of the call (its first channel's is the
call id). Lists are the finished calls, oldest first (so `since` plus `offset` pages
through a growing history without skipping or repeating), `since` a Unix time (UTC) the
calls started at or after, `limit` 999 by default and at most 10000.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from aiohttp import web

from ...crm.sangoma_call import CallFacts, call_object
from ...store import history
from ...tracker.numbers import PhoneNormalizer
from ..errors import bad_request, not_found
from ..services import Services, services_of
from .voicemail import CallTrace, find_voicemail

LIST_DIRECTIONS = {"both": ("in", "out"), "inbound": ("in",), "outbound": ("out",)}
DEFAULT_LIMIT = 999
MAX_SINCE = 10**11  # a Unix time past year 5000 is a mistake


def _whole(value: str, name: str, *, minimum: int, maximum: int, cap: bool = False) -> int:
    """`value` as a whole number from `minimum` to `maximum`: a 400 outside, or `maximum`
    above it with `cap`."""
    if not value.isascii() or not value.isdigit():
        raise bad_request(f"{name} must be a whole number, not {value[:40]!r}")
    digits = value.lstrip("0") or "0"
    # longer is past any maximum here (and Python refuses int() of thousands of digits)
    number = int(digits) if len(digits) <= 12 else 10**12
    if cap:
        number = min(number, maximum)
    if not minimum <= number <= maximum:
        raise bad_request(f"{name} must be between {minimum} and {maximum}")
    return number


def list_query(rest: str, query: Mapping[str, str]) -> history.CallQuery:
    """The query of `calls/list<rest>?<query>`; 400 on a bad part, 404 on too many.

    `since`, `limit` and `offset` are path segments in the reference; a client may give
    them as a query string instead (each one the path leaves out), and a trailing slash
    adds nothing. `limit` is capped, not refused: the reference sets no maximum, so a
    client asking for more than one page of the bridge gets that page."""
    parts = rest.split("/")[1:]
    if parts and parts[-1] == "":
        parts.pop()
    if len(parts) > 4:
        raise not_found("No such path")
    direction, *given = parts or ["both"]
    if direction not in LIST_DIRECTIONS:
        raise bad_request(f"direction must be both, inbound or outbound, not {direction[:40]!r}")
    since, limit, offset = (
        given[i] if i < len(given) else query.get(name)
        for i, name in enumerate(("since", "limit", "offset"))
    )
    start = _whole(since, "since", minimum=0, maximum=MAX_SINCE) if since is not None else 0
    return history.CallQuery(
        since=datetime.fromtimestamp(start, UTC) if start else None,
        directions=LIST_DIRECTIONS[direction],
        descending=False,
        limit=(
            _whole(limit, "limit", minimum=1, maximum=history.MAX_LIMIT, cap=True)
            if limit is not None
            else DEFAULT_LIMIT
        ),
        offset=_whole(offset, "offset", minimum=0, maximum=10**9) if offset is not None else 0,
    )


async def list_calls(request: web.Request) -> web.Response:
    s = services_of(request)
    q = list_query(request.match_info["rest"], request.query)
    rows = await history.search_calls(s.pool, s.pbx_id, q)
    return web.json_response([call_object(CallFacts.of_row(r)) for r in rows])


async def _call(s: Services, uuid: str) -> history.CallDetails:
    if not uuid or len(uuid) > 64 or not uuid.isprintable():
        raise not_found("Call not found")
    callid = await history.callid_of_channel(s.pool, s.pbx_id, uuid)
    found = await history.call_details(s.pool, s.pbx_id, callid) if callid else None
    if found is None:
        raise not_found("Call not found")
    return found


async def get_call(request: web.Request) -> web.Response:
    found = await _call(services_of(request), request.match_info["uuid"])
    return web.json_response(call_object(CallFacts.of_row(found.call)))


def _octets(file: Path) -> web.FileResponse:
    return web.FileResponse(
        file,
        headers={
            "Content-Type": "application/octet-stream",
            "Content-Disposition": f'attachment; filename="{file.name}"',
        },
    )


async def recording(request: web.Request) -> web.StreamResponse:
    s = services_of(request)
    found = await _call(s, request.match_info["uuid"])
    path = found.call["recording"]
    if not path:
        raise not_found("No recording for this call")
    root = await asyncio.to_thread(Path(s.settings.api.recordings_dir).resolve)
    file = await asyncio.to_thread(Path(path).resolve)
    if not file.is_relative_to(root) or not await asyncio.to_thread(file.is_file):
        # outside the recordings folder (never served) or not written (yet)
        raise not_found("Recording file not found")
    return _octets(file)


def voicemail_spool(s: Services) -> Path:
    """Asterisk's voicemail spool: beside the recordings (`/var/spool/asterisk/monitor` ->
    `/var/spool/asterisk/voicemail`)."""
    return Path(s.settings.api.recordings_dir).parent / "voicemail"


async def voicemail(request: web.Request) -> web.StreamResponse:
    s = services_of(request)
    found = await _call(s, request.match_info["uuid"])
    call = found.call
    if call["ended_at"] is None:
        raise not_found("No voicemail for this call")
    trace = CallTrace(
        start=call["started_at"].timestamp(),
        end=call["ended_at"].timestamp(),
        channels=frozenset(leg["channel"] for leg in found.legs),
        mailboxes=frozenset(
            {leg["ext"] for leg in found.legs if leg["kind"] == "extension" and leg["ext"]}
            | ({call["ext"]} if call["ext"] else set())
        ),
        phone=call["phone"],
    )
    numbers = PhoneNormalizer(s.settings.pbx.region)
    message = await asyncio.to_thread(
        find_voicemail, voicemail_spool(s), trace, lambda n: numbers.normalize(n) or ""
    )
    audio = await asyncio.to_thread(message.audio) if message is not None else None
    if audio is None:
        raise not_found("No voicemail for this call")
    return _octets(audio)


def add_routes(app: web.Application) -> None:
    app.router.add_get(r"/calls/list{rest:(/[^?]*)?}", list_calls)
    app.router.add_get("/calls/recording/{uuid}", recording)
    app.router.add_get("/calls/voicemail/{uuid}", voicemail)
    app.router.add_get("/calls/{uuid}", get_call)
