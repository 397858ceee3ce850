"""Closing a call that ended while the bridge was away, with Asterisk's own account of it.

The bridge saw the start of the call (an employee's INCOMING went out, perhaps ACCEPTED);
the rest happened while it was not listening. Asterisk's Channel Event Log tells the whole
call: rebuilt by `bridge.cel` into the events and the record a tracker would have made.
Here the bridge's own open sequences are closed the way that account says (each employee's
sequence open at the moment the bridge last looked), and the history is the account's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from . import model
from .grammar import Grammar
from .model import CallEvent, CallRecord, Output
from .state import Call

BACKFILL = "backfill"
_OPENING = (model.INCOMING, model.OUTGOING)


@dataclass(slots=True)
class Story:
    """One employee's sequence in the account: when they answered, transferred, left."""

    accepted: float | None = None
    transferred: float | None = None
    second_callid: str = ""
    closed: float | None = None


def stories(events: Sequence[CallEvent]) -> list[tuple[float, Story]]:
    """An employee's sequences in the account, each with the time it opened."""
    found: list[tuple[float, Story]] = []
    for ev in events:
        if ev.type in _OPENING or not found:
            found.append((ev.at, Story()))
        story = found[-1][1]
        if ev.type == model.ACCEPTED and story.accepted is None:
            story.accepted = ev.at
        elif ev.type == model.TRANSFERRED and story.transferred is None:
            story.transferred, story.second_callid = ev.at, ev.second_callid
        elif ev.type in (model.COMPLETED, model.CANCELLED):
            story.closed = ev.at
    return found


def story_at(events: Sequence[CallEvent], until: float) -> Story | None:
    """The sequence that was open when the bridge last looked (`until`): the last one
    opened by then, else the first one."""
    found = stories(events)
    if not found:
        return None
    opened = [story for at, story in found if at <= until]
    return opened[-1] if opened else found[0][1]


def settle_call(
    grammar: Grammar,
    call: Call,
    until: float,
    record: CallRecord,
    events: Sequence[CallEvent],
    out: list[Output],
) -> None:
    by_ext: dict[str, list[CallEvent]] = {}
    for ev in events:
        by_ext.setdefault(ev.ext, []).append(ev)
    for sess in list(call.sessions.values()):
        if sess.open:
            story = story_at(by_ext.get(sess.ext, ()), until)
            grammar.settle(sess, story, record.end, out)
    out.append(merged(call, record))


def merged(call: Call, record: CallRecord) -> CallRecord:
    """The account's history of the call, with what the bridge saw where the account
    says nothing (the recording's file name is not in the CEL)."""
    return dataclasses.replace(
        record,
        callid=call.callid,
        direction=record.direction if record.external else (call.direction or record.direction),
        phone=record.phone or call.phone,
        diversion=record.diversion or call.diversion,
        group=record.group or call.group,
        recording=record.recording or call.recording,
        closed_by=BACKFILL,
    )
