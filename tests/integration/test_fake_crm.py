"""The fake CRM the delivery tests rely on, checked with a real aiohttp client over TCP.

Why: the fault tests of the outbox are only as good as this receiver; if it parsed bodies
differently from real CRMs, or "went away" without the port really refusing, they would
prove nothing.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

from bridge.crm import profiles, signing
from bridge.devtools.fake_crm import LEGACY_FIELDS, FakeCrm
from tests.support.ports import free_port

TOKEN = "s3cret-token"
SECRET = "whsec_" + "c2lnbmluZy1zZWNyZXQtZm9yLXRlc3Rz"  # base64 of a test key

HISTORY: dict[str, object] = {
    "cmd": "history",
    "type": "in",
    "user": "ivan",
    "ext": "101",
    "groupRealName": "Sales",
    "telnum": "74951234567",
    "phone": "79161234567",
    "diversion": "",
    "start": "20240105T101500Z",
    "duration": 42,
    "wait": 7,
    "callid": "1704449700.17",
    "link": "",
    "status": "Success",
    "rating": "",
    "missedStatus": "",
}
EVENT: dict[str, object] = {
    "cmd": "event",
    "type": "INCOMING",
    "callid": "1704449700.17",
    "phone": "79161234567",
    "user": "ivan",
    "direction": "in",
    "diversion": "",
    "groupRealName": "Sales",
    "ext": "101",
    "telnum": "74951234567",
    "telnum_name": "main line",
}
RATING: dict[str, object] = {
    "cmd": "rating",
    "callid": "1704449700.17",
    "rating": 5,
    "phone": "79161234567",
    "user": "ivan",
    "ext": "101",
}


@pytest.fixture
async def crm() -> AsyncIterator[FakeCrm]:
    fake = FakeCrm(token=TOKEN)
    await fake.start(port=free_port())  # a port of its own: it goes away and comes back on it
    yield fake
    await fake.stop()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    # Like the delivery workers: no redirects followed, bounded time.
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        yield session


async def send(
    http: aiohttp.ClientSession,
    url: str,
    fields: dict[str, object],
    profile: str = "vpbx",
    token: str = TOKEN,
    extra: dict[str, str] | None = None,
    total: float = 2.0,
) -> tuple[int, str, dict[str, str]]:
    wire = profiles.encode(profile, fields, token)
    headers = {"Content-Type": wire.content_type, **wire.headers, **(extra or {})}
    async with http.post(
        url,
        data=wire.body,
        headers=headers,
        allow_redirects=False,
        timeout=aiohttp.ClientTimeout(total=total),
    ) as resp:
        return resp.status, await resp.text(), dict(resp.headers)


def signed(fields: dict[str, object], webhook_id: str, at: float | None = None) -> dict[str, str]:
    body = profiles.encode("vpbx", fields, TOKEN).body
    return signing.signature_headers(SECRET, webhook_id, int(at or time.time()), body)


# --- parsing ---------------------------------------------------------------------------------


async def test_form_body_is_parsed_like_the_receivers_do(
    crm: FakeCrm, http: aiohttp.ClientSession
) -> None:
    status, text, _ = await send(http, crm.url, HISTORY)
    assert (status, text) == (200, "{}")
    [got] = crm.received
    assert got.cmd == "history" and got.accepted
    assert got.fields == profiles.wire_fields("vpbx", HISTORY, TOKEN)
    assert got.fields["status"] == "Success" and got.fields["duration"] == "42"
    assert got.headers["x-crm-token"] == TOKEN
    assert got.body == profiles.encode("vpbx", HISTORY, TOKEN).body


async def test_json_body(crm: FakeCrm, http: aiohttp.ClientSession) -> None:
    assert (await send(http, crm.url, EVENT, profile="json"))[0] == 200
    [got] = crm.received
    assert got.fields == profiles.wire_fields("json", EVENT, TOKEN)
    assert got.headers["content-type"] == "application/json"


async def test_bad_bodies_are_refused(crm: FakeCrm, http: aiohttp.ClientSession) -> None:
    as_json = {"Content-Type": "application/json"}
    async with http.post(crm.url, data=b"{not json", headers=as_json) as r:
        assert r.status == 400 and "bad JSON" in await r.text()
    async with http.post(crm.url, data=b"[1]", headers=as_json) as r:
        assert r.status == 400
    as_text = {"Content-Type": "text/plain"}
    async with http.post(crm.url, data=b"cmd=history", headers=as_text) as r:
        assert r.status == 415
    assert [r.status_answered for r in crm.received] == [400, 400, 415]


# --- strict (vpbx-legacy) receivers -----------------------------------------------------------


def test_legacy_field_lists_follow_the_spec() -> None:
    assert set(LEGACY_FIELDS) == {"history", "event", "contact"}  # no rating in 2017
    assert {"rating", "wait", "missedStatus"}.isdisjoint(LEGACY_FIELDS["history"])
    assert {"direction", "telnum_name", "second_callid"}.isdisjoint(LEGACY_FIELDS["event"])
    assert LEGACY_FIELDS["contact"] == {"cmd", "crm_token", "phone", "callid"}


async def test_strict_receiver_takes_legacy_and_refuses_newer_fields(
    http: aiohttp.ClientSession,
) -> None:
    async with FakeCrm(token=TOKEN, strict=True) as crm:
        assert (await send(http, crm.url, HISTORY, profile="vpbx-legacy"))[0] == 200
        assert (await send(http, crm.url, EVENT, profile="vpbx-legacy"))[0] == 200
        status, text, _ = await send(http, crm.url, HISTORY, profile="vpbx")
        assert status == 400
        assert "missedStatus, rating, wait" in text
        status, text, _ = await send(http, crm.url, RATING, profile="vpbx")
        assert status == 400 and "unknown cmd 'rating'" in text


# --- token and signature ---------------------------------------------------------------------


async def test_token_in_body_or_header(crm: FakeCrm, http: aiohttp.ClientSession) -> None:
    assert (await send(http, crm.url, HISTORY, token="wrong"))[0] == 401
    # Body only (header wrong), header only (body wrong): real receivers read one of them.
    assert (await send(http, crm.url, HISTORY, extra={"X-CRM-Token": "x"}))[0] == 200
    assert (await send(http, crm.url, HISTORY, token="x", extra={"X-CRM-Token": TOKEN}))[0] == 200
    assert [r.status_answered for r in crm.received] == [401, 200, 200]


async def test_signature_is_checked(http: aiohttp.ClientSession) -> None:
    async with FakeCrm(token=TOKEN, signing_secret=SECRET) as crm:
        good = signed(HISTORY, "msg_1")
        assert (await send(http, crm.url, HISTORY, extra=good))[0] == 200
        assert crm.received[-1].webhook_id == "msg_1"
        assert (await send(http, crm.url, HISTORY))[0] == 401  # unsigned
        tampered = signed({**HISTORY, "duration": 43}, "msg_1")
        status, text, _ = await send(http, crm.url, HISTORY, extra=tampered)
        assert status == 401 and "signature" in text
        stale = signed(HISTORY, "msg_1", at=time.time() - 3600)
        status, text, _ = await send(http, crm.url, HISTORY, extra=stale)
        assert status == 401 and "timestamp" in text  # a retry must be signed anew


# --- faults ----------------------------------------------------------------------------------


async def test_fail_next_then_ok(crm: FakeCrm, http: aiohttp.ClientSession) -> None:
    crm.fail_next(2, status=503, retry_after="3")
    first = await send(http, crm.url, HISTORY)
    assert first[0] == 503 and first[2]["Retry-After"] == "3"
    assert (await send(http, crm.url, HISTORY))[0] == 503
    assert (await send(http, crm.url, HISTORY))[0] == 200
    hist = crm.history()
    assert [r.status_answered for r in hist.raw] == [503, 503, 200]
    assert len(hist.unique) == 1


async def test_faults_per_command(crm: FakeCrm, http: aiohttp.ClientSession) -> None:
    crm.fail_next(1, status=500, cmd="event")
    crm.set_mode(("status", 429), cmd="rating", retry_after="1")
    assert (await send(http, crm.url, HISTORY))[0] == 200
    assert (await send(http, crm.url, EVENT))[0] == 500
    assert (await send(http, crm.url, EVENT))[0] == 200
    status, _, headers = await send(http, crm.url, RATING)
    assert status == 429 and headers["Retry-After"] == "1"
    crm.set_mode(("status", 410))  # the global mode: the command's own mode still wins
    assert (await send(http, crm.url, HISTORY))[0] == 410
    assert (await send(http, crm.url, RATING))[0] == 429
    crm.reset()
    assert (await send(http, crm.url, RATING))[0] == 200


async def test_faults_come_before_auth(crm: FakeCrm, http: aiohttp.ClientSession) -> None:
    # A CRM that is down answers 503 whatever the token: the proxy in front does.
    crm.set_mode(("status", 503))
    assert (await send(http, crm.url, HISTORY, token="wrong"))[0] == 503
    with pytest.raises(ValueError):
        crm.set_mode(("status", 42))


async def test_hang_outlasts_a_client_timeout(crm: FakeCrm, http: aiohttp.ClientSession) -> None:
    crm.hang()
    with pytest.raises(TimeoutError):
        await send(http, crm.url, HISTORY, total=0.2)
    [hung] = crm.received
    assert hung.status_answered == 0 and not hung.accepted
    waiting = asyncio.create_task(send(http, crm.url, HISTORY))
    await crm.wait_count("history", 2, accepted=False)
    crm.release()  # the waiting client is cut, never answered
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await waiting
    assert (await send(http, crm.url, HISTORY))[0] == 200


async def test_slow_crm_processes_what_the_client_gave_up_on(
    crm: FakeCrm, http: aiohttp.ClientSession
) -> None:
    crm.delay(0.3)
    with pytest.raises(TimeoutError):
        await send(http, crm.url, HISTORY, total=0.1)
    assert crm.history().unique  # the CRM took it: the retry will be a duplicate
    crm.delay(0.0)
    assert (await send(http, crm.url, HISTORY))[0] == 200


async def test_go_away_refuses_then_come_back_accepts(
    crm: FakeCrm, http: aiohttp.ClientSession
) -> None:
    url = crm.url
    assert (await send(http, url, HISTORY))[0] == 200  # a keep-alive connection now open
    crm.hang()
    hung = asyncio.create_task(send(http, url, EVENT))
    await crm.wait_count("event", 1, accepted=False)
    await crm.go_away()
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await hung  # open connections are dropped
    with pytest.raises(aiohttp.ClientConnectorError) as refused:
        await send(http, url, HISTORY)
    assert isinstance(refused.value.os_error, ConnectionRefusedError)
    await crm.come_back()
    crm.release()
    assert crm.url == url
    assert (await send(http, url, HISTORY))[0] == 200


async def test_start_on_a_given_port_and_stop_twice() -> None:
    first = FakeCrm()
    url = await first.start(port=free_port())
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    await first.stop()
    again = FakeCrm()
    assert await again.start(port=port) == url
    await again.stop()
    await again.stop()


# --- contact answers -------------------------------------------------------------------------


async def test_contact_answers(http: aiohttp.ClientSession) -> None:
    contact: dict[str, object] = {"cmd": "contact", "phone": "79161234567", "callid": "c1"}
    answer: dict[str, object] = {"contact_name": "Пётр Иванов", "responsible": "101"}
    async with FakeCrm(contact_answer=answer) as crm:
        status, text, headers = await send(http, crm.url, contact)
        assert status == 200 and json.loads(text) == answer
        assert headers["Content-Type"].startswith("application/json")
        crm.contact_answer = "{contact_name: 'Lenient'}"  # what some CRMs really answer
        assert (await send(http, crm.url, contact))[1] == "{contact_name: 'Lenient'}"
        crm.contact_answer = {}
        assert (await send(http, crm.url, contact))[1] == "{}"


# --- helpers ---------------------------------------------------------------------------------


async def test_dedup_views_by_webhook_id(http: aiohttp.ClientSession) -> None:
    async with FakeCrm(signing_secret=SECRET) as crm:
        crm.fail_next(1, status=502, cmd="event")
        for fields, wid in [
            (EVENT, "e1"),
            (EVENT, "e1"),
            (EVENT, "e1"),
            ({**EVENT, "type": "ACCEPTED"}, "e2"),
            (HISTORY, "h1"),
            (HISTORY, "h1"),
        ]:
            await send(http, crm.url, fields, extra=signed(fields, wid))
        assert [r.status_answered for r in crm.requests("event")] == [502, 200, 200, 200]
        by_call = crm.events_by_call()
        assert [r.fields["type"] for r in by_call["1704449700.17"]] == ["INCOMING", "ACCEPTED"]
        hist = crm.history()
        assert len(hist.raw) == 2 and [r.webhook_id for r in hist.unique] == ["h1"]


async def test_wait_count_and_a_helpful_timeout(crm: FakeCrm, http: aiohttp.ClientSession) -> None:
    later = asyncio.create_task(send(http, crm.url, HISTORY))
    got = await crm.wait_count("history", 1, timeout=2.0)
    assert got[0].fields["callid"] == "1704449700.17"
    await later
    with pytest.raises(TimeoutError, match=r"received \[\('history', 200\)\]"):
        await crm.wait_for(lambda: len(crm.received) > 5, timeout=0.05)


async def test_print_payloads(
    http: aiohttp.ClientSession, capsys: pytest.CaptureFixture[str]
) -> None:
    async with FakeCrm(token=TOKEN, print_payloads=True) as crm:
        await send(http, crm.url, EVENT)
    [line] = capsys.readouterr().out.splitlines()
    shown = json.loads(line)
    assert shown["answered"] == 200 and shown["type"] == "INCOMING"
    assert "crm_token" not in shown
