"""Recording files as HTTP answers, and GET /recordings/{callid}?expires=&sig=: the call's
recording, for a signed link only.

aiohttp's FileResponse answers Range requests itself but not quite as RFC 9110 (14.2)
says: a Range header that is not a byte range it can serve (`bytes=abc`, `items=0-9`,
several ranges) gets an empty 416 where the header should be ignored (200, the whole
file), and a range starting past the end gets a 416 with an empty body typed as the audio.
`recording_response` answers those two itself.
"""

from __future__ import annotations

import asyncio
import os
import stat
import time
from collections.abc import Mapping
from pathlib import Path

from aiohttp import hdrs, web
from aiohttp.abc import AbstractStreamWriter

from ..crm.links import link_is_valid
from ..store.calls import CallStore

_TYPES = {
    ".wav": "audio/wav",
    ".mp3": "audio/mpeg",
    ".gsm": "audio/x-gsm",
    ".ogg": "audio/ogg",
    ".wav49": "audio/wav",
}


def regular_file(file: Path) -> os.stat_result | None:
    """The file's stat when it is a regular file (blocking: run it in a thread)."""
    try:
        found = file.stat()
    except OSError:
        return None
    return found if stat.S_ISREG(found.st_mode) else None


def _byte_range(request: web.BaseRequest) -> slice | None:
    """The Range asked for, None when there is none or it is not one FileResponse serves."""
    if hdrs.RANGE not in request.headers:
        return None
    try:
        return request.http_range
    except ValueError:
        return None


class _RecordingFile(web.FileResponse):
    """FileResponse seeing no Range header where it holds none it can serve."""

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        if hdrs.RANGE in request.headers and _byte_range(request) is None:
            headers = request.headers.copy()
            del headers[hdrs.RANGE]
            request = request.clone(headers=headers)  # ignored: the whole file
        return await super().prepare(request)


def recording_response(
    request: web.Request, file: Path, found: os.stat_result, headers: Mapping[str, str]
) -> web.StreamResponse:
    """`file` (`found` its stat) with `headers`: 206 for a byte range, 416 in JSON with
    `Content-Range: bytes */<size>` for one starting past the end (unless an If-Range
    older than the file makes the Range moot, as FileResponse reads it), else 200."""
    wanted = _byte_range(request)
    if_range = request.if_range
    applies = if_range is None or found.st_mtime <= if_range.timestamp()
    start = wanted.start if wanted is not None else None
    if applies and start is not None and start >= found.st_size:
        return web.json_response(
            {"message": f"Range not satisfiable: the recording has {found.st_size} bytes"},
            status=416,
            headers={hdrs.CONTENT_RANGE: f"bytes */{found.st_size}"},
        )
    return _RecordingFile(file, headers=headers)


def add_recording_routes(
    app: web.Application, store: CallStore, secret: str, recordings_dir: str
) -> None:
    root = Path(recordings_dir).resolve()

    async def recording(request: web.Request) -> web.StreamResponse:
        callid = request.match_info["callid"]
        why = link_is_valid(
            secret,
            callid,
            request.query.get("expires", ""),
            request.query.get("sig", ""),
            time.time(),
        )
        if why is not None:
            return web.json_response({"message": why}, status=403)
        path = await store.recording_of(callid)
        if not path:
            return web.json_response({"message": "no recording for this call"}, status=404)
        file = await asyncio.to_thread(Path(path).resolve)
        found = await asyncio.to_thread(regular_file, file) if file.is_relative_to(root) else None
        if found is None:
            # outside the recordings folder (never served) or not written (yet)
            return web.json_response({"message": "recording file not found"}, status=404)
        return recording_response(
            request,
            file,
            found,
            {
                "Content-Type": _TYPES.get(file.suffix.lower(), "application/octet-stream"),
                "Content-Disposition": f'inline; filename="{file.name}"',
            },
        )

    app.router.add_get("/recordings/{callid}", recording)
