"""Yearly partitions of the call tables (sql/008_partitions.sql, bridge.store.partitions)
on a real PostgreSQL: the key every writer agrees on, rows that wait for their year and
move into it without a duplicate, the upgrade of a database with calls, and retention
dropping the years it emptied."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, date, datetime

import asyncpg
import pytest

from bridge.store import history
from bridge.store.migrations import migrate, migration_files
from bridge.store.partitions import (
    CALL_TABLES,
    drop_empty_partitions,
    make_partitions,
    partition_name,
)
from bridge.store.queries import QUERIES
from bridge.store.retention import prune
from tests.integration.test_store import snapshot, store_trace
from tests.support.traces import scenario_names

pytestmark = pytest.mark.integration


@pytest.fixture
async def pool(migrated_dsn: str):
    pool = await asyncpg.create_pool(migrated_dsn, min_size=1, max_size=4)
    yield pool
    await pool.close()


async def utc_today(pool: asyncpg.Pool) -> date:
    today: date = await pool.fetchval("SELECT (now() AT TIME ZONE 'UTC')::date")
    return today


async def where(pool: asyncpg.Pool, table: str) -> dict[str, int]:
    """{partition: rows} of a call table."""
    rows = await pool.fetch(
        f"SELECT tableoid::regclass::text AS part, count(*) FROM {table} GROUP BY 1"
    )
    return {r["part"]: r["count"] for r in rows}


async def test_the_day_in_an_asterisk_id(pool: asyncpg.Pool) -> None:
    epochs = {  # id -> the time in it (None: not Asterisk's form, one fixed day)
        "1795346414.0": 1795346414,  # Uniqueid / Linkedid: epoch seconds . counter
        "pbx-main-1795346414.17": 1795346414,  # asterisk.conf systemname prefix
        "pbx1.example.com-1700000000.5": 1700000000,
        "1704067199.3": 1704067199,  # the last second of a year, in UTC
        "1704067200.4": 1704067200,  # the first of the next
        "click-to-call-7f3a": None,
        "123456789012345.1": None,  # more digits than a time
        "": None,
    }
    for callid, epoch in epochs.items():
        day = datetime.fromtimestamp(epoch, UTC).date() if epoch else date(1970, 1, 1)
        assert await pool.fetchval("SELECT call_day($1)", callid) == day, callid
    assert await pool.fetchval("SELECT call_day('1704067199.3') < call_day('1704067200.4')")


async def test_rows_wait_for_their_year_then_move_in_without_a_duplicate(
    pool: asyncpg.Pool, pg_dsn: str
) -> None:
    """Every scenario stored twice: once with no year partition at all (everything in the
    default partitions), once with the partitions made while its calls were still up.
    Same rows; the second database has none left in a default partition."""
    plain = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=2)
    try:
        async with plain.acquire() as conn:
            await migrate(conn)
        for name in scenario_names():
            await store_trace(plain, name, batch=7)
        assert set(await where(plain, "calls")) == {"calls_default"}

        names = scenario_names()
        half = len(names) // 2
        for name in names[:half]:
            await store_trace(pool, name, batch=7)
        assert set(await where(pool, "calls")) == {"calls_default"}
        # a call up across the making: opened in the default partition, finished after
        up = await pool.fetchval(
            "UPDATE calls SET status = NULL, ended_at = NULL WHERE callid = "
            "(SELECT min(callid) FROM calls_default) RETURNING callid"
        )
        made = await make_partitions(pool)
        year = await pool.fetchval("SELECT min(born) FROM calls")
        assert partition_name("calls", year) in made and partition_name("call_legs", year) in made
        moved = await pool.fetchrow(
            "SELECT tableoid::regclass::text AS part, status FROM calls WHERE callid = $1", up
        )
        assert tuple(moved) == (partition_name("calls", year), None)
        for table in CALL_TABLES:
            assert list(await where(pool, table)) == [partition_name(table, year)], table
        for name in names:  # the first half again (a replay), then the rest
            await store_trace(pool, name, batch=5)
        assert await snapshot(pool) == await snapshot(plain)
        assert await pool.fetchval("SELECT count(*) FROM calls WHERE status IS NULL") == 0
        for table in CALL_TABLES:
            assert await pool.fetchval(f"SELECT count(*) FROM {table}_default") == 0
    finally:
        await plain.close()


async def test_this_year_and_the_next_are_made_once(pool: asyncpg.Pool) -> None:
    today = await utc_today(pool)  # the server's clock, which make_partitions reads
    this, after = date(today.year, 1, 1), date(today.year + 1, 1, 1)
    made = await make_partitions(pool)
    assert made == [partition_name(t, y) for y in (this, after) for t in CALL_TABLES]
    assert await make_partitions(pool) == []
    # bridges of several PBXs starting together: each month once, no error
    again = await asyncio.gather(*(make_partitions(pool, ahead=3) for _ in range(4)))
    later = (date(today.year + 2, 1, 1), date(today.year + 3, 1, 1))
    assert sorted(sum(again, [])) == sorted(
        partition_name(t, y) for y in later for t in CALL_TABLES
    )


async def test_a_lookup_by_call_reads_one_partition(pool: asyncpg.Pool) -> None:
    await pool.execute(
        "SELECT call_partition(t, m::date) FROM unnest($1::text[]) t, "
        "generate_series(date '2024-01-01', date '2027-01-01', interval '1 year') m",
        list(CALL_TABLES),
    )
    await store_trace(pool, "in_answered")
    callid = await pool.fetchval("SELECT callid FROM calls LIMIT 1")
    for query in ("call_by_id", "call_events_of", "call_exists"):
        plan = "\n".join(r[0] for r in await pool.fetch("EXPLAIN " + QUERIES[query], "lab", callid))
        scanned = set(re.findall(r"\b(?:calls|call_events)_(?:\d{4}|default)\b", plan))
        assert len(scanned) == 1, plan


async def test_an_upgrade_keeps_every_call_and_its_keys(pg_dsn: str) -> None:
    """A database of the previous schema with calls in it, migrated: the same rows, each in
    its year, and the bridge's upserts still find them (no second row)."""
    conn = await asyncpg.connect(pg_dsn)
    try:
        await conn.execute(QUERIES["migrations_table"])
        for m in migration_files():
            if m.name >= "008":
                break
            await conn.execute(m.sql)
            await conn.execute(QUERIES["migration_done"], m.name)
        pool = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=2)
        try:
            await _old_rows(conn)
            before = {
                t: sorted(tuple(r) for r in await conn.fetch(f"SELECT * FROM {t}"))
                for t in CALL_TABLES
            }
            assert await migrate(conn) == [
                "008_partitions.sql",
                "009_gaps.sql",
                "010_phone_name.sql",
            ]
            for table in CALL_TABLES:
                cols = ", ".join(
                    r["column_name"]
                    for r in await conn.fetch(
                        "SELECT column_name FROM information_schema.columns "
                        "WHERE table_name = $1 AND column_name NOT IN ('born', 'phone_name') "
                        "ORDER BY ordinal_position",
                        table,
                    )
                )
                after = sorted(tuple(r) for r in await conn.fetch(f"SELECT {cols} FROM {table}"))
                assert after == before[table], table
            assert await where(pool, "calls") == {"calls_2025": 1, "calls_2026": 1}
            assert await conn.fetchval("SELECT array_agg(DISTINCT phone_name) FROM calls") == [""]
            assert await where(pool, "call_legs") == {"call_legs_2025": 1}
            # the stored open call finishes: an upsert of the same row
            finished = [
                "1767225599.1", "in", "Success", "79101234567", "", "101", "ivan", "",
                datetime.fromtimestamp(1767225599, UTC), None, None, 10, 2, "", "hangup", "",
            ]  # fmt: skip
            await conn.execute(QUERIES["finish_call"], "lab", *([v] for v in finished))
            assert await conn.fetchval("SELECT count(*) FROM calls") == 2
        finally:
            await pool.close()
    finally:
        await conn.close()


