"""The Sangoma CRM REST dialect (`/admin/api/sangomacrm/rest`) as its clients use it."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from bridge.store import directory
from tests.support.api import Api

pytestmark = pytest.mark.integration

P = "/admin/api/sangomacrm/rest"
CALL_FIELDS = [
    "uuid",
    "linkedid",
    "direction",
    "src",
    "dst",
    "did",
    "customer",
    "extension",
    "user",
    "group",
    "calldate",
    "start",
    "answer",
    "end",
    "duration",
    "billsec",
    "disposition",
    "status",
    "missed",
    "recordingfile",
]


async def token(api: Api) -> dict[str, str]:
    return {"Token": await api.key("sangoma-crm", dialects=["sangoma"])}


async def get(api: Api, path: str, headers: dict[str, str]) -> tuple[int, object]:
    async with api.http.get(P + path, headers=headers) as r:
        return r.status, await r.json()


async def test_the_token_header_and_nothing_else(api: Api) -> None:
    good = await token(api)
    vpbx_key = await api.key("vpbx-only", dialects=["vpbx"])
    revoked = await api.key("gone")
    async with api.pool.acquire() as conn:
        from bridge.store.apikeys import revoke_key

        await revoke_key(conn, "lab", "gone")
    api.services.keys.forget()
    for headers, message in (
        ({}, "A Token header is needed"),
        ({"Token": ""}, "A Token header is needed"),
        ({"Authorization": f"Bearer {good['Token']}"}, "A Token header is needed"),
        ({"X-API-KEY": good["Token"]}, "A Token header is needed"),
        ({"Token": "deea523f59d507ca7a592320f92faf0132b777b85f032a016c016b124ce6d4c5"}, None),
        ({"Token": vpbx_key}, None),  # a key of another dialect
        ({"Token": revoked}, None),
        ({"Token": good["Token"][:-2]}, None),
    ):
        for path in ("/calls/list", "/users/extension/1001", "/webhooks"):
            status, body = await get(api, path, headers)
            assert status == 401, (headers, path)
            assert body == {"status": False, "message": message or "Invalid Token"}
    status, _ = await get(api, "/calls/list", good)
    assert status == 200


async def test_a_call_by_any_uniqueid_of_its_channels(api: Api) -> None:
    h = await token(api)
    # in_queue: the trunk leg (the call id), a Local half and the answering phone
    for uniqueid in ("1795346445.14", "1795346446.16", "1795346446.20"):
        status, call = await get(api, f"/calls/{uniqueid}", h)
        assert status == 200, uniqueid
        assert isinstance(call, dict) and list(call) == CALL_FIELDS
        assert call["uuid"] == "1795346445.14"
    assert call == {
        "uuid": "1795346445.14",
        "linkedid": "1795346445.14",
        "direction": "inbound",
        "src": "79101234567",
        "dst": "1002",
        "did": "74957654324",
        "customer": "79101234567",
        "extension": "1002",
        "user": "1002",
        "group": "sales",
        "calldate": "2026-11-22 11:20:45",
        "start": 1795346445,
        "answer": 1795346449,
        "end": 1795346451,
        "duration": 6,
        "billsec": 2,
        "disposition": "ANSWERED",
        "status": "Success",
        "missed": False,
        "recordingfile": "",
    }
    for missing in ("1.2", "no-such-call", "x" * 65, "%00"):
        status, body = await get(api, f"/calls/{missing}", h)
        assert status == 404 and body == {"status": False, "message": "Call not found"}


async def test_calls_outbound_and_missed(api: Api) -> None:
    h = await token(api)
    _, busy = await get(api, "/calls/1795346530.42", h)  # out_busy
    assert isinstance(busy, dict)
    assert (busy["direction"], busy["src"], busy["dst"]) == ("outbound", "1001", "79261234567")
    assert (busy["disposition"], busy["status"], busy["answer"]) == ("BUSY", "Busy", None)
    _, missed = await get(api, "/calls/1795346424.4", h)  # in_noanswer
    assert isinstance(missed, dict)
    assert missed["missed"] is True and missed["disposition"] == "NO ANSWER"
    assert missed["billsec"] == 0 and missed["duration"] == 5


async def test_call_lists_by_direction_since_limit_offset(api: Api) -> None:
    h = await token(api)
    every = await api.pool.fetch(
        "SELECT callid, direction, started_at FROM calls WHERE pbx_id = 'lab' "
        "AND status IS NOT NULL AND direction <> 'internal' ORDER BY started_at, callid"
    )
    _, both = await get(api, "/calls/list/both", h)
    assert isinstance(both, list)
    assert [c["uuid"] for c in both] == [r["callid"] for r in every], "oldest first"
    assert (await get(api, "/calls/list", h))[1] == both
    assert (await get(api, "/calls/list/", h))[1] == both
    _, inbound = await get(api, "/calls/list/inbound", h)
    _, outbound = await get(api, "/calls/list/outbound", h)
    assert isinstance(inbound, list) and isinstance(outbound, list)
    assert {c["direction"] for c in inbound} == {"inbound"}
    assert {c["direction"] for c in outbound} == {"outbound"}
    assert len(inbound) + len(outbound) == len(both)
    since = int(every[10]["started_at"].timestamp()) + 1
    later = [r["callid"] for r in every if r["started_at"].timestamp() >= since]
    _, page = await get(api, f"/calls/list/both/{since}", h)
    assert isinstance(page, list) and [c["uuid"] for c in page] == later
    _, page = await get(api, f"/calls/list/both/{since}/3", h)
    assert isinstance(page, list) and [c["uuid"] for c in page] == later[:3]
    _, page = await get(api, f"/calls/list/both/{since}/3/2", h)
    assert isinstance(page, list) and [c["uuid"] for c in page] == later[2:5]
    _, page = await get(api, "/calls/list/both/0/999/100000", h)
    assert page == []


async def test_call_lists_by_query_string_trailing_slash_and_a_capped_limit(api: Api) -> None:
    """The reference's optional parts as a query string too (the path wins when both are
    given); a trailing slash changes nothing; `limit` has no maximum, so a big one is capped
    at the bridge's page size rather than refused."""
    h = await token(api)
    _, both = await get(api, "/calls/list/both", h)
    assert isinstance(both, list) and len(both) > 12
    since = both[10]["start"] + 1
    later = [c for c in both if c["start"] >= since]
    for path, expected in (
        ("/calls/list?since=0&limit=2&offset=1", both[1:3]),
        (f"/calls/list/both?since={since}", later),
        (f"/calls/list/both?since={since}&limit=3&offset=2", later[2:5]),
        (f"/calls/list/both/{since}?limit=3&offset=2", later[2:5]),
        (f"/calls/list/both/{since}/3/2?since=0&limit=1&offset=0", later[2:5]),
        ("/calls/list/", both),
        ("/calls/list/both/", both),
        ("/calls/list/both/0/1/", both[:1]),
        (f"/calls/list/both/{since}/3/2/", later[2:5]),
        (f"/calls/list/both//{since}", later),  # one slash, as Apache reads it
        ("/calls/list/both/0/10001", both),
        ("/calls/list/both/0/99999999999999999999", both),
        ("/calls/list?limit=10001", both),
    ):
        status, page = await get(api, path, h)
        assert status == 200, (path, page)
        assert page == expected, path
    _, inbound = await get(api, "/calls/list/inbound", h)
    assert (await get(api, "/calls/list/inbound/", h))[1] == inbound
    for path, named in (
        ("/calls/list?limit=x", "limit"),
        ("/calls/list?since=-1", "since"),
        ("/calls/list?offset=1.5", "offset"),
        ("/calls/list?limit=0", "limit"),
    ):
        status, body = await get(api, path, h)
        assert status == 400 and isinstance(body, dict) and named in body["message"], path


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/calls/list/sideways", 400),
        ("/calls/list/both/yesterday", 400),
        ("/calls/list/both/-5", 400),
        ("/calls/list/both/1.5", 400),
        ("/calls/list/both/0/0", 400),
        ("/calls/list/both/0/10/-1", 400),
        ("/calls/list/both/99999999999999999999", 400),
        ("/calls/list/both/0/10/0/extra", 404),
        ("/nothing/here", 404),
    ],
)
async def test_bad_path_parts_are_4xx_with_a_message(api: Api, path: str, status: int) -> None:
    got, body = await get(api, path, await token(api))
    assert got == status
    assert isinstance(body, dict) and body["status"] is False and body["message"]


