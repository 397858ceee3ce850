"""`/crmapi/v1/history/*` against the lab's recorded calls: shapes, filters, the period
rules of section 4.5, CSV, recording links, the directory's names."""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest

from bridge.crm.links import link_is_valid
from tests.support.api import Api
from tests.support.traces import expected, scenario_names
from tests.support.vpbx import CALLS_DAY, EVERYTHING, seed_directory, set_clock

pytestmark = pytest.mark.integration

ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
STATUS = {
    "Success": "success",
    "missed": "missed",
    "Cancel": "cancel",
    "Busy": "busy",
    "NotAvailable": "notavailable",
    "NotAllowed": "notallowed",
    "NotFound": "notfound",
}
FIELDS = {
    "uid": str,
    "type": str,
    "status": str,
    "client": str,
    "account": str,
    "diversion": str,
    "destination": str,
    "user": str,
    "user_name": str,
    "group_name": str,
    "start": str,
    "wait": int,
    "duration": int,
    "record": str,
}


def expected_calls() -> list[dict[str, Any]]:
    return [c["history"] for n in scenario_names() for c in expected(n)["calls"]]


def outcomes(calls: list[dict[str, Any]]) -> Counter[tuple[str, str, str, str]]:
    """What each call was, as the expected files say it: type, status, customer, ext."""
    return Counter((c["type"], c["status"], c["client"], c["ext"]) for c in calls)


def want(select=lambda h: True) -> Counter[tuple[str, str, str, str]]:
    return Counter(
        (h["type"], STATUS[h["status"]], h["phone"], h["ext"] or "")
        for h in expected_calls()
        if select(h)
    )


async def get(api: Api, path: str, key: str, **params: str) -> Any:
    async with api.http.get(f"/crmapi/v1/{path}", params=params, headers={"X-API-KEY": key}) as r:
        assert r.status == 200, (path, params, r.status, await r.text())
        if r.content_type == "text/csv":
            return await r.text()
        return await r.json()


async def history(api: Api, key: str, **params: str) -> list[dict[str, Any]]:
    calls = await get(api, "history/json", key, **params)
    assert isinstance(calls, list), "history/json is a bare array"
    return calls


