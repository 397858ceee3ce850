"""The transactional outbox: webhook rows written in the transaction of the calls.

One row per (target, payload). Rows are keyed by (target, call, dedupe key) so storing the
same tracker output twice enqueues nothing new, and carry a `webhook_id` derived from that
key, so a retried or re-driven webhook keeps its id (receivers drop duplicates by it).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from ..crm.payloads import event_fields, history_fields
from ..crm.profiles import sends
from ..tracker.model import CallEvent, CallRecord, Output

_NAMESPACE = uuid.UUID("6f1c5c7e-7c2a-4d0e-9a55-2b6a1c0de001")


@dataclass(frozen=True, slots=True)
class Target:
    id: int
    pbx_id: str
    name: str
    url: str
    token: str
    profile: str
    commands: frozenset[str]
    direction: str  # in / out / both
    signing_secret: str | None
    enabled: bool

    def wants(self, cmd: str, direction: str) -> bool:
        return (
            self.enabled
            and cmd in self.commands
            and sends(self.profile, cmd)
            and (self.direction == "both" or self.direction == direction)
        )

    @classmethod
    def from_row(cls, row: asyncpg.Record | dict[str, Any]) -> Target:
        return cls(
            id=row["id"],
            pbx_id=row["pbx_id"],
            name=row["name"],
            url=row["url"],
            token=row["token"],
            profile=row["profile"],
            commands=frozenset(row["commands"]),
            direction=row["direction"],
            signing_secret=row["signing_secret"],
            enabled=row["enabled"],
        )


def webhook_id(target_id: int, pbx_id: str, callid: str, key: str) -> str:
    return "msg_" + uuid.uuid5(_NAMESPACE, f"{target_id}/{pbx_id}/{callid}/{key}").hex


_ENQUEUE = """
INSERT INTO webhook_outbox (pbx_id, target_id, callid, cmd, dedupe_key, webhook_id, payload,
                            expires_at)
VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb,
        CASE WHEN $8::float8 IS NULL THEN NULL
             ELSE now() + make_interval(secs => $8::float8) END)
ON CONFLICT (target_id, callid, dedupe_key) DO NOTHING
"""


class Outbox:
    """Turns tracker outputs into outbox rows for every target that wants them."""

    def __init__(
        self,
        pbx_id: str,
        event_ttl: float = 60.0,
        targets_ttl: float = 5.0,
        send_internal: bool = False,
        link_for: Callable[[CallRecord], str] | None = None,
    ) -> None:
        self.pbx_id = pbx_id
        self.link_for = link_for  # the recording link of a finished call, or None
        self.event_ttl = event_ttl
        self.targets_ttl = targets_ttl
        self.send_internal = send_internal
        self._targets: list[Target] = []
        self._loaded_at = float("-inf")

    async def targets(self, conn: asyncpg.Connection) -> list[Target]:
        """Enabled targets, re-read at most every `targets_ttl` seconds."""
        if time.monotonic() - self._loaded_at > self.targets_ttl:
            rows = await conn.fetch(
                "SELECT * FROM webhook_targets WHERE pbx_id = $1 AND enabled ORDER BY id",
                self.pbx_id,
            )
            self._targets = [Target.from_row(r) for r in rows]
            self._loaded_at = time.monotonic()
        return self._targets

    def invalidate(self) -> None:
        self._loaded_at = float("-inf")

    def rows(
        self, outputs: Sequence[Output], targets: Sequence[Target], callbacks: Collection[str] = ()
    ) -> list[tuple]:
        rows: list[tuple] = []
        for out in outputs:
            if isinstance(out, CallEvent):
                cmd, key, ttl = "event", f"event:{out.seq}", self.event_ttl
                fields: dict[str, object] = event_fields(out)
            elif isinstance(out, CallRecord):
                if not (out.external or self.send_internal):
                    continue
                cmd, key, ttl = "history", "history", None
                link = self.link_for(out) if self.link_for and out.recording else ""
                missed = "2" if out.callid in callbacks else ""
                fields = history_fields(out, link=link, missed_status=missed)
            else:  # pragma: no cover
                continue
            rows.extend(self._rows_for(targets, out.callid, cmd, key, out.direction, fields, ttl))
        return rows

    def _rows_for(
        self,
        targets: Sequence[Target],
        callid: str,
        cmd: str,
        key: str,
        direction: str,
        fields: dict[str, object],
        ttl: float | None,
    ) -> list[tuple]:
        """One outbox row per target that wants this command for calls of this direction."""
        wanting = [t for t in targets if t.wants(cmd, direction)]
        if not wanting:
            return []
        payload = json.dumps(fields, ensure_ascii=False)
        return [
            (
                self.pbx_id,
                t.id,
                callid,
                cmd,
                key,
                webhook_id(t.id, self.pbx_id, callid, key),
                payload,
                ttl,
            )
            for t in wanting
        ]

    async def enqueue(
        self, conn: asyncpg.Connection, outputs: Sequence[Output], callbacks: Collection[str] = ()
    ) -> int:
        """Inside the caller's transaction. `callbacks`: outbound calls that called back a
        missed customer (their history says `missedStatus = 2`)."""
        targets = await self.targets(conn)
        if not targets:
            return 0
        rows = self.rows(outputs, targets, callbacks)
        if rows:
            await conn.executemany(_ENQUEUE, rows)
        return len(rows)

    async def enqueue_rating(
        self, conn: asyncpg.Connection, callid: str, rating: int, phone: str = "", ext: str = ""
    ) -> int:
        """Store a post-call rating on its call and queue the `rating` command."""
        call = await conn.fetchrow(
            "UPDATE calls SET rating = $3 WHERE pbx_id = $1 AND callid = $2 "
            "RETURNING phone, user_login, ext, direction",
            self.pbx_id,
            callid,
            rating,
        )
        fields = {
            "cmd": "rating",
            "callid": callid,
            "rating": str(rating),
            "phone": (call["phone"] if call else "") or phone,
            "user": (call["user_login"] if call else "") or ext,
            "ext": (call["ext"] if call else "") or ext,
        }
        direction = call["direction"] if call else "in"
        targets = await self.targets(conn)
        rows = self._rows_for(
            targets, callid, "rating", f"rating:{rating}", direction, fields, None
        )
        if rows:
            await conn.executemany(_ENQUEUE, rows)
        return len(rows)


async def ensure_primary_target(
    conn: asyncpg.Connection,
    pbx_id: str,
    url: str | None,
    token: str | None,
    profile: str,
    signing_secret: str | None,
) -> int | None:
    """The config's [crm] as the target named 'primary' (kept in step with the config).

    A primary switched off by a 410 stays off until an operator enables it again."""
    if not url:
        await conn.execute(
            "UPDATE webhook_targets SET enabled = false, disabled_reason = "
            "'no [crm] url in the config' WHERE pbx_id = $1 AND name = 'primary'",
            pbx_id,
        )
        return None
    return await conn.fetchval(
        """
        INSERT INTO webhook_targets (pbx_id, name, url, token, profile, signing_secret)
        VALUES ($1, 'primary', $2, $3, $4, $5)
        ON CONFLICT (pbx_id, name) DO UPDATE SET url = EXCLUDED.url, token = EXCLUDED.token,
            profile = EXCLUDED.profile, signing_secret = EXCLUDED.signing_secret,
            enabled = CASE WHEN webhook_targets.disabled_reason = 'no [crm] url in the config'
                           THEN true ELSE webhook_targets.enabled END
        RETURNING id
        """,
        pbx_id,
        url,
        token or "",
        profile,
        signing_secret,
    )