async def test_recordings_are_octet_streams_from_the_recordings_folder(
    api: Api, tmp_path: Path
) -> None:
    h = await token(api)
    monitor = tmp_path / "monitor"
    monitor.mkdir()
    api.services.settings.api.recordings_dir = str(monitor)
    wav = monitor / "call.wav"
    wav.write_bytes(b"RIFF" + bytes(range(256)) * 4)
    await api.pool.execute(
        "UPDATE calls SET recording = $1 WHERE pbx_id = 'lab' AND callid = '1795346593.58'",
        str(wav),
    )
    async with api.http.get(f"{P}/calls/recording/1795346593.59", headers=h) as r:
        assert r.status == 200
        assert r.headers["Content-Type"] == "application/octet-stream"
        assert 'filename="call.wav"' in r.headers["Content-Disposition"]
        assert await r.read() == wav.read_bytes()
    _, call = await get(api, "/calls/1795346593.58", h)
    assert isinstance(call, dict) and call["recordingfile"] == "call.wav"
    # no recording; a file gone; a path outside the folder (never served)
    outside = tmp_path / "secret.wav"
    outside.write_bytes(b"x")
    for callid, recording, message in (
        ("1795346414.0", "", "No recording for this call"),
        ("1795346593.58", str(monitor / "gone.wav"), "Recording file not found"),
        ("1795346593.58", str(monitor / ".." / "secret.wav"), "Recording file not found"),
    ):
        await api.pool.execute(
            "UPDATE calls SET recording = $1 WHERE pbx_id = 'lab' AND callid = $2",
            recording,
            callid,
        )
        status, body = await get(api, f"/calls/recording/{callid}", h)
        assert status == 404 and body == {"status": False, "message": message}


