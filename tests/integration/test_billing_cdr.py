"""The billing dialect's CDRs against Asterisk's own CDR of the same recorded calls.

Every call of every recorded scenario (over HTTP, as a billing client reads it) and of the
200-call load trace (through the same CDR builder) must agree with the CDR rows Asterisk
wrote for it, by the rules of `tests/support/cdr.py`: which rows are our call, and the
only differences allowed (rounding of consecutive rows, a queue's own `Answer()`, the
employee's early answer of a click-to-call, a caller's time alone in a queue after its
last member attempt).
"""

from __future__ import annotations

import asyncpg
import pytest

from bridge.api.billing.cdr import cdr, cdr_uuid
from bridge.crm.outbox_rows import OutboxRows
from bridge.store import history, logins
from bridge.store.migrations import migrate
from tests.support.api import Api
from tests.support.cdr import by_call, channel_lives, disagreements, originated, read_cdr
from tests.support.delivery import store_scenarios
from tests.support.traces import TRACES, scenario_names

pytestmark = pytest.mark.integration


async def legs_of(pool: asyncpg.Pool, callid: str) -> list[asyncpg.Record]:
    return list(
        await pool.fetch(
            "SELECT * FROM call_legs WHERE pbx_id = 'lab' AND callid = $1 "
            "ORDER BY started_at, uniqueid",
            callid,
        )
    )


async def test_every_recorded_call_agrees_with_asterisks_cdr(api: Api) -> None:
    async with api.pool.acquire() as conn:
        await logins.create_login(conn, "lab", "billing@example.com", "correct horse battery")
    login = {"email": "billing@example.com", "password": "correct horse battery"}
    async with api.http.post("/api/login", json=login) as r:
        token = (await r.json())["token"]
    async with api.http.get(
        "/api/calls?domain_name=lab", headers={"Authorization": f"Bearer {token}"}
    ) as r:
        ours = {c["xml_cdr_uuid"]: c for c in await r.json()}
    problems: list[str] = []
    compared = 0
    clicks = 0
    for name in scenario_names():
        rows = by_call(read_cdr(TRACES / f"{name}.cdr.csv"))
        lives = channel_lives(TRACES / f"{name}.cel.csv")
        assert rows, name
        for callid, call_rows in rows.items():
            mine = ours.get(cdr_uuid("lab", callid))
            if mine is None:
                problems.append(f"{name}: Asterisk's call {callid} is not in our CDRs")
                continue
            legs = await legs_of(api.pool, callid)
            problems += [
                f"{name}: {p}"
                for p in disagreements(callid, mine, call_rows, legs, lives.get(callid))
            ]
            clicks += originated(legs, callid) is not None
            compared += 1
    assert problems == []
    assert compared == len(ours), "every call we serve has Asterisk's CDR rows"
    assert clicks == 1, "only the click-to-call was answered by the employee first"


async def test_plain_calls_match_their_single_cdr_row_exactly(api: Api) -> None:
    """The simple cases, spelled out: one Dial(), one row, the same three numbers."""
    expected = {  # scenario: (duration, billsec) of its one CDR row
        "in_answered": (3, 2),
        "in_recorded": (4, 3),
        "out_answered": (4, 3),
        "internal": (3, 2),
    }
    for name, (duration, billsec) in expected.items():
        (row,) = read_cdr(TRACES / f"{name}.cdr.csv")
        assert (row.duration, row.billsec) == (duration, billsec)
        call = await api.pool.fetchrow(
            f"SELECT {history.COLUMNS} FROM calls c WHERE pbx_id = 'lab' AND callid = $1",
            row.linkedid,
        )
        mine = cdr(call, await legs_of(api.pool, row.linkedid), domain="lab")
        assert (mine["duration"], mine["billsec"], mine["waitsec"]) == (
            duration,
            billsec,
            duration - billsec,
        ), name


async def test_the_load_trace_agrees_with_asterisks_cdr(pg_dsn: str) -> None:
    pool = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=4)
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
        await store_scenarios(pool, OutboxRows("lab"), ["load_mixed"])
        calls = await history.search_calls(pool, "lab", history.CallQuery(limit=1000))
        rows = by_call(read_cdr(TRACES / "load_mixed.cdr.csv"))
        lives = channel_lives(TRACES / "load_mixed.cel.csv")
        assert len(calls) == len(rows) == 200
        problems: list[str] = []
        for call in calls:
            legs = await legs_of(pool, call["callid"])
            mine = cdr(call, legs, domain="lab")
            problems += disagreements(
                call["callid"], mine, rows[call["callid"]], legs, lives.get(call["callid"])
            )
        assert problems == []
    finally:
        await pool.close()
