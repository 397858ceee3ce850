"""Recording links: the `link` of `history` is signed, expires, and serves only the file."""

from __future__ import annotations

import json
import time
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from aiohttp import web

from bridge.api.recordings import add_recording_routes
from bridge.crm.links import link_is_valid, recording_link
from bridge.crm.outbox_rows import OutboxRows, Target
from bridge.store.calls import CallStore
from bridge.store.migrations import migrate
from bridge.tracker.model import CallRecord
from tests.integration.test_store import store_trace
from tests.unit.test_tracker_traces import run

pytestmark = pytest.mark.integration
SECRET = "s3cret"


def test_links_are_signed_and_expire() -> None:
    link = recording_link("https://pbx.example:8443/", SECRET, "1795346593.58", 2000000000)
    assert link.startswith(
        "https://pbx.example:8443/recordings/1795346593.58?expires=2000000000&sig="
    )
    sig = link.rsplit("sig=", 1)[1]
    assert link_is_valid(SECRET, "1795346593.58", "2000000000", sig, now=1.0) is None
    assert link_is_valid(SECRET, "1795346593.59", "2000000000", sig, 1.0) == "bad signature"
    assert link_is_valid(SECRET, "1795346593.58", "2000000001", sig, 1.0) == "bad signature"
    assert link_is_valid("other", "1795346593.58", "2000000000", sig, 1.0) == "bad signature"
    assert link_is_valid(SECRET, "1795346593.58", "2000000000", sig, 3e9) == "link expired"
    assert link_is_valid(SECRET, "1795346593.58", "soon", sig, 1.0) == "bad expiry"


async def test_recorded_call_gets_a_link_that_plays(pg_dsn: str, tmp_path: Path) -> None:
    _, outputs = run("in_recorded")
    (record,) = [o for o in outputs if isinstance(o, CallRecord)]
    spool = tmp_path / "monitor"
    spool.mkdir()
    wav = spool / Path(record.recording).name
    wav.write_bytes(b"RIFF....WAVEfmt fake audio")
    pool = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=4)
    async with pool.acquire() as conn:
        await migrate(conn)
    await store_trace(pool, "in_recorded")
    await pool.execute("UPDATE calls SET recording = $1", str(wav))  # the lab's path, here
    app = web.Application()
    add_recording_routes(app, CallStore(pool, "lab"), SECRET, str(spool))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    outbox = OutboxRows(
        "lab", link_for=lambda rec: recording_link(base, SECRET, rec.callid, int(time.time()) + 60)
    )
    (row,) = [r for r in outbox.rows([record], [_target()]) if r[3] == "history"]
    link = json.loads(row[6])["link"]
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(link) as resp:
                assert resp.status == 200 and resp.content_type == "audio/wav"
                assert await resp.read() == wav.read_bytes()
            async with http.get(link, headers={"Range": "bytes=abc"}) as resp:
                assert resp.status == 200 and await resp.read() == wav.read_bytes()
            async with http.get(link, headers={"Range": "bytes=1000-"}) as resp:
                assert resp.status == 416 and resp.headers["Content-Range"] == "bytes */26"
                assert (await resp.json())["message"]
            async with http.get(link.replace("sig=", "sig=x")) as resp:
                assert resp.status == 403 and (await resp.json())["message"] == "bad signature"
            # a signature that is not even ASCII: the same answer, not a 500
            async with http.get(link.split("sig=")[0] + "sig=%C3%A9") as resp:
                assert resp.status == 403 and (await resp.json())["message"] == "bad signature"
            expired = recording_link(base, SECRET, record.callid, int(time.time()) - 1)
            async with http.get(expired) as resp:
                assert resp.status == 403 and (await resp.json())["message"] == "link expired"
            await pool.execute("UPDATE calls SET recording = '/etc/passwd'")
            async with http.get(link) as resp:
                assert resp.status == 404, "only files under the recordings folder are served"
            other = recording_link(base, SECRET, "no.such", int(time.time()) + 60)
            async with http.get(other) as resp:
                assert resp.status == 404
    finally:
        await runner.cleanup()
        await pool.close()
    unrecorded = OutboxRows("lab", link_for=lambda rec: "should not be used")
    _, plain = run("in_answered")
    rows = unrecorded.rows([o for o in plain if isinstance(o, CallRecord)], [_target()])
    assert json.loads(rows[0][6])["link"] == ""


def _target() -> Target:
    return Target(
        id=1,
        pbx_id="lab",
        name="primary",
        url="http://x",
        token="",
        profile="vpbx",
        commands=frozenset({"history", "event"}),
        direction="both",
        signing_secret=None,
        enabled=True,
    )