def leave_voicemail(
    spool: Path, box: str, n: int, *, origtime: int, callerchan: str, callerid: str
) -> Path:
    folder = spool / "default" / box / "INBOX"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"msg{n:04d}.txt").write_text(
        ";\n; Message Information file\n;\n[message]\norigmailbox=1001\ncontext=from-trunk\n"
        f"macrocontext=\nexten=s\nrdnis=unknown\npriority=2\ncallerchan={callerchan}\n"
        f"callerid={callerid}\norigdate=Sun Nov 22 11:20:27 AM UTC 2026\n"
        f"origtime={origtime}\ncategory=\nmsg_id={origtime}-0000000{n}\nflag=\nduration=3\n"
    )
    audio = folder / f"msg{n:04d}.wav"
    audio.write_bytes(b"RIFF" + str(n).encode() * 100)
    return audio


async def test_voicemail_of_a_call_from_the_spool(api: Api, tmp_path: Path) -> None:
    """in_noanswer (1795346424.4, 11:20:24.8-11:20:29.9, PJSIP/trunk-00000004 rang 1001)
    gets a message in 1001's box; other messages must not be taken for it."""
    h = await token(api)
    api.services.settings.api.recordings_dir = str(tmp_path / "monitor")
    spool = tmp_path / "voicemail"
    caller = '"+79101234567" <+79101234567>'
    # someone else's message at the same time; the same caller an hour earlier
    leave_voicemail(
        spool,
        "1001",
        0,
        origtime=1795346427,
        callerchan="PJSIP/trunk-0000ffff",
        callerid='"x" <+79990000000>',
    )
    leave_voicemail(
        spool, "1001", 1, origtime=1795342800, callerchan="PJSIP/trunk-00000004", callerid=caller
    )
    status, body = await get(api, "/calls/voicemail/1795346424.4", h)
    assert status == 404 and body == {"status": False, "message": "No voicemail for this call"}
    mine = leave_voicemail(
        spool, "1001", 2, origtime=1795346427, callerchan="PJSIP/trunk-00000004", callerid=caller
    )
    audio = mine.read_bytes()
    for uniqueid in ("1795346424.4", "1795346424.5"):
        async with api.http.get(f"{P}/calls/voicemail/{uniqueid}", headers=h) as r:
            assert r.status == 200
            assert r.headers["Content-Type"] == "application/octet-stream"
            assert await r.read() == audio
    # heard messages move to Old; a mailbox that is not the extension is found too
    old = spool / "default" / "1001" / "Old"
    (spool / "default" / "1001" / "INBOX").rename(old)
    async with api.http.get(f"{P}/calls/voicemail/1795346424.4", headers=h) as r:
        assert r.status == 200 and await r.read() == audio
    other = spool / "other" / "2000"
    other.parent.mkdir()
    (spool / "default" / "1001").rename(other)
    async with api.http.get(f"{P}/calls/voicemail/1795346424.4", headers=h) as r:
        assert r.status == 200 and await r.read() == audio
    # matched by the caller's number when the channel is not written
    in_busy = leave_voicemail(
        spool, "1001", 3, origtime=1795346437, callerchan="", callerid="<+79101234567>"
    )
    async with api.http.get(f"{P}/calls/voicemail/1795346437.8", headers=h) as r:
        assert r.status == 200 and await r.read() == in_busy.read_bytes()
    status, _ = await get(api, "/calls/voicemail/1795346414.0", h)
    assert status == 404


