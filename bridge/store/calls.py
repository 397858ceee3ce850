"""Calls, legs and call events in PostgreSQL: the only writer of calls and the outbox.

`save()` writes what the tracker reported for a batch of AMI events in ONE transaction,
together with the webhook rows of the outbox, so a crash leaves either all of it or none.
Writes are idempotent: replaying the same events upserts the same call and leg rows and
skips events already stored (their key is the call and the event's sequence number in it).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from datetime import UTC, datetime

import asyncpg

from ..crm.outbox_rows import OutboxRows
from ..tracker.model import (
    CallEvent,
    CallFacts,
    CallParked,
    CallRecord,
    GapsPending,
    OpenCall,
    Output,
    Stored,
)
from .queries import QUERIES
from .targets import TargetCache


def _ts(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


class CallStore:
    def __init__(
        self,
        pool: asyncpg.Pool,
        pbx_id: str,
        outbox: OutboxRows | None = None,
        callback_window: float = 86_400.0,
        targets: TargetCache | None = None,
    ) -> None:
        self.pool = pool
        self.pbx_id = pbx_id
        self.outbox = outbox  # None: calls only, no webhooks
        self.callback_window = callback_window  # how old a missed call may be, called back
        self.targets = targets or TargetCache(pbx_id)

    async def save(self, stored: Sequence[Stored]) -> None:
        """Store one batch of tracker outputs atomically (and where gaps wait for their
        account, the batch's last word on it)."""
        outputs = [o for o in stored if not isinstance(o, GapsPending)]
        gaps = [o for o in stored if isinstance(o, GapsPending)]
        opened, events, finished, legs = _rows(outputs)
        statements: list[tuple[str, Sequence[Row]]] = [
            ("open_call", opened),
            ("call_event", events),
            ("finish_call", _last_per_key(finished)),
            ("call_leg", _last_per_key(legs)),
        ]
        async with self.pool.acquire() as conn, conn.transaction():
            for query, rows in statements:
                if rows:  # one statement per table: a column of the batch per parameter
                    await conn.execute(QUERIES[query], self.pbx_id, *_columns(rows))
            callbacks = await self._callbacks(conn, outputs)
            if self.outbox is not None:
                targets = await self.targets.get(conn)
                rows = self.outbox.rows(outputs, targets, callbacks) if targets else []
                if rows:
                    await conn.executemany(QUERIES["enqueue"], rows)
            if gaps:
                await conn.execute(QUERIES["gaps_pending"], self.pbx_id, _ts(gaps[-1].since))

    async def _callbacks(self, conn: asyncpg.Connection, outputs: Sequence[Output]) -> set[str]:
        """Outbound calls that called back a customer whose inbound call was missed (and not
        answered since): their history carries `missedStatus = 2`."""
        outbound = [
            o for o in outputs if isinstance(o, CallRecord) and o.direction == "out" and o.phone
        ]
        if not outbound:
            return set()
        rows = await conn.fetch(  # one round trip for the whole batch
            QUERIES["calls_back"],
            self.pbx_id,
            [o.callid for o in outbound],
            [o.phone for o in outbound],
            [_ts(o.start) for o in outbound],
            self.callback_window,
        )
        found = {r["callid"] for r in rows}
        if found:
            await conn.execute(QUERIES["mark_callbacks"], self.pbx_id, list(found))
        return found

    async def save_rating(
        self, callid: str, rating: int, phone: str = "", ext: str = "", only_known: bool = False
    ) -> int | None:
        """A post-call rating: stored on its call and the `rating` command queued, in one
        transaction. Returns the outbox rows queued; None (and nothing written) when
        `only_known` and the call is not stored."""
        async with self.pool.acquire() as conn, conn.transaction():
            call = await conn.fetchrow(QUERIES["rate_call"], self.pbx_id, callid, rating)
            if call is None and only_known:
                return None
            if self.outbox is None:
                return 0
            targets = await self.targets.get(conn)
            rows = self.outbox.rating_rows(
                targets,
                callid,
                rating,
                phone=(call["phone"] if call else "") or phone,
                user=(call["user_login"] if call else "") or ext,
                ext=(call["ext"] if call else "") or ext,
                direction=call["direction"] if call else "in",
            )
            if rows:
                await conn.executemany(QUERIES["enqueue"], rows)
            return len(rows)

    async def has_call(self, callid: str) -> bool:
        found: bool = await self.pool.fetchval(QUERIES["call_exists"], self.pbx_id, callid)
        return found

    async def recording_of(self, callid: str) -> str:
        path: str | None = await self.pool.fetchval(QUERIES["call_recording"], self.pbx_id, callid)
        return path or ""

    async def known_extensions(self) -> list[str]:
        """Every employee extension seen in a call of this PBX."""
        return [r["ext"] for r in await self.pool.fetch(QUERIES["known_extensions"], self.pbx_id)]

    async def call_counts(self) -> list[tuple[str, str, int]]:
        rows = await self.pool.fetch(QUERIES["call_counts"], self.pbx_id)
        return [(r["direction"], r["status"], r["n"]) for r in rows]

    async def open_calls(self) -> list[OpenCall]:
        """Calls a previous run left open, with each employee's last event."""
        rows = await self.pool.fetch(QUERIES["open_calls"], self.pbx_id)
        return [
            OpenCall(
                callid=r["callid"],
                direction=r["direction"],
                phone=r["phone"],
                diversion=r["diversion"],
                group=r["group_name"],
                start=r["started_at"].timestamp(),
                answered=r["answered_at"].timestamp() if r["answered_at"] else None,
                last_seq=r["last_seq"],
                sessions=json.loads(r["sessions"]),
                facts=CallFacts.from_json(json.loads(r["facts"])) if r["facts"] else None,
            )
            for r in rows
        ]

    async def finished_among(self, callids: Collection[str]) -> set[str]:
        """Which of `callids` are finished here (a backfill never reports them again)."""
        if not callids:
            return set()
        rows = await self.pool.fetch(QUERIES["finished_among"], self.pbx_id, list(callids))
        return {r["callid"] for r in rows}

    async def seen_until(self, gaps: bool = True) -> float | None:
        """How far a previous run followed this PBX (Asterisk's clock), None if never;
        with `gaps` (the CEL is read), not past a gap still waiting for its account (a
        gap left by a bridge that read the CEL is kept for when it is read again)."""
        found: float | None = await self.pool.fetchval(QUERIES["seen_until"], self.pbx_id, gaps)
        return found


Row = tuple[object, ...]


def _columns(rows: Sequence[Row]) -> list[list[object]]:
    """The rows' columns: the queries' arrays (the PBX id is passed once, before them)."""
    return [list(column) for column in zip(*rows, strict=True)]


def _last_per_key(rows: Sequence[Row]) -> list[Row]:
    """One row per key (the first column), the batch's last: one statement cannot update
    a row twice, and one after another the last would have won."""
    return list({row[0]: row for row in rows}.values())


def _rows(outputs: Sequence[Output]) -> tuple[list[Row], list[Row], list[Row], list[Row]]:
    """The rows of the open_call, call_event, finish_call and call_leg queries (the PBX
    id is not in them: it is the queries' first parameter)."""
    opened: dict[str, Row] = {}
    facts: dict[str, str] = {}  # callid -> its facts after its last event of the batch
    events: list[Row] = []
    finished: list[Row] = []
    legs: list[Row] = []
    for out in outputs:
        if isinstance(out, CallEvent):
            answered = _ts(out.at) if out.type == "ACCEPTED" else None
            previous = opened.get(out.callid)
            if previous is None:
                opened[out.callid] = _open_row(out, out.call_start, answered)
            elif answered is not None and previous[6] is None:
                # its answer in the same batch: as the upsert does, keep the start and
                # fill what was still empty
                _, direction, phone, diversion, group, start_ts, _ = previous
                opened[out.callid] = (
                    out.callid,
                    direction,
                    phone or out.phone,
                    diversion or out.diversion,
                    group or out.group,
                    start_ts,
                    answered,
                )
            if out.facts is not None:
                facts[out.callid] = json.dumps(out.facts.as_json())
            events.append(
                (
                    out.callid,
                    out.seq,
                    out.type,
                    _ts(out.at),
                    out.ext,
                    out.user,
                    out.second_callid,
                    out.channel,
                )
            )
        elif isinstance(out, CallParked):  # stored open until its account comes
            start, answered = out.facts.start, _ts(out.facts.answered)
            opened.setdefault(out.callid, _open_row(out, start, answered))
            facts[out.callid] = json.dumps(out.facts.as_json())
        else:
            finished.append(_finished_row(out))
            legs.extend(
                (
                    leg.uniqueid,
                    out.callid,
                    leg.channel,
                    leg.kind,
                    leg.ext,
                    _ts(leg.started),
                    _ts(leg.answered),
                    _ts(leg.ended),
                    leg.cause,
                    leg.dial_status,
                )
                for leg in out.legs
            )
    opened_rows = [(*row, facts.get(callid)) for callid, row in opened.items()]
    return opened_rows, events, finished, legs


def _open_row(out: CallEvent | CallParked, start: float, answered: datetime | None) -> Row:
    """The open_call row of a call first stored (by an event, or parked with none)."""
    return (
        out.callid,
        out.direction,
        out.phone,
        out.diversion,
        out.group,
        _ts(start),
        answered,
    )


def _finished_row(rec: CallRecord) -> Row:
    return (
        rec.callid,
        rec.direction,
        rec.status,
        rec.phone,
        rec.diversion,
        rec.ext,
        rec.user,
        rec.group,
        _ts(rec.start),
        _ts(rec.answered),
        _ts(rec.end),
        rec.duration,
        rec.wait,
        rec.recording,
        rec.closed_by,
        rec.phone_name,
    )
