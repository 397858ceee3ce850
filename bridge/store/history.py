"""The query layer of the pull APIs: finished calls with the filters every dialect needs.

One `CallQuery` describes a page (or a whole export) of calls; `search_calls` answers it
with one indexed query, `stream_calls` walks all of it through a server-side cursor in
constant memory, `call_details` gives one call with its legs and events. Dialects only
translate their parameters into a `CallQuery` and the rows into their shapes.

Paging is by offset/limit (what the dialects' clients send) or by keyset: `after` is the
(start, callid) of the last row of the previous page, which stays fast however deep the
page is.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg

from .queries import QUERIES

SORTS = {"start": "c.started_at", "duration": "c.duration", "wait": "c.wait"}
MAX_LIMIT = 10_000

# The columns every dialect serialises from (a call row).
COLUMNS = """c.callid, c.direction, c.status, c.phone, c.diversion, c.ext, c.user_login,
    c.group_name, c.started_at, c.answered_at, c.ended_at, c.duration, c.wait, c.recording,
    c.rating, c.missed_status, c.closed_by, c.phone_name"""


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where the previous page ended (its last row's start and callid; sorted by duration
    or wait, also that row's value of the sort column)."""

    start: datetime
    callid: str
    value: int | None = None


@dataclass(frozen=True, slots=True)
class CallQuery:
    since: datetime | None = None  # started at or after
    until: datetime | None = None  # started before
    ended_since: datetime | None = None  # ended at or after (billing filters on the end)
    ended_until: datetime | None = None
    directions: tuple[str, ...] = ()  # in / out / internal
    statuses: tuple[str, ...] = ()  # Success, missed, Busy, ...
    answered: bool | None = None  # True: Success only; False: everything else
    users: tuple[str, ...] = ()  # the history's employee (login)
    exts: tuple[str, ...] = ()  # the history's extension
    participants: tuple[str, ...] = ()  # employees who took part at all (rang or talked)
    groups: tuple[str, ...] = ()  # ring group / queue names
    phone: str | None = None  # the customer's number
    diversion: str | None = None  # the company number
    search: str | None = None  # a substring of the number, employee, group or call id
    missed_status: int | None = None
    callids: tuple[str, ...] = ()
    sort: str = "start"
    descending: bool = True
    offset: int = 0
    limit: int = 100
    after: Cursor | None = None
    # added for the VPBX dialect's missed-call filters
    missed_statuses: tuple[int, ...] = ()  # missedStatus is one of these
    has_missed_status: bool | None = None  # True: calls with a missedStatus; False: without

    def __post_init__(self) -> None:
        if self.sort not in SORTS:
            raise ValueError(f"sort must be one of {', '.join(SORTS)}")
        if self.after is not None and self.sort != "start" and self.after.value is None:
            raise ValueError(f"a cursor of a page sorted by {self.sort} needs its {self.sort}")
        if not 0 <= self.limit <= MAX_LIMIT:
            raise ValueError(f"limit must be between 0 and {MAX_LIMIT}")
        if self.offset < 0:
            raise ValueError("offset must not be negative")


@dataclass
class _Sql:
    pbx_id: str
    where: list[str] = field(default_factory=list)
    args: list[Any] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.args.append(self.pbx_id)
        self.where.append("c.pbx_id = $1 AND c.status IS NOT NULL")

    def arg(self, value: Any) -> str:
        self.args.append(value)
        return f"${len(self.args)}"

    def add(self, clause: str, *values: Any) -> None:
        self.where.append(clause.format(*(self.arg(v) for v in values)))


UNDATED = date(1970, 1, 1)  # call_day() of an id not in Asterisk's form
DAY = timedelta(days=1)


def _utc_day(at: datetime) -> date:
    return at.astimezone(UTC).date() if at.tzinfo else at.date()


def _day_after(at: datetime) -> date:
    """The UTC day after `at`'s (the last date there is stays itself)."""
    day = _utc_day(at)
    return day + DAY if day < date.max else day