async def test_users_in_userman_shape(api: Api) -> None:
    h = await token(api)
    await directory.upsert_user(
        api.pool,
        "lab",
        directory.User(
            "ivan",
            name="Ivan Petrov",
            ext="1001",
            telnum="74957654300",
            mobile="79161112233",
            email="ivan@example.com",
            position="Sales Manager",
        ),
    )
    await directory.upsert_user(api.pool, "lab", directory.User("olga", ext="1002"))
    status, ivan = await get(api, "/users/extension/1001", h)
    assert status == 200 and isinstance(ivan, dict)
    assert ivan == {
        "id": ivan["id"],
        "auth": "freepbx",
        "authid": None,
        "username": "ivan",
        "description": None,
        "password": "Hidden",
        "default_extension": "1001",
        "primary_group": None,
        "permissions": None,
        "fname": "Ivan",
        "lname": "Petrov",
        "displayname": "Ivan Petrov",
        "title": "Sales Manager",
        "company": None,
        "department": None,
        "email": "ivan@example.com",
        "cell": "79161112233",
        "work": "74957654300",
        "home": None,
        "fax": None,
    }
    assert ivan["id"].isdigit()
    assert (await get(api, f"/users/id/{ivan['id']}", h)) == (200, ivan)
    # learnt again from Asterisk: the same id
    await directory.upsert_user(api.pool, "lab", directory.User("ivan", ext="1001"))
    assert (await get(api, f"/users/id/{ivan['id']}", h))[1]["id"] == ivan["id"]  # type: ignore[index]
    status, olga = await get(api, "/users/extension/1002", h)
    assert status == 200 and isinstance(olga, dict) and olga["id"] != ivan["id"]
    assert olga["password"] == "Hidden" and olga["displayname"] is None
    for path in ("/users/extension/9999", "/users/id/0", "/users/id/abc", "/users/id/" + "9" * 30):
        status, body = await get(api, path, h)
        assert status == 404 and body == {"status": False, "message": "User not found"}


async def test_webhooks_are_created_listed_changed_and_deleted(api: Api) -> None:
    h = await token(api)
    made = []
    for url, direction in (
        ("https://crm.example.com/in", "inbound"),
        ("https://crm.example.com/out", "outbound"),
        ("https://crm.example.com/all", None),
    ):
        body = {"url": url} | ({"direction": direction} if direction else {})
        async with api.http.post(f"{P}/webhooks", json=body, headers=h) as r:
            assert r.status == 200
            hook = await r.json()
        assert hook == {"id": hook["id"], "url": url, "direction": direction or "both"}
        made.append(hook)
    async with api.http.post(
        f"{P}/webhooks/", data={"url": "http://10.0.0.5/hook", "direction": "inbound"}, headers=h
    ) as r:
        assert r.status == 200, "a form body and the trailing slash of the docs work too"
        made.append(await r.json())
    assert (await get(api, "/webhooks", h)) == (200, made)
    assert (await get(api, "/webhooks/all", h)) == (200, made)
    assert (await get(api, "/webhooks/inbound", h)) == (200, [made[0], made[3]])
    assert (await get(api, "/webhooks/outbound", h)) == (200, [made[1]])
    assert (await get(api, "/webhooks/both", h)) == (200, [made[2]])
    assert (await get(api, f"/webhooks/{made[1]['id']}", h)) == (200, made[1])
    # they are outbox targets of profile sangoma, receiving what the config says
    stored = await api.pool.fetch(
        "SELECT profile, commands, direction FROM webhook_targets ORDER BY id"
    )
    assert [r["direction"] for r in stored] == ["in", "out", "both", "in"]
    assert {r["profile"] for r in stored} == {"sangoma"}
    assert all(r["commands"] == ["call_start", "call_end"] for r in stored)

    async with api.http.patch(
        f"{P}/webhooks/{made[0]['id']}", json={"url": "https://crm.example.com/new"}, headers=h
    ) as r:
        assert r.status == 200
        assert await r.json() == {
            "id": made[0]["id"],
            "url": "https://crm.example.com/new",
            "direction": "inbound",
        }
    async with api.http.patch(
        f"{P}/webhooks/{made[0]['id']}",
        json={"url": "https://crm.example.com/new", "direction": "both"},
        headers=h,
    ) as r:
        assert (await r.json())["direction"] == "both"
    async with api.http.delete(f"{P}/webhooks/{made[1]['id']}", headers=h) as r:
        assert r.status == 200 and (await r.json())["status"] is True
    for method in ("GET", "PATCH", "DELETE"):
        async with api.http.request(
            method, f"{P}/webhooks/{made[1]['id']}", json={"url": "http://x.example"}, headers=h
        ) as r:
            assert r.status == 404, method
            assert await r.json() == {"status": False, "message": "Webhook not found"}
    assert len((await get(api, "/webhooks", h))[1]) == 3  # type: ignore[arg-type]