async def _old_rows(conn: asyncpg.Connection) -> None:
    """Two calls either side of a new year (UTC) in the 007 schema, one still up."""
    await conn.execute(
        "INSERT INTO calls (pbx_id, callid, direction, status, phone, started_at) VALUES "
        "('lab', '1767225599.1', 'in', NULL, '79101234567', to_timestamp(1767225599)), "
        "('lab', '1767225600.2', 'out', 'Success', '79101234568', to_timestamp(1767225600))"
    )
    await conn.execute(
        "INSERT INTO call_events (pbx_id, callid, seq, type, at) VALUES "
        "('lab', '1767225599.1', 1, 'INCOMING', to_timestamp(1767225599))"
    )
    await conn.execute(
        "INSERT INTO call_legs (pbx_id, uniqueid, callid, channel, kind, started_at) VALUES "
        "('lab', '1767225599.1', '1767225599.1', 'PJSIP/trunk-1', 'trunk', "
        "to_timestamp(1767225599))"
    )


async def test_retention_drops_the_years_it_emptied_and_no_other(pool: asyncpg.Pool) -> None:
    await make_partitions(pool)
    await store_trace(pool, "in_answered")  # calls of the trace's year, ended just now
    await pool.execute("UPDATE calls SET ended_at = now() WHERE born > '2024-01-01'")
    for year in ("2022-01-01", "2023-01-01"):
        for table in CALL_TABLES:
            await pool.execute("SELECT call_partition($1, $2::text::date)", table, year)
    old = (
        "INSERT INTO calls (pbx_id, callid, born, direction, status, started_at, ended_at) "
        "VALUES ('lab', $1, call_day($1), 'in', $2, to_timestamp($3), to_timestamp($3 + 60))"
    )
    await pool.execute(old, "1650000000.1", "Success", 1650000000)  # April 2022, done
    await pool.execute(old, "1700000000.2", None, 1700000000)  # November 2023, still up
    kept = await pool.fetchval("SELECT count(*) FROM calls WHERE born > '2024-01-01'")

    done = await prune(pool, "lab", sent_days=0, attempts_days=0, calls_days=30)
    # the call; its year in the three tables, 2023's in the two it has no row in
    assert (done.calls, done.partitions) == (1, 5)
    names = {r[0] for r in await pool.fetch("SELECT relname FROM pg_class WHERE relkind = 'r'")}
    assert not {"calls_2022", "call_legs_2022", "call_events_2023"} & names
    assert "calls_2023" in names, "a year with a row stays"
    assert await pool.fetchval("SELECT count(*) FROM calls WHERE born > '2024-01-01'") == kept
    # an emptied year comes back when a call of it is written again (a late CEL backfill)
    await pool.execute(old, "1650000100.3", "Success", 1650000100)
    assert (await where(pool, "calls")).get("calls_default") == 1
    assert "calls_2022" in await make_partitions(pool)
    assert (await where(pool, "calls")).get("calls_2022") == 1