def _where(pbx_id: str, q: CallQuery) -> _Sql:
    s = _Sql(pbx_id)
    # A start range also names the year partitions to read (sql/008_partitions.sql): a
    # call's id is made with its first channel, so it was born on or before the day the call
    # started; a day's margin before `since` covers a start learnt late; other ids: 1970.
    # (The APIs' pool plans every statement for its values: wiring.PLANS_PER_QUERY.)
    if q.since is not None:
        s.add("c.started_at >= {}", q.since)
        day = _utc_day(q.since)
        s.add("(c.born >= {} OR c.born = {})", day - DAY if day > date.min else day, UNDATED)
    if q.until is not None:  # (a day's margin: an originate's id is made on the bridge's clock)
        s.add("c.started_at < {}", q.until)
        s.add("c.born <= {}", _day_after(q.until))
    if q.ended_since is not None:
        s.add("c.ended_at >= {}", q.ended_since)
    if q.ended_until is not None:  # a call ended before then was born no later (its years)
        s.add("c.ended_at < {}", q.ended_until)
        s.add("c.born <= {}", _day_after(q.ended_until))
    if q.directions:
        s.add("c.direction = ANY({})", list(q.directions))
    if q.statuses:
        s.add("c.status = ANY({})", list(q.statuses))
    if q.answered is True:
        s.add("c.status = 'Success'")
    elif q.answered is False:
        s.add("c.status <> 'Success'")
    if q.users:
        s.add("c.user_login = ANY({})", list(q.users))
    if q.exts:
        s.add("c.ext = ANY({})", list(q.exts))
    if q.participants:
        s.add(
            "(c.user_login = ANY({0}) OR EXISTS (SELECT 1 FROM call_events e "
            "WHERE e.pbx_id = c.pbx_id AND e.callid = c.callid AND e.user_login = ANY({0})))",
            list(q.participants),
        )
    if q.groups:
        s.add("c.group_name = ANY({})", list(q.groups))
    if q.phone:
        s.add("c.phone = {}", q.phone)
    if q.diversion:
        s.add("c.diversion = {}", q.diversion)
    if q.search:
        like = "%" + q.search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        s.add(
            "(c.phone LIKE {0} OR c.diversion LIKE {0} OR c.user_login ILIKE {0} "
            "OR c.ext LIKE {0} OR c.group_name ILIKE {0} OR c.callid LIKE {0})",
            like,
        )
    if q.missed_status is not None:
        s.add("c.missed_status = {}", q.missed_status)
    if q.callids:
        s.add("c.callid = ANY({})", list(q.callids))
    if q.missed_statuses:
        s.add("c.missed_status = ANY({})", list(q.missed_statuses))
    if q.has_missed_status is True:
        s.add("c.missed_status IS NOT NULL")
    elif q.has_missed_status is False:
        s.add("c.missed_status IS NULL")
    if q.after is not None:
        op = "<" if q.descending else ">"
        if q.sort == "start":
            s.add(f"(c.started_at, c.callid) {op} ({{}}, {{}})", q.after.start, q.after.callid)
        else:  # the same order as _order: the sort column, then start, then callid
            s.add(
                f"({SORTS[q.sort]}, c.started_at, c.callid) {op} ({{}}, {{}}, {{}})",
                q.after.value,
                q.after.start,
                q.after.callid,
            )
    return s


def _order(q: CallQuery) -> str:
    way = "DESC" if q.descending else "ASC"
    column = SORTS[q.sort]
    if q.sort == "start":
        return f"c.started_at {way}, c.callid {way}"
    return f"{column} {way}, c.started_at {way}, c.callid {way}"


def calls_sql(pbx_id: str, q: CallQuery, *, paged: bool = True) -> tuple[str, list[Any]]:
    s = _where(pbx_id, q)
    sql = f"SELECT {COLUMNS} FROM calls c WHERE {' AND '.join(s.where)} ORDER BY {_order(q)}"
    if paged:
        sql += f" LIMIT {s.arg(q.limit)} OFFSET {s.arg(q.offset)}"
    return sql, s.args


async def search_calls(
    db: asyncpg.Pool | asyncpg.Connection, pbx_id: str, q: CallQuery
) -> list[asyncpg.Record]:
    sql, args = calls_sql(pbx_id, q)
    return list(await db.fetch(sql, *args))


async def count_calls(db: asyncpg.Pool | asyncpg.Connection, pbx_id: str, q: CallQuery) -> int:
    s = _where(pbx_id, q)
    total: int = await db.fetchval(
        f"SELECT count(*) FROM calls c WHERE {' AND '.join(s.where)}", *s.args
    )
    return total


async def stream_calls(
    pool: asyncpg.Pool, pbx_id: str, q: CallQuery, prefetch: int = 1000
) -> AsyncGenerator[asyncpg.Record, None]:
    """Every call the query selects (offset/limit ignored), through a server-side cursor:
    memory stays flat whatever the number of rows."""
    sql, args = calls_sql(pbx_id, q, paged=False)
    async with pool.acquire() as conn, conn.transaction(readonly=True):
        async for row in conn.cursor(sql, *args, prefetch=prefetch):
            yield row


def cursor_after(rows: Sequence[asyncpg.Record]) -> Cursor | None:
    """The keyset cursor of the page after `rows` (None when it was empty)."""
    if not rows:
        return None
    last = rows[-1]
    return Cursor(last["started_at"], last["callid"])


def cursor_of(row: asyncpg.Record, sort: str = "start") -> Cursor:
    """The keyset cursor of the page after `row`, for a query sorted by `sort`."""
    value = None if sort == "start" else int(row[SORTS[sort].removeprefix("c.")])
    return Cursor(row["started_at"], row["callid"], value)


