"""`crm-bridge replay TRACE`: run a recorded AMI trace through the call tracker and
print, one JSON object per line, the `event` and `history` payloads the primary CRM would
receive, in the order they would be sent (SPEC section 7). No database, no network.

A trace recorded by a client that connected while calls were up holds the answer to its
`CoreShowChannels` (`CoreShowChannel` events, then `CoreShowChannelsComplete`): the
tracker takes that snapshot as the daemon does after a (re)connect (`resync`). Tracker
faults are told on stderr, one line each; stdout carries the payloads only.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TextIO

from .ami.parser import AmiMessage
from .ami.trace import trace_events
from .crm.payloads import Fields, event_fields, history_fields, without_empty
from .tracker.model import CallEvent, CallRecord, Output, TrackerFault
from .tracker.tracker import CallTracker


def crm_payloads(outputs: list[Output], send_internal: bool = False) -> Iterator[Fields]:
    for out in outputs:
        if isinstance(out, CallEvent):
            yield without_empty(event_fields(out))
        elif isinstance(out, CallRecord) and (out.external or send_internal):
            yield without_empty(history_fields(out))


def tracked(
    events: Iterable[tuple[float, AmiMessage]], tracker: CallTracker
) -> Iterator[list[Output]]:
    """What the tracker makes of a recorded stream, one list per event or snapshot.

    A message without `Timestamp` happened `t` seconds after the Unix epoch, except a
    snapshot's lines (Asterisk never stamps an action's answer): the snapshot is taken
    at its `t` on the clock of the stamped events next to it, if there are any."""
    lines: list[AmiMessage] | None = None
    snapshot: tuple[list[AmiMessage], float, frozenset[str]] | None = None
    offset = 0.0  # Timestamp - t of the stamped event last seen
    for t, message in events:
        name = message.get("Event")
        if name == "CoreShowChannel":
            if lines is None:
                lines, known = [], tracker.mark()
            lines.append(message)
            continue
        if name == "CoreShowChannelsComplete" and lines is not None:
            snapshot, lines = (lines, t, known), None
            continue
        stamp = message.get("Timestamp")
        if stamp:
            try:
                offset = float(stamp) - t
            except ValueError:
                pass
        if snapshot is not None:
            live, taken, known = snapshot
            yield tracker.resync(live, taken + offset, known)
            snapshot = None
        yield tracker.feed(message, t)
    if snapshot is not None:
        live, taken, known = snapshot
        yield tracker.resync(live, taken + offset, known)


def fault_line(fault: TrackerFault) -> str:
    closed = ",".join(fault.closed) or "none"
    return (
        f"crm-bridge replay: tracker fault on {fault.event} (callid {fault.callid or '-'}, "
        f"uniqueid {fault.uniqueid or '-'}, at {fault.at:.6f}): {fault.error}; "
        f"calls closed: {closed}"
    )


def replay(
    trace: str | Path,
    tracker: CallTracker,
    send_internal: bool = False,
    errors: TextIO | None = None,
) -> Iterator[Fields]:
    """The payloads of a trace, in order; each tracker fault is one line on `errors`
    (stderr by default) as soon as the event that caused it is handled."""
    errors = errors if errors is not None else sys.stderr
    for outputs in tracked(trace_events(trace), tracker):
        yield from crm_payloads(outputs, send_internal)
        for fault in tracker.take_faults():
            errors.write(fault_line(fault) + "\n")


def write_replay(
    trace: str | Path,
    tracker: CallTracker,
    stream: TextIO,
    send_internal: bool = False,
    errors: TextIO | None = None,
) -> int:
    count = 0
    for payload in replay(trace, tracker, send_internal, errors):
        stream.write(json.dumps(payload, ensure_ascii=False) + "\n")
        count += 1
    return count