async def test_drop_keeps_this_year_even_when_empty(pool: asyncpg.Pool) -> None:
    made = await make_partitions(pool)
    assert made
    assert await drop_empty_partitions(pool, await utc_today(pool)) == []


async def test_a_long_query_on_the_default_partition_delays_one_year_not_the_bridge(
    pool: asyncpg.Pool,
) -> None:
    """An export reading every partition holds the default one: making a year that must move
    rows out of it gives up after its lock timeout, the other tables' years are made, and
    the next try (once the export is done) makes it."""
    old = (
        "INSERT INTO calls (pbx_id, callid, born, direction, status, started_at) "
        "VALUES ('lab', $1, call_day($1), 'in', 'Success', to_timestamp(1700000000))"
    )
    await make_partitions(pool)  # this year's and the next: a bridge that has run a while
    await pool.execute(old, "1700000000.1")
    async with pool.acquire() as export:
        async with export.transaction():
            await export.fetch("SELECT * FROM calls")  # holds calls_default until commit
            started = asyncio.get_running_loop().time()
            made = await make_partitions(pool)
            waited = asyncio.get_running_loop().time() - started
            assert "calls_2023" not in made and "call_legs_2023" in made
            assert 1.5 < waited < 4, "one lock timeout (2 s), not the export's time"
            assert (await where(pool, "calls")).get("calls_default") == 1
    assert await make_partitions(pool) == ["calls_2023"]
    assert await where(pool, "calls") == {"calls_2023": 1}


