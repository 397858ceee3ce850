"""Backfill against a real PostgreSQL: cel_pgsql's table read back as the CSV file says,
and the store's side of continuity (each open call's facts for a restart, which calls are
finished, how far a previous run followed the PBX, a backfilled history never replacing
a reported one)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import asyncpg
import pytest

from bridge.ami.trace import trace_events
from bridge.cel.csvlog import CelCsv
from bridge.cel.groups import group_rows
from bridge.cel.interpret import CelInterpreters
from bridge.cel.pglog import CelTable
from bridge.store.calls import CallStore
from bridge.store.migrations import migrate
from bridge.tracker.model import CallEvent, CallRecord
from tests.support.traces import TRACES
from tests.unit.test_tracker_traces import lab_tracker

pytestmark = pytest.mark.integration

# cel_pgsql's table as config/asterisk/cel_pgsql_crm_bridge.conf creates it
CEL_TABLE = """
CREATE TABLE {name} (
    id bigserial PRIMARY KEY, eventtype varchar(30) NOT NULL, eventtime timestamp NOT NULL,
    userdeftype varchar(255), cid_name varchar(80), cid_num varchar(80), cid_ani varchar(80),
    cid_rdnis varchar(80), cid_dnid varchar(80), exten varchar(80), context varchar(80),
    channame varchar(80), appname varchar(80), appdata varchar(512), amaflags int,
    accountcode varchar(32), peeraccount varchar(32), uniqueid varchar(150) NOT NULL,
    linkedid varchar(150) NOT NULL, userfield varchar(255), peer varchar(80), extra text
)"""


@pytest.mark.parametrize("column", ["timestamp", "timestamptz"])
async def test_cel_pgsql_table_reads_as_the_csv_file(pg_dsn: str, column: str) -> None:
    """cel_pgsql's own table has a zone-less `eventtime`; an admin's may have a zone."""
    rows = list(CelCsv(TRACES / "load_mixed.cel.csv").rows(0.0))
    zoned = column == "timestamptz"
    conn = await asyncpg.connect(pg_dsn)
    try:
        await conn.execute(
            CEL_TABLE.format(name="cel").replace("eventtime timestamp", f"eventtime {column}")
        )
        await conn.executemany(
            "INSERT INTO cel (eventtype, eventtime, cid_name, cid_num, exten, context, "
            "channame, appname, appdata, uniqueid, linkedid, peer, userfield, extra) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
            [
                (
                    r.eventtype,
                    # cel_pgsql with usegmtime = yes: UTC, in a zone-less timestamp
                    datetime.fromtimestamp(r.eventtime, UTC).replace(tzinfo=None)
                    if not zoned
                    else datetime.fromtimestamp(r.eventtime, UTC),
                    r.cid_name,
                    r.cid_num,
                    r.exten,
                    r.context,
                    r.channame,
                    r.appname,
                    r.appdata,
                    r.uniqueid,
                    r.linkedid,
                    r.peer,
                    r.userfield,
                    r.extra or None,
                )
                for r in rows
            ],
        )
    finally:
        await conn.close()
    table = CelTable(pg_dsn, "cel", "UTC")
    try:
        since = rows[len(rows) // 2].eventtime
        got = await table.rows(since)
        later = [r for r in rows if r.eventtime >= since]
        assert [(r.eventtype, r.uniqueid, r.channame) for r in got] == [
            (r.eventtype, r.uniqueid, r.channame) for r in later
        ]
        assert all(abs(a.eventtime - b.eventtime) < 1e-5 for a, b in zip(got, later, strict=True))
        everything = await table.rows(0.0)
    finally:
        await table.close()
    assert len(everything) == len(rows)
    interpreters = CelInterpreters.for_tracker(lab_tracker())
    from_table = {
        c.record.callid: c.record
        for group in group_rows(everything)
        for c in interpreters.interpret(group)
    }
    interpreters = CelInterpreters.for_tracker(lab_tracker())
    from_file = {
        c.record.callid: c.record
        for group in group_rows(rows)
        for c in interpreters.interpret(group)
    }
    assert len(from_table) == 200
    assert {k: (r.status, r.ext, r.phone, r.duration) for k, r in from_table.items()} == {
        k: (r.status, r.ext, r.phone, r.duration) for k, r in from_file.items()
    }


async def test_store_keeps_facts_finished_calls_and_how_far_it_followed(pg_dsn: str) -> None:
    pool = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=2)
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
        store = CallStore(pool, "lab")
        assert await store.seen_until() is None
        tracker = lab_tracker()
        events = list(trace_events(TRACES / "in_answered.ami.jsonl"))
        outputs = [o for t, ev in events for o in tracker.feed(ev, t)]
        accepted = next(
            i for i, o in enumerate(outputs) if isinstance(o, CallEvent) and o.type == "ACCEPTED"
        )
        await store.save(outputs[: accepted + 1])
        (open_call,) = await store.open_calls()
        assert open_call.facts is not None
        accepted_event = outputs[accepted]
        assert isinstance(accepted_event, CallEvent) and accepted_event.facts is not None
        assert open_call.facts == accepted_event.facts
        (record,) = [o for o in outputs if isinstance(o, CallRecord)]
        assert open_call.facts.start == pytest.approx(record.start)
        # a call left open: as far as its last event stored
        assert await store.seen_until() == pytest.approx(accepted_event.at, abs=1e-3)
        assert await store.finished_among([open_call.callid]) == set()
        await store.save(outputs[accepted + 1 :])
        assert await store.finished_among([record.callid, "nope"]) == {record.callid}
        assert await store.seen_until() == pytest.approx(record.end, abs=1e-3)
        # a history rebuilt from the CEL never replaces the one reported
        await store.save([dataclasses.replace(record, status="missed", closed_by="backfill")])
        row = await pool.fetchrow("SELECT status, closed_by, facts FROM calls")
        assert (row["status"], row["closed_by"], row["facts"]) == ("Success", "hangup", None)
    finally:
        await pool.close()
