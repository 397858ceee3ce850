"""What the outbox holds: one row per (target, payload), built from tracker outputs.

Pure code next to the wire format: the store writes these rows in the transaction of the
calls they describe, the delivery workers send them. Rows are keyed by (target, call,
dedupe key), so storing the same output twice enqueues nothing new, and carry a
`webhook_id` derived from that key, so a retried or re-driven webhook keeps its id
(receivers drop duplicates by it).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..tracker.model import CallEvent, CallParked, CallRecord, Output
from .payloads import Fields, event_fields, history_fields
from .profiles import sends
from .sangoma_call import END, START, CallFacts, webhook_body

_NAMESPACE = uuid.UUID("6f1c5c7e-7c2a-4d0e-9a55-2b6a1c0de001")

# (pbx_id, target_id, callid, cmd, dedupe_key, webhook_id, payload JSON, ttl seconds | None):
# the parameters of the `enqueue` query
OutboxRow = tuple[str, int, str, str, str, str, str, float | None]


@dataclass(frozen=True, slots=True)
class Target:
    """A webhook receiver: the config's [crm] ('primary') or a subscription."""

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
    def from_row(cls, row: Mapping[str, Any]) -> Target:
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


class OutboxRows:
    """Turns tracker outputs (and ratings) into outbox rows for every target wanting them."""

    def __init__(
        self,
        pbx_id: str,
        event_ttl: float = 60.0,
        send_internal: bool = False,
        link_for: Callable[[CallRecord], str] | None = None,
        number_names: Mapping[str, str] | None = None,
        direct_numbers: Mapping[str, str] | None = None,
    ) -> None:
        self.pbx_id = pbx_id
        self.event_ttl = event_ttl  # seconds a ringing pop-up stays worth sending
        self.send_internal = send_internal
        self.link_for = link_for  # the recording link of a finished call, or None
        # company number -> its name (`telnum_name`); the directory's, updated in place
        self.number_names: Mapping[str, str] = number_names if number_names is not None else {}
        # extension -> the employee's direct number (`telnum`); the directory's, in place
        self.direct_numbers: Mapping[str, str] = (
            direct_numbers if direct_numbers is not None else {}
        )

    def rows(
        self,
        outputs: Sequence[Output],
        targets: Sequence[Target],
        callbacks: Collection[str] = (),
    ) -> list[OutboxRow]:
        """`callbacks`: outbound calls that called back a missed customer (their history
        says `missedStatus = 2`)."""
        rows: list[OutboxRow] = []
        for out in outputs:
            if isinstance(out, CallParked):
                continue  # a call waiting for its account: nothing for a CRM yet
            rows.extend(self.sangoma_rows(out, targets))
            fields: Fields
            telnum = self.direct_numbers.get(out.ext, "") if out.ext else ""
            if isinstance(out, CallEvent):
                cmd, key, ttl = "event", f"event:{out.seq}", self.event_ttl
                # telnum_name: the name of the company number the call came through
                name = self.number_names.get(out.diversion, "") if out.diversion else ""
                fields = event_fields(out, telnum=telnum, telnum_name=name)
            elif isinstance(out, CallRecord):
                if not (out.external or self.send_internal):
                    continue
                cmd, key, ttl = "history", "history", None
                link = self.link_for(out) if self.link_for and out.recording else ""
                missed = "2" if out.callid in callbacks else ""
                fields = history_fields(out, link=link, telnum=telnum, missed_status=missed)
            rows.extend(self.rows_for(targets, out.callid, cmd, key, out.direction, fields, ttl))
        return rows

    def sangoma_rows(
        self, out: CallEvent | CallRecord, targets: Sequence[Target]
    ) -> list[OutboxRow]:
        """Sangoma subscriptions: the call object at call start (the call's first event)
        and at call end. A call that never rang anyone gets its start with its end; the
        dedupe key makes the start one row either way."""
        if not any(t.profile == "sangoma" for t in targets):
            return []
        if isinstance(out, CallEvent):
            if out.seq != 1:
                return []
            start = webhook_body(CallFacts.of_event(out), "start")
            return self.rows_for(targets, out.callid, START, START, out.direction, start, None)
        if not (out.external or self.send_internal):
            return []
        facts = CallFacts.of_record(out)
        return [
            *self.rows_for(
                targets,
                out.callid,
                START,
                START,
                out.direction,
                webhook_body(facts.started(), "start"),
                None,
            ),
            *self.rows_for(
                targets, out.callid, END, END, out.direction, webhook_body(facts, "end"), None
            ),
        ]

    def rating_rows(
        self,
        targets: Sequence[Target],
        callid: str,
        rating: int,
        *,
        phone: str,
        user: str,
        ext: str,
        direction: str,
    ) -> list[OutboxRow]:
        fields: Fields = {
            "cmd": "rating",
            "callid": callid,
            "rating": str(rating),
            "phone": phone,
            "user": user,
            "ext": ext,
        }
        return self.rows_for(targets, callid, "rating", f"rating:{rating}", direction, fields, None)

    def rows_for(
        self,
        targets: Sequence[Target],
        callid: str,
        cmd: str,
        key: str,
        direction: str,
        fields: Fields,
        ttl: float | None,
    ) -> list[OutboxRow]:
        """One row per target that wants this command for calls of this direction."""
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
