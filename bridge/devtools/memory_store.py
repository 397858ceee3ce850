"""An in-memory stand-in for the call store (bridge.store.calls.CallStore), for tests.

The port-plus-fake of the pipeline: it keeps what `save` keeps (calls open and finished,
events by sequence number, each call's facts for a restart, how far the bridge's view is
covered) with the same idempotence (an event stored twice is one event, a history is
queued once per call, a backfilled history never replaces a finished call), and what a
CRM would receive, in order (`crm`: the wire fields, as `crm-bridge replay` prints them).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..replay import crm_payloads
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
from ..tracker.settle import BACKFILL


@dataclass
class _Call:
    callid: str
    direction: str
    phone: str = ""
    diversion: str = ""
    group: str = ""
    start: float = 0.0
    answered: float | None = None
    facts: CallFacts | None = None
    sessions: dict[str, str] = field(default_factory=dict)
    last_seq: int = 0
    record: CallRecord | None = None


class MemoryCallStore:
    def __init__(self, send_internal: bool = False) -> None:
        self.send_internal = send_internal
        self.calls: dict[str, _Call] = {}
        self.events: dict[tuple[str, int], CallEvent] = {}
        self.sent: list[Output] = []  # what reached the outbox, in order
        self.covered: float | None = None
        self.gaps_since: float | None = None  # the earliest gap waiting for its account
        self.saves = 0
        self.fail_next = 0  # that many saves raise ConnectionError (an outage)

    # --------------------------------------------------------------- the port

    async def save(self, outputs: Sequence[Stored]) -> None:
        if self.fail_next:
            self.fail_next -= 1
            raise ConnectionError("the store is away")
        self.save_now(outputs)

    async def open_calls(self) -> list[OpenCall]:
        return self.open_now()

    async def finished_among(self, callids: Collection[str]) -> set[str]:
        return {c for c in callids if c in self.calls and self.calls[c].record is not None}

    async def seen_until(self, gaps: bool = True) -> float | None:
        waiting = self.gaps_since if gaps else None
        return min((t for t in (self.covered, waiting) if t is not None), default=None)

    async def cover(self, until: float) -> None:
        self.covered = until if self.covered is None else max(self.covered, until)

    # ------------------------------------------------------------ synchronous

    def save_now(self, outputs: Iterable[Stored]) -> None:
        self.saves += 1
        for out in outputs:
            if isinstance(out, CallEvent):
                self._event(out)
            elif isinstance(out, CallParked):
                self._parked(out)
            elif isinstance(out, GapsPending):
                self.gaps_since = out.since
            else:
                self._record(out)

    def _parked(self, parked: CallParked) -> None:
        call = self.calls.get(parked.callid)
        if call is None:
            call = self.calls[parked.callid] = _Call(
                parked.callid,
                parked.direction,
                phone=parked.phone,
                diversion=parked.diversion,
                group=parked.group,
                start=parked.facts.start,
                answered=parked.facts.answered,
            )
        if call.record is None:
            call.facts = parked.facts

    def _event(self, ev: CallEvent) -> None:
        call = self.calls.get(ev.callid)
        if call is None:
            call = self.calls[ev.callid] = _Call(ev.callid, ev.direction, start=ev.at)
        if call.record is None:
            call.phone = call.phone or ev.phone
            call.diversion = call.diversion or ev.diversion
            call.group = call.group or ev.group
            if ev.type == "ACCEPTED" and call.answered is None:
                call.answered = ev.at
            if ev.facts is not None:
                call.facts = ev.facts
                call.start = ev.facts.start or call.start
        key = (ev.callid, ev.seq)
        if key in self.events:
            return
        self.events[key] = ev
        call.sessions[ev.ext] = ev.type
        call.last_seq = max(call.last_seq, ev.seq)
        self.sent.append(ev)

    def _record(self, rec: CallRecord) -> None:
        call = self.calls.get(rec.callid)
        if call is None:
            call = self.calls[rec.callid] = _Call(rec.callid, rec.direction)
        first = call.record is None
        if rec.closed_by == BACKFILL and not first:
            return  # never over a finished call
        call.record = rec
        if first and (rec.external or self.send_internal):
            self.sent.append(rec)

    def open_now(self) -> list[OpenCall]:
        return [
            OpenCall(
                callid=c.callid,
                direction=c.direction,
                phone=c.phone,
                diversion=c.diversion,
                group=c.group,
                start=c.start,
                answered=c.answered,
                last_seq=c.last_seq,
                sessions=dict(c.sessions),
                facts=c.facts,
            )
            for c in self.calls.values()
            if c.record is None
        ]

    def crm(self) -> list[dict[str, Any]]:
        """What the primary CRM receives, in order (wire fields, empty ones left out)."""
        return list(crm_payloads(self.sent, self.send_internal))

    def histories(self) -> list[CallRecord]:
        return [o for o in self.sent if isinstance(o, CallRecord)]