@dataclass(frozen=True, slots=True)
class CallDetails:
    call: asyncpg.Record
    legs: list[asyncpg.Record]
    events: list[asyncpg.Record]


async def call_details(pool: asyncpg.Pool, pbx_id: str, callid: str) -> CallDetails | None:
    """One call (finished or not) with its legs and CRM events, in order."""
    async with pool.acquire() as conn:
        call = await conn.fetchrow(QUERIES["call_by_id"], pbx_id, callid)
        if call is None:
            return None
        legs = await conn.fetch(QUERIES["call_legs_of"], pbx_id, callid)
        events = await conn.fetch(QUERIES["call_events_of"], pbx_id, callid)
    return CallDetails(call, list(legs), list(events))


async def callid_of_channel(pool: asyncpg.Pool, pbx_id: str, uniqueid: str) -> str | None:
    """The call a channel (any Asterisk UniqueID) took part in."""
    found: str | None = await pool.fetchval(QUERIES["callid_of_channel"], pbx_id, uniqueid)
    return found


def row_dict(row: asyncpg.Record) -> dict[str, Any]:
    return {k: (json.loads(v) if k == "ivr" else v) for k, v in row.items()}


# The employee and the company number of each call, as the directory names them now:
# by the login the call row kept, else by its extension; '' when the directory does not
# know them (added for the VPBX dialect, whose rows carry user_name and telnum_name).
NAMED_COLUMNS = (
    COLUMNS
    + """, coalesce(ul.login, ue.login, '') AS directory_login,
    coalesce(ul.name, ue.name, '') AS directory_name,
    coalesce(n.name, '') AS number_name, coalesce(n.route_type, '') AS number_route"""
)
NAMED_JOINS = """LEFT JOIN directory_users ul ON ul.pbx_id = c.pbx_id AND ul.login = c.user_login
    LEFT JOIN directory_users ue ON ue.pbx_id = c.pbx_id AND ue.ext = c.ext AND c.ext <> ''
        AND ul.login IS NULL
    LEFT JOIN company_numbers n ON n.pbx_id = c.pbx_id AND n.telnum = c.diversion"""


def _named_sql(pbx_id: str, q: CallQuery, *, paged: bool) -> tuple[str, list[Any]]:
    s = _where(pbx_id, q)
    sql = (
        f"SELECT {NAMED_COLUMNS} FROM calls c {NAMED_JOINS} "
        f"WHERE {' AND '.join(s.where)} ORDER BY {_order(q)}"
    )
    if paged:
        sql += f" LIMIT {s.arg(q.limit)} OFFSET {s.arg(q.offset)}"
    return sql, s.args


async def search_named_calls(
    db: asyncpg.Pool | asyncpg.Connection, pbx_id: str, q: CallQuery
) -> list[asyncpg.Record]:
    """`search_calls` with NAMED_COLUMNS (one page, one round trip)."""
    sql, args = _named_sql(pbx_id, q, paged=True)
    return list(await db.fetch(sql, *args))


async def stream_named_calls(
    pool: asyncpg.Pool, pbx_id: str, q: CallQuery, prefetch: int = 1000
) -> AsyncIterator[asyncpg.Record]:
    """`stream_calls` with NAMED_COLUMNS: each call's employee and company number named by
    the directory, in the same query."""
    sql, args = _named_sql(pbx_id, q, paged=False)
    async with pool.acquire() as conn, conn.transaction(readonly=True):
        async for row in conn.cursor(sql, *args, prefetch=prefetch):
            yield row


@dataclass(frozen=True, slots=True)
class InnerQuery:
    """Internal calls (employee to employee) started in [since, until), newest first."""

    since: datetime
    until: datetime
    parties: tuple[str, ...] = ()  # logins or extensions: the caller or the callee is one
    answered: bool | None = None  # True: the callee answered; False: nobody answered
    limit: int | None = None  # None: all of them


async def stream_inner_calls(
    pool: asyncpg.Pool, pbx_id: str, q: InnerQuery, prefetch: int = 1000
) -> AsyncIterator[asyncpg.Record]:
    """Internal calls with their caller and callee (the first extension leg other than
    the caller's, an answered one first), named by the directory: `from_login`,
    `from_name`, `to_login`, `to_name`, `to_answered_at`, `to_ended_at`, besides the
    call's start, end and recording. A call row's status says nothing of an internal call
    (answered means "by the customer"): its callee's leg does."""
    args = [pbx_id, q.since, q.until, list(q.parties) or None, q.answered, q.limit]
    async with pool.acquire() as conn, conn.transaction(readonly=True):
        async for row in conn.cursor(QUERIES["inner_calls"], *args, prefetch=prefetch):
            yield row