async def test_other_subscriptions_are_not_sangoma_webhooks(api: Api) -> None:
    from bridge.store.targets import Subscription, add_target

    h = await token(api)
    async with api.pool.acquire() as conn:
        other = await add_target(conn, "lab", Subscription("billing", "https://b.example/x"))
    assert (await get(api, "/webhooks", h)) == (200, [])
    for method in ("GET", "PATCH", "DELETE"):
        async with api.http.request(
            method, f"{P}/webhooks/{other}", json={"url": "http://x.example"}, headers=h
        ) as r:
            assert r.status == 404, method
    assert await api.pool.fetchval("SELECT url FROM webhook_targets") == "https://b.example/x"


BAD_DIRECTION = "direction must be inbound, outbound or both"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "The body is not valid JSON"),
        (b"[" * 5000, "The body is not valid JSON"),  # nested deeper than the parser goes
        (b"[1, 2]", "The body must be a JSON object with url and direction"),
        (b"{}", "url is required"),
        (b'{"url": 5}', "url must be a string"),
        (b'{"url": ["http://x.example"]}', "url must be a string"),
        (b'{"url": "ftp://x.example/a"}', "url must be an http(s) URL"),
        (b'{"url": "javascript:alert(1)"}', "url must be an http(s) URL"),
        (b'{"url": "http://x.example/' + b"a" * 600 + b'"}', "url must be at most 512 characters"),
        (b'{"url": "http://x.example", "direction": "sideways"}', BAD_DIRECTION),
        (b'{"url": "http://x.example", "direction": 1}', BAD_DIRECTION),
        (b"\xff\xfe", "The body is not valid JSON"),
    ],
)
async def test_bad_webhook_bodies_are_400(api: Api, body: bytes, message: str) -> None:
    h = await token(api) | {"Content-Type": "application/json"}
    async with api.http.post(f"{P}/webhooks", data=body, headers=h) as r:
        assert r.status == 400
        assert await r.json() == {"status": False, "message": message}
    async with api.http.post(f"{P}/webhooks", json={"url": "http://x.example/ok"}, headers=h) as r:
        hook = await r.json()
    async with api.http.patch(f"{P}/webhooks/{hook['id']}", data=body, headers=h) as r:
        assert r.status in (400, 200)  # direction may be left out on PATCH
        if r.status == 400:
            assert (await r.json())["status"] is False
    assert await api.pool.fetchval("SELECT count(*) FROM webhook_targets") == 1


async def test_huge_bodies_and_odd_methods(api: Api) -> None:
    h = await token(api)
    async with api.http.post(
        f"{P}/webhooks", data=io.BytesIO(b"{" + b" " * (2 << 20)), headers=h
    ) as r:
        assert r.status == 413 and (await r.json())["status"] is False
    async with api.http.put(f"{P}/webhooks/1", json={}, headers=h) as r:
        assert r.status == 405 and (await r.json())["status"] is False
    async with api.http.delete(f"{P}/calls/1795346414.0", headers=h) as r:
        assert r.status == 405
