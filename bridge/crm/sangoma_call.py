"""The Sangoma CRM REST call object: what `calls/{uuid}` and `calls/list/...` answer and
what Sangoma webhook subscriptions receive at call start and call end (pure code).

The public documentation of the module shows no call object, so it is ours, in the words
of FreePBX's CDR (which FreePBX CRM connectors already read): `uuid` (the Asterisk
UniqueID of the call's first channel, its Linkedid, what `calls/{uuid}` takes), `src`,
`dst`, `did`, `calldate`, `duration`, `billsec`, `disposition`, `recordingfile`, plus the
employee (`extension`, `user`), the `customer` number and the ring group or queue.

Lengths are whole seconds rounded down, as in Asterisk's CDR: `duration` the whole call,
`billsec` from the answer (an employee's, or the customer's on outbound calls; never an
IVR's or queue's) to the end. A webhook body is the call object plus `"event": "start"` or
`"end"`. At start the call is still up: `answer`, `end`, `duration`, `disposition` and
`status` are null; `start` is the call's start (its first channel) in both.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..tracker.model import CallEvent, CallRecord

START, END = "call_start", "call_end"  # the outbox commands of Sangoma subscriptions
COMMANDS = (START, END)
DIRECTIONS = {"in": "inbound", "out": "outbound", "internal": "internal"}

# the history status -> Asterisk's CDR disposition
DISPOSITIONS = {
    "Success": "ANSWERED",
    "missed": "NO ANSWER",
    "Cancel": "NO ANSWER",
    "Busy": "BUSY",
    "NotAvailable": "FAILED",
    "NotAllowed": "FAILED",
    "NotFound": "FAILED",
}


@dataclass(frozen=True, slots=True)
class CallFacts:
    """What the object is made of, from a tracker output or a stored call."""

    callid: str
    direction: str  # in / out / internal
    phone: str
    diversion: str
    ext: str
    user: str
    group: str
    start: float
    answered: float | None = None
    end: float | None = None
    status: str | None = None  # None while the call is up
    recording: str = ""

    @classmethod
    def of_record(cls, rec: CallRecord) -> CallFacts:
        return cls(
            rec.callid,
            rec.direction,
            rec.phone,
            rec.diversion,
            rec.ext,
            rec.user,
            rec.group,
            rec.start,
            rec.answered,
            rec.end,
            rec.status,
            rec.recording,
        )

    @classmethod
    def of_event(cls, ev: CallEvent) -> CallFacts:
        """The call as its first CRM event shows it: up, ringing its first employee; its
        start is the call's, as the end webhook and `calls/{uuid}` give it."""
        return cls(
            ev.callid,
            ev.direction,
            ev.phone,
            ev.diversion,
            ev.ext,
            ev.user,
            ev.group,
            ev.call_start,
        )

    @classmethod
    def of_row(cls, row: Mapping[str, Any]) -> CallFacts:
        """A row of the calls table (`history.COLUMNS`)."""
        return cls(
            row["callid"],
            row["direction"],
            row["phone"],
            row["diversion"],
            row["ext"],
            row["user_login"],
            row["group_name"],
            _ts(row["started_at"]) or 0.0,
            _ts(row["answered_at"]),
            _ts(row["ended_at"]) if row["status"] is not None else None,
            row["status"],
            row["recording"] or "",
        )

    def started(self) -> CallFacts:
        """The same call as it was at its start (for a start webhook sent late)."""
        return CallFacts(
            self.callid,
            self.direction,
            self.phone,
            self.diversion,
            self.ext,
            self.user,
            self.group,
            self.start,
        )


def _ts(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


def _whole(later: float | None, earlier: float | None) -> int | None:
    if later is None or earlier is None:
        return None
    return max(0, math.floor(round(later - earlier, 6)))


def call_object(c: CallFacts) -> dict[str, Any]:
    ended = c.end is not None
    if c.direction == "in":
        src, dst = c.phone, c.ext or c.diversion
    elif c.direction == "out":
        src, dst = c.ext, c.phone
    else:
        src, dst = c.ext, ""
    return {
        "uuid": c.callid,
        "linkedid": c.callid,
        "direction": DIRECTIONS.get(c.direction, c.direction),
        "src": src,
        "dst": dst,
        "did": c.diversion,
        "customer": c.phone,
        "extension": c.ext,
        "user": c.user,
        "group": c.group,
        "calldate": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(c.start)),
        "start": int(c.start),
        "answer": int(c.answered) if c.answered is not None and ended else None,
        "end": int(c.end) if c.end is not None else None,
        "duration": _whole(c.end, c.start),
        "billsec": (_whole(c.end, c.answered) or 0) if ended else None,
        "disposition": DISPOSITIONS.get(c.status or "") if ended else None,
        "status": c.status if ended else None,
        "missed": c.direction == "in" and c.status not in (None, "Success") if ended else None,
        "recordingfile": c.recording.rpartition("/")[2] if c.recording else "",
    }


def webhook_body(c: CallFacts, event: str) -> dict[str, Any]:
    """What a subscription receives: the call object and `event` (start or end)."""
    return {"event": event, **call_object(c)}
