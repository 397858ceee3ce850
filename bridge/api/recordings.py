"""GET /recordings/{callid}?expires=&sig=: the call's recording, for a signed link only."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from aiohttp import web

from ..crm.links import link_is_valid
from ..store.calls import CallStore

_TYPES = {
    ".wav": "audio/wav",
    ".mp3": "audio/mpeg",
    ".gsm": "audio/x-gsm",
    ".ogg": "audio/ogg",
    ".wav49": "audio/wav",
}


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
        if not file.is_relative_to(root) or not await asyncio.to_thread(file.is_file):
            # outside the recordings folder (never served) or not written (yet)
            return web.json_response({"message": "recording file not found"}, status=404)
        return web.FileResponse(
            file,
            headers={
                "Content-Type": _TYPES.get(file.suffix.lower(), "application/octet-stream"),
                "Content-Disposition": f'inline; filename="{file.name}"',
            },
        )

    app.router.add_get("/recordings/{callid}", recording)