async def test_a_start_range_finds_calls_whatever_year_their_id_names(pool: asyncpg.Pool) -> None:
    """Pages read only the years a start range can be in, and still find a call whose id was
    made the evening before the new year it started in, and a call of another system's id."""
    for year in ("2024-01-01", "2025-01-01", "2026-01-01", "2027-01-01"):
        for table in CALL_TABLES:
            await pool.execute("SELECT call_partition($1, $2::text::date)", table, year)
    add = (
        "INSERT INTO calls (pbx_id, callid, born, direction, status, started_at, ended_at) "
        "VALUES ('lab', $1, call_day($1), 'in', 'Success', $2, $2)"
    )
    at = datetime(2026, 1, 1, 0, 0, 5, tzinfo=UTC)
    await pool.execute(add, "1767225599.1", at)  # id of 2025-12-31 23:59:59, started in 2026
    await pool.execute(add, "ari-7f3a", at)  # another system's id: born 1970
    await pool.execute(add, "1767139200.9", datetime(2025, 12, 31, tzinfo=UTC))  # outside
    q = history.CallQuery(
        since=datetime(2026, 1, 1, tzinfo=UTC), until=datetime(2026, 1, 2, tzinfo=UTC)
    )
    assert {r["callid"] for r in await history.search_calls(pool, "lab", q)} == {
        "1767225599.1",
        "ari-7f3a",
    }
    sql, args = history.calls_sql("lab", q)
    plan = "\n".join(r[0] for r in await pool.fetch("EXPLAIN " + sql, *args))
    assert set(re.findall(r"\bcalls_(?:\d{4}|default)\b", plan)) == {
        "calls_2025",  # the day's margin before the range
        "calls_2026",
        "calls_default",  # where ids of 1970 wait
    }, plan


async def test_an_end_range_reads_no_year_after_it(pool: asyncpg.Pool) -> None:
    """A call ended before a moment started, so was born, no later: the billing tools' end
    filters skip the years after it, and still find a call that ended in the new year."""
    for year in ("2024-01-01", "2025-01-01", "2026-01-01"):
        for table in CALL_TABLES:
            await pool.execute("SELECT call_partition($1, $2::text::date)", table, year)
    add = (
        "INSERT INTO calls (pbx_id, callid, born, direction, status, started_at, ended_at) "
        "VALUES ('lab', $1, call_day($1), 'in', 'Success', $2, $3)"
    )
    new_year = datetime(2025, 1, 1, tzinfo=UTC)
    await pool.execute(
        add,
        "1735689590.1",
        datetime(2024, 12, 31, 23, 59, 50, tzinfo=UTC),
        datetime(2025, 1, 1, 0, 0, 5, tzinfo=UTC),
    )  # over the new year
    await pool.execute(
        add,
        "1735689595.2",
        datetime(2024, 12, 31, 23, 59, 55, tzinfo=UTC),
        datetime(2024, 12, 31, 23, 59, 58, tzinfo=UTC),
    )  # ended before
    await pool.execute(
        add,
        "1767225600.3",
        datetime(2026, 1, 1, tzinfo=UTC),
        datetime(2026, 1, 1, 0, 1, tzinfo=UTC),
    )  # a year later
    # an originate's id made on a bridge clock a few seconds ahead of Asterisk's
    await pool.execute(
        add,
        "1735776001.4",
        datetime(2025, 1, 1, 23, 59, 57, tzinfo=UTC),
        datetime(2025, 1, 1, 23, 59, 59, tzinfo=UTC),
    )
    q = history.CallQuery(
        ended_since=new_year, ended_until=datetime(2025, 1, 1, 23, 59, 59, 999999, tzinfo=UTC)
    )
    assert [r["callid"] for r in await history.search_calls(pool, "lab", q)] == [
        "1735776001.4",
        "1735689590.1",
    ]
    sql, args = history.calls_sql("lab", q)
    plan = "\n".join(r[0] for r in await pool.fetch("EXPLAIN " + sql, *args))
    assert set(re.findall(r"\bcalls_(?:\d{4}|default)\b", plan)) == {
        "calls_2024",
        "calls_2025",
        "calls_default",
    }, plan


async def test_a_range_from_the_first_day_of_the_calendar(pool: asyncpg.Pool) -> None:
    """The day's margin before `since` stops at the first date there is (no overflow)."""
    await store_trace(pool, "in_answered")
    q = history.CallQuery(since=datetime(1, 1, 1, tzinfo=UTC))
    assert len(await history.search_calls(pool, "lab", q)) == await pool.fetchval(
        "SELECT count(*) FROM calls"
    )
    last = datetime(9999, 12, 31, 23, 59, tzinfo=UTC)  # and the margin after ends there
    q = history.CallQuery(until=last, ended_until=last)
    assert len(await history.search_calls(pool, "lab", q)) == await pool.fetchval(
        "SELECT count(*) FROM calls"
    )
