"""One call the tracker fails on is closed with what is known; the others go on untouched.

Faults are injected into the tracker's own parts (topology, grammar, record) for one
Linkedid of a real trace with five overlapping calls, before or after the part did its
work, so a half-applied event is covered too."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.tracker import handlers
from bridge.tracker import tracker as tracker_module
from bridge.tracker.grammar import Grammar
from bridge.tracker.handlers import EventHandlers
from bridge.tracker.model import CallEvent, CallRecord, Output, TrackerFault
from bridge.tracker.state import Call, Channel
from bridge.tracker.topology import Topology
from bridge.tracker.tracker import CallTracker
from tests.support.ami_events import T0, Ch, ev, feed
from tests.support.continuity import Trace
from tests.support.traces import grammar_violations, scenario_names
from tests.unit.test_tracker_properties import events
from tests.unit.test_tracker_traces import LAB22, lab_tracker

ANSWERED = "1795346599.60"  # 1001 answers
RANG = "1795346600.62"  # 1001 rings, Dial timeout
BUSY = "1795346601.64"  # 1001 busy: no employee events
QUEUED = "1795346602.66"  # queue: 1002 rung through a Local pair
CANCELLED = "1795346602.70"  # 1001 rings, the caller gives up
ALL_CALLS = {ANSWERED, RANG, BUSY, QUEUED, CANCELLED}


class Injected(RuntimeError):
    pass


def _callids(args: tuple[Any, ...]) -> set[str]:
    """The calls a tracker part is working on, from its arguments."""
    ids = set()
    for arg in args:
        if isinstance(arg, Call):
            ids.add(arg.callid)
        elif isinstance(arg, Channel):
            ids |= {c.callid for c in (arg.call, arg.customer_of) if c is not None}
        elif isinstance(arg, dict):  # an AMI event
            ids |= {arg.get("Linkedid", ""), arg.get("DestLinkedid", "")} - {""}
    return ids


@contextmanager
def failing(
    owner: Any,
    name: str,
    callid: str,
    after: bool = False,
    once: bool = False,
    when: Callable[[dict[str, Any]], bool] | None = None,
) -> Iterator[list[tuple[str, ...]]]:
    """Make `owner.name` raise whenever it works on `callid` (after doing its work if
    `after`; only the first time if `once`; only for keyword arguments `when` likes).
    Yields the list of the raises, so a test can tell the fault was reached, and that
    the faulty call did not come back."""
    original = getattr(owner, name)
    raised: list[tuple[str, ...]] = []

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if callid not in _callids(args) or (once and raised) or (when and not when(kwargs)):
            return original(*args, **kwargs)
        if after:
            original(*args, **kwargs)
        raised.append(tuple(sorted(_callids(args))))
        raise Injected(f"{name} on {callid}")

    mp = pytest.MonkeyPatch()
    mp.setattr(owner, name, wrapper)
    try:
        yield raised
    finally:
        mp.undo()


def feed_all(
    tracker: CallTracker,
    trace: list[tuple[float, dict[str, str]]],
    raised: list[tuple[str, ...]] | None = None,
) -> tuple[list[Output], list[tuple[int, TrackerFault]]]:
    """Outputs of the whole trace, and each fault with the index of the event it came from.
    With `raised` (of `failing`), also checks that no event after the first fault reaches
    the failing part for its call again."""
    outputs: list[Output] = []
    faults: list[tuple[int, TrackerFault]] = []
    raised_at_fault: int | None = None
    for i, (t, event) in enumerate(trace):
        outputs.extend(tracker.feed(event, t))
        faults.extend((i, f) for f in tracker.take_faults())
        if faults and raised is not None and raised_at_fault is None:
            raised_at_fault = len(raised)
    if raised_at_fault is not None:
        assert raised is not None and len(raised) == raised_at_fault, "the call came back"
    return outputs, faults


def of_call(outputs: list[Output], callid: str) -> list[Output]:
    return [o for o in outputs if o.callid == callid]


def employee_sequences(outputs: list[Output]) -> dict[str, list[str]]:
    per: dict[str, list[str]] = {}
    for o in outputs:
        if isinstance(o, CallEvent):
            per.setdefault(o.ext, []).append(o.type)
    return per


def untouched() -> list[Output]:
    outputs, faults = feed_all(lab_tracker(), events("concurrent"))
    assert faults == []
    return outputs


INJECTIONS: list[tuple[str, Any, str, str, bool, bool]] = [
    # (id, owner, attribute, callid, after, once)
    ("topology.component", Topology, "component", ANSWERED, False, False),
    ("topology.customer_call", Topology, "customer_call", QUEUED, False, False),
    ("topology.unlink", Topology, "unlink", RANG, False, False),
    ("topology.unlink-after", Topology, "unlink", BUSY, True, False),
    ("grammar.ring", Grammar, "ring", CANCELLED, False, False),
    ("grammar.accept", Grammar, "accept", ANSWERED, False, False),
    ("grammar.accept-after", Grammar, "accept", ANSWERED, True, False),
    # a handler is reached by every later event of the call, which it then ignores
    ("handlers.dial_begin-after", EventHandlers, "on_dial_begin", QUEUED, True, True),
    ("record.build_record", handlers, "build_record", RANG, False, False),
]


@pytest.mark.parametrize(
    ("owner", "name", "callid", "after", "once"),
    [pytest.param(*rest, id=ident) for ident, *rest in INJECTIONS],
)
def test_one_faulty_call_is_closed_and_the_others_are_untouched(
    owner: Any, name: str, callid: str, after: bool, once: bool
) -> None:
    clean = untouched()
    trace = events("concurrent")
    with failing(owner, name, callid, after, once) as raised:
        tracker = lab_tracker()
        outputs, faults = feed_all(tracker, trace, raised)
    assert raised, "the injected fault was never reached"

    for other in ALL_CALLS - {callid}:
        assert of_call(outputs, other) == of_call(clean, other), other

    mine = of_call(outputs, callid)
    (history,) = [o for o in mine if isinstance(o, CallRecord)]
    assert history.closed_by == "fault"
    assert mine[-1] is history, "nothing of the call after its history"
    for ext, types in employee_sequences(mine).items():
        assert grammar_violations(types) == [], ext

    ((index, fault),) = faults
    assert (fault.callid, fault.closed) == (callid, (callid,))
    assert fault.event == trace[index][1]["Event"]
    assert "Injected" in fault.error and fault.at > 0
    assert tracker.open_calls == 0 and not tracker.channels
    assert tracker.close_all(at=2e9) == []
    assert tracker.take_faults() == [] and tracker.faults_total == 1


def test_a_fault_after_acceptance_completes_the_employee() -> None:
    """The employee who talked gets COMPLETED, and the history keeps what was known: the
    fault comes right after the employee was connected with the customer."""
    talking = failing(
        Grammar, "accept", ANSWERED, after=True, when=lambda kw: kw.get("talking", True)
    )
    with talking:
        outputs, _ = feed_all(lab_tracker(), events("concurrent"))
    mine = of_call(outputs, ANSWERED)
    assert employee_sequences(mine) == {"1001": ["INCOMING", "ACCEPTED", "COMPLETED"]}
    (history,) = [o for o in mine if isinstance(o, CallRecord)]
    assert (history.status, history.ext, history.phone) == ("Success", "1001", "79101110001")
    assert {leg.channel for leg in history.legs} >= {"PJSIP/trunk-00000032"}


def test_a_record_that_cannot_be_built_still_gives_one_history() -> None:
    with failing(handlers, "build_record", CANCELLED):
        outputs, faults = feed_all(lab_tracker(), events("concurrent"))
    mine = of_call(outputs, CANCELLED)
    assert employee_sequences(mine) == {"1001": ["INCOMING", "CANCELLED"]}
    (history,) = [o for o in mine if isinstance(o, CallRecord)]
    assert (history.status, history.phone, history.closed_by) == ("missed", "79101110016", "fault")
    assert [f.event for _, f in faults] == ["Hangup"]


def test_faults_are_kept_until_taken() -> None:
    with failing(Grammar, "ring", RANG), failing(Grammar, "ring", QUEUED):
        tracker = lab_tracker()
        for t, event in events("concurrent"):
            tracker.feed(event, t)
    faults = tracker.take_faults()
    assert sorted(f.callid for f in faults) == sorted([RANG, QUEUED])
    assert all(f.event in ("Newstate", "DialState") for f in faults)
    assert tracker.take_faults() == []


def test_a_resync_step_failing_for_one_call_closes_that_call_only() -> None:
    trace = events("concurrent")
    # the link drops while four calls are open: one answered, three ringing
    cut = next(
        i
        for i, (_, event) in enumerate(trace)
        if event.get("Event") == "Hangup" and event.get("Linkedid") == CANCELLED
    )

    def resynced(tracker: CallTracker) -> list[Output]:
        for t, event in trace[:cut]:
            tracker.feed(event, t)
        assert set(tracker.calls) == ALL_CALLS - {BUSY}
        return tracker.resync([], at=trace[cut][0] + 30, known=tracker.mark())

    clean = resynced(lab_tracker())
    with failing(Topology, "unlink", ANSWERED) as raised:
        tracker = lab_tracker()
        outputs = resynced(tracker)
    assert raised
    for other in ALL_CALLS - {ANSWERED, BUSY}:
        assert of_call(outputs, other) == of_call(clean, other) != [], other
    mine = of_call(outputs, ANSWERED)
    assert [o.closed_by for o in mine if isinstance(o, CallRecord)] == ["fault"]
    assert employee_sequences(mine) == {"1001": ["COMPLETED"]}  # INCOMING ACCEPTED came before
    (fault,) = tracker.take_faults()
    assert (fault.callid, fault.event, fault.closed) == (ANSWERED, "resync", (ANSWERED,))
    assert tracker.open_calls == 0 and not tracker.channels


def explode_at(target: int, after: bool) -> Callable[[EventHandlers], dict[str, Any]]:
    """A dispatch table whose `target`-th handled event raises (after its work if `after`)."""
    original = EventHandlers.table

    def table(self: EventHandlers) -> dict[str, Any]:
        count = 0

        def wrap(handler: Callable[..., None]) -> Callable[..., None]:
            def run(ev: dict[str, str], at: float, out: list[Output]) -> None:
                nonlocal count
                count += 1
                if count != target:
                    return handler(ev, at, out)
                if after:
                    handler(ev, at, out)
                raise Injected("boom")

            return run

        return {name: wrap(h) for name, h in original(self).items()}

    return table


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(scenario_names()), data=st.data())
def test_any_event_failing_leaves_every_call_closed_once_and_grammatical(
    name: str, data: st.DataObject
) -> None:
    trace = events(name)
    target = data.draw(st.integers(1, len(trace)), label="failing event")
    after = data.draw(st.booleans(), label="after its work")
    mp = pytest.MonkeyPatch()
    mp.setattr(EventHandlers, "table", explode_at(target, after))
    try:
        tracker = lab_tracker()
        outputs, faults = feed_all(tracker, trace)
    finally:
        mp.undo()
    outputs += tracker.close_all(at=2e9)
    assert tracker.open_calls == 0 and not tracker.channels

    handled = tracker.events_seen - tracker.events_ignored
    assert len(faults) == (1 if target <= handled else 0)
    records = [o for o in outputs if isinstance(o, CallRecord)]
    assert len({r.callid for r in records}) == len(records), "one history per call"
    for (callid, ext), types in _sequences(outputs).items():
        assert grammar_violations(types) == [], (callid, ext)
        assert callid in {r.callid for r in records}
    for _, fault in faults:
        closed = {r.callid for r in records if r.closed_by == "fault"}
        assert set(fault.closed) == closed
        for callid in fault.closed:
            last = [i for i, o in enumerate(outputs) if o.callid == callid][-1]
            assert isinstance(outputs[last], CallRecord), "nothing of it after its history"


def _sequences(outputs: list[Output]) -> dict[tuple[str, str], list[str]]:
    per: dict[tuple[str, str], list[str]] = {}
    for o in outputs:
        if isinstance(o, CallEvent):
            per.setdefault((o.callid, o.ext), []).append(o.type)
    return per


def test_a_fault_on_the_consultation_call_leaves_the_customers_call_going() -> None:
    """After an attended transfer, 1002's leg still carries the consultation call's
    Linkedid while it talks with the customer: a fault on that call closes it, 1002 leaves
    the customer's call as if hung up, and the customer's call ends normally."""
    customer, consult = "1800000000.1", "1800000000.3"
    trunk = Ch("PJSIP/trunk-00000001", customer, customer, 4, "74957654321", "+79101234567")
    p1 = Ch("PJSIP/1001-00000002", "1800000000.2", customer, 0, "s", "1001")
    p1b = Ch("PJSIP/1001-00000003", consult, consult, 4, "1002", "1001")
    p2 = Ch("PJSIP/1002-00000004", "1800000000.4", consult, 0, "s", "1002")
    steps = [
        ev("Newchannel", 0, trunk.h()),
        ev("Newchannel", 0.1, p1.h()),
        ev("DialBegin", 0.1, trunk.h(), p1.h("Dest"), DialString="1001"),
        ev("Newstate", 0.2, p1.h(ChannelState="5")),
        ev("Newstate", 1, p1.h(ChannelState="6")),
        ev("BridgeEnter", 1, p1.h(ChannelState="6"), BridgeUniqueid="B1"),
        ev("BridgeEnter", 1, trunk.h(ChannelState="6"), BridgeUniqueid="B1"),
        ev("Newchannel", 5, p1b.h()),
        ev("Newchannel", 5, p2.h()),
        ev("DialBegin", 5, p1b.h(), p2.h("Dest"), DialString="1002"),
        ev("Newstate", 6, p2.h(ChannelState="6")),
        ev("BridgeEnter", 6, p2.h(ChannelState="6"), BridgeUniqueid="B2"),
        ev("BridgeEnter", 6, p1b.h(ChannelState="6"), BridgeUniqueid="B2"),
        ev("BridgeLeave", 10, trunk.h(ChannelState="6"), BridgeUniqueid="B1"),
        ev("BridgeEnter", 10, trunk.h(ChannelState="6"), BridgeUniqueid="B2", SwapUniqueid=consult),
        ev("BridgeLeave", 10, p1b.h(ChannelState="6"), BridgeUniqueid="B2"),
        ev("BridgeLeave", 10, p1.h(ChannelState="6"), BridgeUniqueid="B1"),
        ev("Hangup", 10.1, p1.h(), Cause="16"),
        ev("Hangup", 10.1, p1b.h(), Cause="16"),
        ev("NewConnectedLine", 15, p2.h(ChannelState="6")),  # fails
        ev("BridgeLeave", 30, p2.h(Linkedid=customer, ChannelState="6"), BridgeUniqueid="B2"),
        ev("Hangup", 30, p2.h(Linkedid=customer, ChannelState="6"), Cause="16"),
        ev("Hangup", 30, trunk.h(ChannelState="6"), Cause="16"),
    ]
    with failing(EventHandlers, "on_touch", consult, once=True) as raised:
        tracker = lab_tracker()  # the dispatch table binds the handlers: patched first
        outputs = feed(tracker, steps)
    assert raised
    (fault,) = tracker.take_faults()
    assert (fault.callid, fault.event, fault.closed) == (consult, "NewConnectedLine", (consult,))
    assert fault.uniqueid == p2.uid
    ((_, mine),) = [(c, o) for c, o in _records(outputs) if c == customer]
    assert (mine.status, mine.ext, mine.closed_by) == ("Success", "1002", "hangup")
    assert mine.duration == 29
    ((_, theirs),) = [(c, o) for c, o in _records(outputs) if c == consult]
    assert theirs.closed_by == "fault"
    assert _sequences(outputs) == {
        (customer, "1001"): ["INCOMING", "ACCEPTED", "COMPLETED"],
        (customer, "1002"): ["INCOMING", "ACCEPTED", "COMPLETED"],
    }
    (left,) = [o for o in outputs if isinstance(o, CallEvent) and o.ext == "1002"][-1:]
    assert left.at == T0 + 15, "1002 left the customer's call when its leg was dropped"
    assert tracker.open_calls == 0 and not tracker.channels


def _records(outputs: list[Output]) -> list[tuple[str, CallRecord]]:
    return [(o.callid, o) for o in outputs if isinstance(o, CallRecord)]


def parked_call() -> tuple[CallTracker, str, CallRecord]:
    """A call up across a gap that ended meanwhile: parked, waiting for the CEL's account
    (with the record a clean run gives it, as an account would)."""
    trace = Trace(LAB22.directory, "in_answered")
    tracker = LAB22.tracker()
    for t, _, event in trace.messages[: trace.moment("talking")]:
        tracker.feed(event, t)
    tracker.resync([], tracker.last_at + 5, tracker.mark(), seen_until=tracker.last_at, park=True)
    (callid,) = tracker.parked()
    clean = LAB22.tracker()
    (record,) = [
        o
        for t, event in LAB22.events("in_answered")
        for o in clean.feed(event, t)
        if isinstance(o, CallRecord)
    ]
    return tracker, callid, record


def test_a_parked_call_whose_settling_fails_still_gets_its_history() -> None:
    tracker, callid, account = parked_call()
    with failing(tracker_module, "settle_call", callid) as raised:
        out = tracker.settle(callid, account, [])
    assert raised
    (history,) = [o for o in out if isinstance(o, CallRecord)]
    assert (history.callid, history.closed_by) == (callid, "fault")
    (fault,) = tracker.take_faults()
    assert (fault.callid, fault.closed, fault.event) == (callid, (callid,), "backfill")
    assert tracker.parked() == [] and tracker.open_calls == 0


def test_a_parked_call_whose_closing_fails_still_gets_its_history() -> None:
    tracker, callid, _ = parked_call()
    with failing(EventHandlers, "finish", callid, once=True) as raised:
        out = tracker.close_parked(callid)
    assert raised
    (history,) = [o for o in out if isinstance(o, CallRecord)]
    assert (history.callid, history.closed_by) == (callid, "fault")
    (fault,) = tracker.take_faults()
    assert (fault.callid, fault.closed) == (callid, (callid,))
    unfailing, _, _ = parked_call()
    # the employees' sequences closed as without the fault (the talk COMPLETED)
    assert employee_sequences(out) == employee_sequences(unfailing.close_parked(callid))
    assert employee_sequences(out) == {"1001": ["COMPLETED"]}
