"""A bridge stopped at a point of a recorded trace and back later, in pure code (see
tests/support/continuity.py): with Asterisk's CEL, what a CRM receives is what an
uninterrupted bridge sends, every history exactly once; without it, no call is reported
twice, and none is closed on the host's clock."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.continuity import (
    MOMENTS,
    Trace,
    differences,
    interrupted,
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
    points = sorted({trace.moment(m) for m in MOMENTS} | {0, n // 3, 2 * n // 3})
    for stop in points:
        for back in (stop + 1, stop + max(3, n // 6)):
            got = interrupted(trace, lab.tracker, stop, min(back, n), mode)
            assert _allowed(lab, differences(want, got, strict_events=False)) == [], (stop, back)


@pytest.mark.parametrize("lab", LABS, ids=str)
@pytest.mark.parametrize("mode", ["restart", "reconnect"])
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
