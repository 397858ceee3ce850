"""A bridge stopped at a point of a recorded trace and back later, in pure code (see
tests/support/continuity.py): with Asterisk's CEL, what a CRM receives is what an
uninterrupted bridge sends, every history exactly once; without it, no call is reported
twice, and none is closed on the host's clock."""

from __future__ import annotations

from typing import Any

import pytest

from bridge.tracker.model import CallEvent
from tests.support.continuity import (
    MOMENTS,
    Trace,
    differences,
    interrupted,
    killed_before_the_account,
    uninterrupted,
)
from tests.unit.test_tracker_traces import LAB18, LABS, Lab


def cases() -> list[Any]:
    return [
        pytest.param(lab, name, id=f"{lab}-{name}")
        for lab in LABS
        for name in lab.traces()
        if name != "load_mixed"
    ]


def _allowed(lab: Lab, problems: list[str]) -> list[str]:
    """Asterisk 18's CEL does not name the queue of a caller who gave up waiting (see
    test_cel_interpret): a call the bridge did not see join its queue has no group."""
    if lab is not LAB18:
        return problems
    return [p for p in problems if "groupRealName None, want 'sales'" not in p]


@pytest.mark.parametrize(("lab", "name"), cases())
@pytest.mark.parametrize("mode", ["restart", "reconnect"])
def test_stopped_at_each_moment_reports_what_an_uninterrupted_bridge_does(
    lab: Lab, name: str, mode: Any
) -> None:
    trace = Trace(lab.directory, name)
    want = uninterrupted(trace, lab.tracker())
    n = len(trace.messages)
    points = sorted({trace.moment(m) for m in MOMENTS} | {0, n // 2})
    for stop in points:  # a gap of a sixth of the trace (none at all: see below)
        back = min(n, stop + max(3, n // 6))
        got = interrupted(trace, lab.tracker, stop, back, mode)
        assert _allowed(lab, differences(want, got, strict_events=False)) == [], (stop, back)


@pytest.mark.parametrize(
    ("lab", "mode"),
    [(LABS[0], "restart"), (LABS[0], "reconnect"), (LAB18, "restart")],
    ids=["asterisk22-restart", "asterisk22-reconnect", "asterisk18-restart"],
)
def test_load_trace_stopped_in_the_middle(lab: Lab, mode: Any) -> None:
    trace = Trace(lab.directory, "load_mixed")
    want = uninterrupted(trace, lab.tracker())
    n = len(trace.messages)
    got = interrupted(trace, lab.tracker, n // 2, n // 2 + n // 15, mode)
    assert len(got.histories()) == len(want.histories())
    assert _allowed(lab, differences(want, got, strict_events=False)) == []


@pytest.mark.parametrize("mode", ["restart", "reconnect"])
def test_without_cel_no_call_is_reported_twice_nor_closed_on_the_hosts_clock(
    mode: Any,
) -> None:
    """No CEL configured: the calls that ended in the gap are closed with what the bridge
    saw (`closed_by = resync`), at the last moment it knew them alive (Asterisk's clock),
    never twice; the calls wholly inside the gap are lost (nothing tells of them)."""
    lab = LABS[0]
    trace = Trace(lab.directory, "load_mixed")
    want = uninterrupted(trace, lab.tracker())
    n = len(trace.messages)
    got = interrupted(trace, lab.tracker, n // 2, n // 2 + n // 15, mode, cel=False)
    histories = got.histories()
    assert len({h.callid for h in histories}) == len(histories)
    ends = {h.callid: h.end for h in want.histories()}
    last = trace.messages[-1][0]
    for h in histories:
        assert h.closed_by in ("hangup", "resync")
        assert h.end <= ends[h.callid] + 1.0, h  # never later than it really ended
        assert h.end < 2e9 and h.start > 1.7e9  # Asterisk's clock, not the replay's
        assert h.end - h.start < last + 60
    assert any(h.closed_by == "resync" for h in histories)
    assert len(histories) < len(want.histories())


@pytest.mark.parametrize("mode", ["restart", "reconnect"])
@pytest.mark.parametrize("cel", [True, False], ids=["cel", "no-cel"])
def test_a_gap_that_missed_nothing_changes_nothing_not_even_the_pop_ups(
    mode: Any, cel: bool
) -> None:
    """Stopped while a phone rings, or while they talk, and back before the next event:
    the same events and histories as a bridge that stayed up (a phone still ringing is not
    CANCELLED then INCOMING again; a restored employee's sequence goes on)."""
    lab = LABS[0]
    for name in lab.scenarios():
        trace = Trace(lab.directory, name)
        want = uninterrupted(trace, lab.tracker())
        for moment in ("ringing", "talking"):
            stop = trace.moment(moment)
            if stop:
                got = interrupted(trace, lab.tracker, stop, stop, mode, cel=cel)
                assert differences(want, got, strict_events=True) == [], (name, moment)


@pytest.mark.parametrize("cel", [True, False], ids=["cel", "no-cel"])
def test_calls_taken_over_at_start_up_keep_their_true_start_and_number(cel: bool) -> None:
    """A bridge started while a call rings or talks adopts it from CoreShowChannels:
    its start is the channel's creation (`Duration`), an outbound call keeps the
    customer's number, a call ringing gets its INCOMING (OUTGOING) at once."""
    lab = LABS[0]
    for name in ("in_answered", "in_queue", "out_answered", "in_blind_transfer"):
        trace = Trace(lab.directory, name)
        want = uninterrupted(trace, lab.tracker())
        (history,) = want.histories()
        for moment in ("ringing", "talking"):
            got = interrupted(trace, lab.tracker, 0, trace.moment(moment), "restart", cel=cel)
            (adopted,) = got.histories()
            assert abs(adopted.start - history.start) <= 1.0, (name, moment)
            assert adopted.phone == history.phone and adopted.direction == history.direction
            first = [e for e in got.sent if not isinstance(e, type(history))][0]
            assert isinstance(first, CallEvent), first
            assert first.type in ("INCOMING", "OUTGOING"), (name, moment)
            if cel or moment == "ringing":
                assert (adopted.status, adopted.ext) == (history.status, history.ext)
                assert abs(adopted.duration - history.duration) <= 1, (name, moment)
                assert abs(adopted.wait - history.wait) <= 1, (name, moment)


def test_killed_while_calls_wait_for_the_cel_loses_none_of_them() -> None:
    """After a gap, calls wait for Asterisk's own account of their end (the CEL); the
    bridge is killed before it came, many seconds of later calls stored. A call that rang
    nobody has no event that stored it: it is stored open while it waits, so the next
    bridge takes it back and reports it once (before: lost, the next bridge's gap began
    after its end)."""
    lab = LABS[0]
    trace = Trace(lab.directory, "load_mixed")
    want = uninterrupted(trace, lab.tracker())
    n = len(trace.messages)
    stop, back = n // 2, n // 2 + n // 15
    kill = back + n // 8
    got, waiting = killed_before_the_account(trace, lab.tracker, stop, back, kill, kill + 50)
    msgs = trace.messages
    assert msgs[kill][0] - msgs[back][0] > 10, "later calls stored long after they waited"
    unstored = [c for c in waiting if not any(e.callid == c for e in got.events.values())]
    assert unstored, "a waiting call that rang nobody (no event stored it)"
    assert differences(want, got, strict_events=False) == []