def as_ext_rows(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Without a directory the employee's login is the extension."""
    return [{**c, "ext": c["user"]} for c in calls]


async def test_every_external_call_once_newest_first(api: Api, monkeypatch) -> None:
    set_clock(monkeypatch, CALLS_DAY)
    key = await api.key("crm")
    calls = await history(api, key)  # no period, start or end: today
    assert outcomes(as_ext_rows(calls)) == want()
    assert len({c["uid"] for c in calls}) == len(calls)
    assert [c["start"] for c in calls] == sorted((c["start"] for c in calls), reverse=True)
    for c in calls:
        for name, kind in FIELDS.items():
            assert isinstance(c[name], kind), (name, c)
        assert ISO.match(c["start"]), c["start"]
        assert c["type"] in ("in", "out") and c["account"] == c["user"]
        assert "rating" not in c and "missedStatus" not in c, "left out when empty"
        assert c["user_name"] == "" and c["record"] == ""
        assert (c["duration"] > 0) == (c["status"] == "success"), c


@pytest.mark.parametrize(
    ("kind", "select"),
    [
        ("all", lambda h: True),
        ("in", lambda h: h["type"] == "in"),
        ("out", lambda h: h["type"] == "out"),
        ("missed", lambda h: h["type"] == "in" and h["status"] == "missed"),
    ],
)
async def test_type_selects_exactly_its_calls(api: Api, monkeypatch, kind, select) -> None:
    set_clock(monkeypatch, CALLS_DAY)
    key = await api.key("crm")
    calls = await history(api, key, type=kind, **EVERYTHING)
    assert outcomes(as_ext_rows(calls)) == want(select)
    assert await get(api, "history/json", key, type=kind, period="today") == calls


async def test_destination_says_where_an_inbound_call_ended(api: Api, monkeypatch) -> None:
    set_clock(monkeypatch, CALLS_DAY)
    key = await api.key("crm")
    calls = await history(api, key)
    for c in calls:
        if c["type"] == "out":
            assert c["destination"] == ""
        elif c["status"] == "success":
            assert c["destination"] == "user" and c["user"]
        elif c["group_name"]:
            assert c["destination"] == "group"
        else:
            assert c["destination"] == ("user" if c["user"] else "hello")
    abandoned = [c for c in calls if c["group_name"] == "sales" and not c["user"]]
    assert abandoned and all(c["destination"] == "group" for c in abandoned)


async def test_limit_user_client_and_diversion_filters(api: Api, monkeypatch) -> None:
    set_clock(monkeypatch, CALLS_DAY)
    key = await api.key("crm")
    every = await history(api, key)
    assert await history(api, key, limit="3") == every[:3]
    assert await history(api, key, user="1002") == [c for c in every if c["user"] == "1002"]
    assert await history(api, key, user="1001,1002") == [
        c for c in every if c["user"] in ("1001", "1002")
    ]
    one = await history(api, key, client="+7 (910) 111-00-01")
    assert [c["client"] for c in one] == ["79101110001"]
    by_number = await history(api, key, diversion="8 495 765-43-24")
    assert by_number and by_number == [c for c in every if c["diversion"] == "74957654324"]
    assert await history(api, key, client="79000000000") == []


async def test_history_names_employees_from_the_directory(api: Api, monkeypatch) -> None:
    set_clock(monkeypatch, CALLS_DAY)
    key = await api.key("crm")
    before = await history(api, key)
    await seed_directory(api.pool)
    after = await history(api, key)
    logins = {"1001": ("anna", "Anna Petrova"), "1002": ("boris", "Boris Ivanov"), "": ("", "")}
    assert len(after) == len(before)
    for b, a in zip(before, after, strict=True):
        assert (a["user"], a["user_name"]) == logins[b["user"]]
        assert a["account"] == a["user"]
    names = {c["diversion"]: c["telnum_name"] for c in after}
    assert names["74957654321"] == "Main line" and names["74957654324"] == "Sales"
    by_login = await history(api, key, user="anna")
    assert by_login == [c for c in after if c["user"] == "anna"]
    assert await history(api, key, user="1001") == by_login, "an extension finds its login"


async def test_missed_status_filters(api: Api, monkeypatch) -> None:
    set_clock(monkeypatch, CALLS_DAY)
    key = await api.key("crm")
    every = await history(api, key)
    callback = next(c for c in every if c["type"] == "out" and c["status"] == "success")
    await api.pool.execute(
        "UPDATE calls SET missed_status = 2 WHERE pbx_id = 'lab' AND callid = $1",
        callback["uid"],
    )
    marked = await history(api, key, missedStatus="2")
    assert [c["uid"] for c in marked] == [callback["uid"]] and marked[0]["missedStatus"] == 2
    async with api.http.get(
        "/crmapi/v1/history/json?processMissed=true&missedStatus=2&missedStatus=3",
        headers={"X-API-KEY": key},
    ) as resp:
        assert [c["uid"] for c in await resp.json()] == [callback["uid"]]
    assert await history(api, key, processMissed="true") == marked
    rest = await history(api, key, processMissed="false")
    assert len(rest) == len(every) - 1 and callback["uid"] not in {c["uid"] for c in rest}
    assert await history(api, key, missedStatus="3") == []


async def test_rating_and_missed_status_are_numbers_left_out_when_empty(
    api: Api, monkeypatch
) -> None:
    """Section 4.2 types both as numbers and its example has neither: no nulls."""
    set_clock(monkeypatch, CALLS_DAY)
    key = await api.key("crm")
    every = await history(api, key)
    assert all("rating" not in c and "missedStatus" not in c for c in every)
    uid = every[0]["uid"]
    await api.pool.execute(
        "UPDATE calls SET rating = 4, missed_status = 2 WHERE pbx_id = 'lab' AND callid = $1",
        uid,
    )
    rated = {c["uid"]: c for c in await history(api, key)}[uid]
    assert (rated["rating"], rated["missedStatus"]) == (4, 2)


def started(calls: list[dict[str, Any]], since: str, until: str) -> list[dict[str, Any]]:
    """The calls a half-open window holds (bounds in whole seconds, ISO with Z)."""
    return [c for c in calls if since <= c["start"] < until]


async def test_period_wins_over_start_and_end(api: Api, monkeypatch) -> None:
    set_clock(monkeypatch, datetime(2026, 11, 23, 10, 0, tzinfo=UTC))
    key = await api.key("crm")
    every = await history(api, key, **EVERYTHING)
    assert every
    far = {"start": "20200101T000000Z", "end": "20200102T000000Z"}
    assert await history(api, key, period="yesterday", **far) == every
    assert await history(api, key, period="today", **EVERYTHING) == []


async def test_start_and_end_bound_the_calls(api: Api, monkeypatch) -> None:
    set_clock(monkeypatch, datetime(2026, 11, 23, 10, 0, tzinfo=UTC))
    key = await api.key("crm")
    every = await history(api, key, **EVERYTHING)
    window = await history(api, key, start="20261122T112200Z", end="20261122T112300Z")
    assert window == started(every, "2026-11-22T11:22:00Z", "2026-11-22T11:23:00Z")
    assert window and len(window) < len(every)
    iso = await history(api, key, start="2026-11-22T14:22:00+03:00", end="2026-11-22T11:23:00Z")
    assert iso == window, "ISO 8601 with an offset is the same instant"
    async with api.http.get(
        "/crmapi/v1/history/json?start=20261122T112300Z&end=20261122T112200Z",
        headers={"X-API-KEY": key},
    ) as resp:
        assert resp.status == 400 and "start" in (await resp.json())["message"]


async def test_no_end_means_now(api: Api, monkeypatch) -> None:
    set_clock(monkeypatch, datetime(2026, 11, 22, 11, 22, 30, tzinfo=UTC))
    key = await api.key("crm")
    every = await history(api, key, **EVERYTHING)
    calls = await history(api, key, start="20261122T112200Z")
    assert calls == started(every, "2026-11-22T11:22:00Z", "2026-11-22T11:22:30Z")
    assert calls and len(calls) < len(started(every, "2026-11-22T11:22:00Z", "9999"))


async def test_no_start_means_the_start_of_ends_day(api: Api, monkeypatch) -> None:
    set_clock(monkeypatch, datetime(2026, 11, 25, 10, 0, tzinfo=UTC))
    key = await api.key("crm")
    every = await history(api, key, **EVERYTHING)
    calls = await history(api, key, end="20261122T112200Z")
    assert calls == started(every, "2026-11-22T00:00:00Z", "2026-11-22T11:22:00Z")
    assert calls and all(c["type"] == "in" for c in calls)
    assert await history(api, key, end="20261122T235959Z") == every
    assert await history(api, key, end="20261123T000000Z") == [], "a day that just began"


async def test_nothing_given_means_today_in_the_pbx_time_zone(api: Api, monkeypatch) -> None:
    key = await api.key("crm")
    set_clock(monkeypatch, datetime(2026, 11, 22, 23, 0, tzinfo=UTC))
    every = await history(api, key)
    assert len(every) == sum(want().values())
    set_clock(monkeypatch, datetime(2026, 11, 23, 1, 0, tzinfo=UTC))
    assert await history(api, key) == [], "the next UTC day"
    moscow = ZoneInfo("Europe/Moscow")  # 22:00 UTC is already the 23rd there
    set_clock(monkeypatch, datetime(2026, 11, 22, 22, 0, tzinfo=UTC), moscow)
    assert await history(api, key) == []
    assert await history(api, key, period="yesterday") == every
    new_york = ZoneInfo("America/New_York")  # 03:00 UTC on the 23rd is still the 22nd there
    set_clock(monkeypatch, datetime(2026, 11, 23, 3, 0, tzinfo=UTC), new_york)
    assert await history(api, key) == every


@pytest.mark.parametrize(
    ("now", "period", "all_of_them"),
    [
        (datetime(2026, 11, 22, 12, 0), "today", True),
        (datetime(2026, 11, 23, 9, 0), "yesterday", True),
        (datetime(2026, 11, 24, 9, 0), "yesterday", False),
        (datetime(2026, 11, 22, 23, 59), "this_week", True),  # a Sunday: the week's last day
        (datetime(2026, 11, 23, 0, 0), "this_week", False),  # Monday: a new week
        (datetime(2026, 11, 23, 0, 0), "last_week", True),
        (datetime(2026, 11, 30, 0, 0), "last_week", False),
        (datetime(2026, 11, 30, 23, 0), "this_month", True),
        (datetime(2026, 12, 1, 0, 0), "this_month", False),
        (datetime(2026, 12, 31, 0, 0), "last_month", True),
        (datetime(2027, 1, 1, 0, 0), "last_month", False),
    ],
)
async def test_periods(api: Api, monkeypatch, now, period, all_of_them) -> None:
    set_clock(monkeypatch, now.replace(tzinfo=UTC))
    key = await api.key("crm")
    calls = await history(api, key, period=period)
    assert len(calls) == (sum(want().values()) if all_of_them else 0)


@pytest.mark.parametrize(("alias", "period"), [("week", "this_week"), ("month", "this_month")])
async def test_week_and_month_as_the_documentations_example_sends_them(
    api: Api, monkeypatch, alias, period
) -> None:
    set_clock(monkeypatch, datetime(2026, 11, 22, 23, 59, tzinfo=UTC))  # a Sunday
    key = await api.key("crm")
    calls = await history(api, key, period=period)
    assert len(calls) == sum(want().values())
    assert await history(api, key, period=alias) == calls
    async with api.http.post(
        "/crmapi/v1/history/json",
        json={"period": alias, "type": "all"},
        headers={"X-API-KEY": key},
    ) as resp:
        assert resp.status == 200 and await resp.json() == calls


async def test_csv_has_the_nine_columns_of_section_4_1(api: Api, monkeypatch) -> None:
    set_clock(monkeypatch, CALLS_DAY)
    key = await api.key("crm")
    calls = await history(api, key)
    async with api.http.get("/crmapi/v1/history/csv", headers={"X-API-KEY": key}) as resp:
        assert resp.status == 200
        assert resp.content_type == "text/csv" and resp.charset == "utf-8"
        text = await resp.text()
    rows = list(csv.reader(io.StringIO(text)))
    assert len(rows) == len(calls), "one line per call, no header line"
    assert not text.startswith("uid,")
    for row, c in zip(rows, calls, strict=True):
        assert len(row) == 9, row
        uid, kind, client, account, via, start, wait, duration, record = row
        missed = c["type"] == "in" and c["status"] == "missed"
        assert kind == ("missed" if missed else c["type"])
        assert (uid, client, account, via, start) == (
            c["uid"],
            c["client"],
            c["account"],
            c["diversion"],
            c["start"],
        )
        assert (int(wait), int(duration), record) == (c["wait"], c["duration"], "")
    missed = await get(api, "history/csv", key, type="missed")
    assert {r[1] for r in csv.reader(io.StringIO(missed))} == {"missed"}
    assert await get(api, "history/csv", key, limit="2") == "".join(text.splitlines(True)[:2])


async def test_record_is_a_signed_link_when_links_are_signed(api: Api, monkeypatch) -> None:
    set_clock(monkeypatch, CALLS_DAY)
    key = await api.key("crm")
    recorded = "1795346593.58"  # in_recorded: MixMonitor on
    assert all(c["record"] == "" for c in await history(api, key))
    base = api.services.settings
    signed = {"link_secret": "s" * 32, "public_url": "https://pbx.example.com"}
    api.services.settings = base.model_copy(update={"api": base.api.model_copy(update=signed)})
    calls = {c["uid"]: c for c in await history(api, key)}
    link = calls[recorded]["record"]
    assert link.startswith(f"https://pbx.example.com/recordings/{recorded}?")
    query = parse_qs(urlsplit(link).query)
    assert link_is_valid("s" * 32, recorded, query["expires"][0], query["sig"][0], 0) is None
    assert [u for u, c in calls.items() if c["record"]] == [recorded]
    rows = {r[0]: r for r in csv.reader(io.StringIO(await get(api, "history/csv", key)))}
    # the CSV's own link (its expiry counts from that request: compared without it)
    in_csv = urlsplit(rows[recorded][8])
    assert in_csv._replace(query="") == urlsplit(link)._replace(query="")
    again = parse_qs(in_csv.query)
    assert link_is_valid("s" * 32, recorded, again["expires"][0], again["sig"][0], 0) is None
    assert abs(int(again["expires"][0]) - int(query["expires"][0])) <= 5


async def test_parameters_in_a_body_as_the_documentation_shows(api: Api, monkeypatch) -> None:
    set_clock(monkeypatch, datetime(2026, 11, 23, 9, 0, tzinfo=UTC))
    key = await api.key("crm")
    every = await history(api, key, period="yesterday")
    async with api.http.post(
        "/crmapi/v1/history/json",
        json={"period": "yesterday", "type": "missed", "limit": 100},
        headers={"X-API-KEY": key},
    ) as resp:
        assert resp.status == 200
        missed = await resp.json()
    assert missed == [c for c in every if c["type"] == "in" and c["status"] == "missed"]


async def test_inner_history(api: Api, monkeypatch) -> None:
    set_clock(monkeypatch, CALLS_DAY)
    key = await api.key("crm")
    internal = await api.pool.fetch(
        "SELECT callid FROM calls WHERE pbx_id = 'lab' AND direction = 'internal'"
    )
    calls = await get(api, "history/inner/json", key)
    assert isinstance(calls, list) and len(calls) == len(internal) == 1
    (call,) = calls
    # internal.md: 1001 dials 1002, who answers after 1 s; they talk 2 s
    assert call == {
        "uid": internal[0]["callid"],
        "status": "success",
        "from": "1001",
        "to": "1002",
        "from_name": "",
        "to_name": "",
        "start": call["start"],
        "wait": 1,
        "duration": 2,
        "record": "",
    }
    assert ISO.match(call["start"])
    assert await get(api, "history/inner/json", key, type="success") == calls
    assert await get(api, "history/inner/json", key, type="noanswer") == []
    assert await get(api, "history/inner/json", key, type="missed") == []
    assert await get(api, "history/inner/json", key, user="1002") == calls
    assert await get(api, "history/inner/json", key, user="1003") == []
    assert await get(api, "history/inner/json", key, period="yesterday") == []
    await seed_directory(api.pool)
    (named,) = await get(api, "history/inner/json", key, user="boris")
    assert (named["from"], named["to"]) == ("anna", "boris")
    assert (named["from_name"], named["to_name"]) == ("Anna Petrova", "Boris Ivanov")
    text = await get(api, "history/inner/csv", key)
    assert list(csv.reader(io.StringIO(text))) == [
        [call["uid"], "success", "anna", "boris", call["start"], "1", "2", ""]
    ]
    external = {c["uid"] for c in await history(api, key)}
    assert call["uid"] not in external, "internal calls stay out of the external history"


@pytest.mark.parametrize(
    "query",
    [
        "period=fortnight",
        "type=incoming",
        "start=yesterday",
        "end=2026-13-01",
        "limit=0",
        "limit=-5",
        "limit=many",
        "missedStatus=two",
        "processMissed=maybe",
        "user=" + "x" * 300,
    ],
)
async def test_bad_parameters_are_400_naming_them(api: Api, query) -> None:
    key = await api.key("crm")
    for path in ("history/json", "history/csv"):
        async with api.http.get(f"/crmapi/v1/{path}?{query}", headers={"X-API-KEY": key}) as r:
            assert r.status == 400, (path, query)
            assert r.content_type == "application/json"
            message = (await r.json())["message"]
            assert message.startswith("Validation error: "), message  # 3.3's return value
            assert query.split("=")[0] in message
    async with api.http.get(
        "/crmapi/v1/history/inner/json?type=out", headers={"X-API-KEY": key}
    ) as r:
        assert r.status == 400 and "type" in (await r.json())["message"]


async def test_a_big_history_streams_whole(api: Api, monkeypatch) -> None:
    set_clock(monkeypatch, CALLS_DAY)
    key = await api.key("crm")
    await api.pool.execute(
        """INSERT INTO calls (pbx_id, callid, born, direction, status, phone, diversion, ext,
                              user_login, started_at, ended_at, duration, wait)
           SELECT 'lab', 'bulk.' || i, call_day('bulk.' || i),
                  CASE WHEN i % 3 = 0 THEN 'out' ELSE 'in' END,
                  CASE WHEN i % 2 = 0 THEN 'Success' ELSE 'missed' END,
                  '7910' || lpad(i::text, 7, '0'), '74957654321', '1001', '1001',
                  timestamptz '2026-11-21 00:00:00+00' + i * interval '20 seconds',
                  timestamptz '2026-11-21 00:00:30+00' + i * interval '20 seconds', 10, 5
           FROM generate_series(1, 2500) AS i"""
    )
    calls = await history(api, key, period="yesterday")
    assert len(calls) == len({c["uid"] for c in calls}) == 2500
    text = await get(api, "history/csv", key, period="yesterday")
    assert len(list(csv.reader(io.StringIO(text)))) == 2500
    assert len(await history(api, key, period="yesterday", limit="1234")) == 1234
    assert len(await history(api, key, period="yesterday", limit="999")) == 999
    idle = api.pool.get_idle_size()
    for _ in range(5):
        await history(api, key, period="yesterday", limit="1")
    assert api.pool.get_idle_size() >= idle, "a cut stream gives its connection back"
