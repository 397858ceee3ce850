"""Fault isolation per call: one call the tracker fails on must not cost the others.

When a handler raises, the calls its event concerns are closed with what is known: their
channels are forgotten (so later events of them are stragglers), every open employee
sequence is closed as the grammar requires, and one record with `closed_by="fault"` is
emitted. A forgotten channel that also spoke for another call (an employee's leg still
under the consultation call's Linkedid after an attended transfer) leaves that call as if
it hung up: that call goes on. A half-applied event cannot leave a sequence half-moved:
the grammar changes a session only together with emitting its event.

The closing path itself is plain bookkeeping (`Topology.forget_channel` and `retire`,
`Grammar.close`, `record.bare_record` when the full record fails): if that fails too, the
fault says so (`TrackerFault.closed` is empty) and the call may be left open.
"""

from __future__ import annotations

from collections.abc import Mapping

from .handlers import EventHandlers
from .model import CallRecord, Output
from .record import bare_record
from .state import Call, Channel
from .topology import Topology

FAULT = "fault"


def concerned(topology: Topology, event: Mapping[str, str]) -> tuple[list[Call], list[Channel]]:
    """The live channels an event names (by any header: Uniqueid, DestUniqueid, a bridge
    id...) and the open calls it names or those channels belong to."""
    channels: dict[str, Channel] = {}
    calls: dict[str, Call] = {}
    for value in event.values():
        if not value:
            continue
        ch = topology.channels.get(value)
        if ch is not None:
            channels[ch.uid] = ch
        for member in topology.bridges.get(value, ()):
            channels[member.uid] = member
        call = topology.calls.get(value)
        if call is not None:
            calls[call.callid] = call
    for ch in channels.values():
        for call in (ch.call, ch.customer_of):
            if call is not None and topology.calls.get(call.callid) is call:
                calls[call.callid] = call
    return list(calls.values()), list(channels.values())


def close_faulty(
    handlers: EventHandlers, event: Mapping[str, str], at: float, out: list[Output]
) -> tuple[str, ...]:
    """Close the calls `event` concerns; returns their callids."""
    topology, grammar = handlers.topology, handlers.grammar
    calls, named = concerned(topology, event)
    faulty = {call.callid for call in calls}
    channels = {ch.uid: ch for ch in named}
    for call in calls:
        channels.update(call.live)
    for ch in channels.values():
        topology.forget_channel(ch, at)
        for sess in ch.sessions:  # it also spoke for another call: it left that one
            if sess.open and sess.call.callid not in faulty:
                grammar.leave_session(sess, ch, at, out)
        ch.sessions = []
    for call in calls:
        if topology.calls.get(call.callid) is call:
            _finish(handlers, call, at, out)
    return tuple(call.callid for call in calls)


def close_parked_faulty(
    handlers: EventHandlers, call: Call, at: float, out: list[Output]
) -> tuple[str, ...]:
    """Close a parked call (it ended while the bridge was away: no channel of it is left,
    the topology no longer holds it) whose settling failed: its history, with what is
    known, unless the failing step had already given it."""
    if not any(isinstance(o, CallRecord) and o.callid == call.callid for o in out):
        _finish(handlers, call, at, out)
    return (call.callid,)


def _finish(handlers: EventHandlers, call: Call, at: float, out: list[Output]) -> None:
    try:
        handlers.finish(call, at, out, FAULT)
    except Exception:
        # the record itself could not be built: plain facts rather than no history
        if not any(isinstance(o, CallRecord) and o.callid == call.callid for o in out):
            out.append(bare_record(call, at, FAULT, handlers.users))
        handlers.topology.retire(call)
