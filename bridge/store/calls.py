"""Calls, legs and call events in PostgreSQL.

`save()` writes what the tracker reported for a batch of AMI events in ONE transaction,
together with the webhook rows of the outbox, so a crash leaves either all of it or none.
Writes are idempotent: replaying the same events upserts the same call and leg rows and
skips events already stored (their key is the call and the event's sequence number in it).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime

import asyncpg

from ..delivery.outbox import Outbox
from ..tracker.model import CallEvent, CallRecord, OpenCall, Output


def _ts(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, UTC)


_OPEN_CALL = """
INSERT INTO calls (pbx_id, callid, direction, phone, diversion, group_name, started_at,
                   answered_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (pbx_id, callid) DO UPDATE SET
    phone = CASE WHEN calls.phone = '' THEN EXCLUDED.phone ELSE calls.phone END,
    group_name = CASE WHEN calls.group_name = '' THEN EXCLUDED.group_name
                      ELSE calls.group_name END,
    answered_at = COALESCE(calls.answered_at, EXCLUDED.answered_at)
WHERE calls.status IS NULL
"""

_EVENT = """
INSERT INTO call_events (pbx_id, callid, seq, type, at, ext, user_login, second_callid, channel)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (pbx_id, callid, seq) DO NOTHING
"""

_FINISH_CALL = """
INSERT INTO calls (pbx_id, callid, direction, status, phone, diversion, ext, user_login,
                   group_name, started_at, answered_at, ended_at, duration, wait, recording,
                   closed_by)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
ON CONFLICT (pbx_id, callid) DO UPDATE SET
    direction = EXCLUDED.direction, status = EXCLUDED.status, phone = EXCLUDED.phone,
    diversion = EXCLUDED.diversion, ext = EXCLUDED.ext, user_login = EXCLUDED.user_login,
    group_name = EXCLUDED.group_name, started_at = EXCLUDED.started_at,
    answered_at = EXCLUDED.answered_at, ended_at = EXCLUDED.ended_at,
    duration = EXCLUDED.duration, wait = EXCLUDED.wait, recording = EXCLUDED.recording,
    closed_by = EXCLUDED.closed_by
"""

_CALLS_BACK = """
SELECT r.callid
FROM unnest($2::text[], $3::text[], $4::timestamptz[]) AS r(callid, phone, start)
WHERE EXISTS (
    SELECT 1 FROM calls m
    WHERE m.pbx_id = $1 AND m.phone = r.phone AND m.direction = 'in' AND m.status = 'missed'
      AND m.started_at < r.start AND m.started_at >= r.start - make_interval(secs => $5)
      AND NOT EXISTS (
          SELECT 1 FROM calls s
          WHERE s.pbx_id = $1 AND s.phone = r.phone AND s.status = 'Success'
            AND s.direction <> 'internal' AND s.started_at > m.started_at
            AND s.started_at < r.start))
"""

_LEG = """
INSERT INTO call_legs (pbx_id, uniqueid, callid, channel, kind, ext, started_at, answered_at,
                       ended_at, cause, dial_status)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
ON CONFLICT (pbx_id, uniqueid) DO UPDATE SET
    callid = EXCLUDED.callid, channel = EXCLUDED.channel, kind = EXCLUDED.kind,
    ext = EXCLUDED.ext, started_at = EXCLUDED.started_at, answered_at = EXCLUDED.answered_at,
    ended_at = EXCLUDED.ended_at, cause = EXCLUDED.cause, dial_status = EXCLUDED.dial_status
"""


class CallStore:
    def __init__(
        self,
        pool: asyncpg.Pool,
        pbx_id: str,
        outbox: Outbox | None = None,
        callback_window: float = 86_400.0,
    ) -> None:
        self.pool = pool
        self.pbx_id = pbx_id
        self.outbox = outbox
        self.callback_window = callback_window  # how old a missed call may be, called back

    async def save(self, outputs: Sequence[Output]) -> None:
        """Store one batch of tracker outputs atomically."""
        pbx = self.pbx_id
        opened: dict[str, tuple] = {}
        events: list[tuple] = []
        finished: list[tuple] = []
        legs: list[tuple] = []
        for out in outputs:
            if isinstance(out, CallEvent):
                answered = _ts(out.at) if out.type == "ACCEPTED" else None
                previous = opened.get(out.callid)
                if previous is None or (answered is not None and previous[7] is None):
                    opened[out.callid] = (
                        pbx,
                        out.callid,
                        out.direction,
                        out.phone,
                        out.diversion,
                        out.group,
                        _ts(out.at),
                        answered,
                    )
                events.append(
                    (
                        pbx,
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
            else:
                finished.append(_finished_row(pbx, out))
                legs.extend(
                    (
                        pbx,
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
        async with self.pool.acquire() as conn, conn.transaction():
            if opened:
                await conn.executemany(_OPEN_CALL, list(opened.values()))
            if events:
                await conn.executemany(_EVENT, events)
            if finished:
                await conn.executemany(_FINISH_CALL, finished)
            if legs:
                await conn.executemany(_LEG, legs)
            callbacks = await self._callbacks(conn, outputs)
            if self.outbox is not None:
                await self.outbox.enqueue(conn, outputs, callbacks)

    async def _callbacks(self, conn: asyncpg.Connection, outputs: Sequence[Output]) -> set[str]:
        """Outbound calls that called back a customer whose inbound call was missed (and not
        answered since): their history carries `missedStatus = 2`."""
        outbound = [
            o for o in outputs if isinstance(o, CallRecord) and o.direction == "out" and o.phone
        ]
        if not outbound:
            return set()
        rows = await conn.fetch(  # one round trip for the whole batch
            _CALLS_BACK,
            self.pbx_id,
            [o.callid for o in outbound],
            [o.phone for o in outbound],
            [_ts(o.start) for o in outbound],
            self.callback_window,
        )
        found = {r["callid"] for r in rows}
        if found:
            await conn.execute(
                "UPDATE calls SET missed_status = 2 WHERE pbx_id = $1 AND callid = ANY($2)",
                self.pbx_id,
                list(found),
            )
        return found

    async def open_calls(self) -> list[OpenCall]:
        """Calls a previous run left open, with each employee's last event."""
        rows = await self.pool.fetch(
            """
            SELECT c.callid, c.direction, c.phone, c.diversion, c.group_name, c.started_at,
                   c.answered_at,
                   COALESCE((SELECT max(seq) FROM call_events e
                             WHERE e.pbx_id = c.pbx_id AND e.callid = c.callid), 0) AS last_seq,
                   COALESCE((SELECT jsonb_object_agg(ext, type) FROM (
                                SELECT DISTINCT ON (ext) ext, type FROM call_events e
                                WHERE e.pbx_id = c.pbx_id AND e.callid = c.callid
                                ORDER BY ext, seq DESC) last), '{}'::jsonb)::text AS sessions
            FROM calls c WHERE c.pbx_id = $1 AND c.status IS NULL
            """,
            self.pbx_id,
        )
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
            )
            for r in rows
        ]


def _finished_row(pbx: str, rec: CallRecord) -> tuple:
    return (
        pbx,
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
    )
