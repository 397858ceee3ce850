"""Reconnects and restarts: the tracker closes what ended unseen and adopts what lives."""

from __future__ import annotations

import pytest

from bridge.ami.trace import trace_events
from bridge.cel.backfill import Gap, apply, read_gap
from bridge.cel.interpret import CelInterpreters
from bridge.replay import crm_payloads
from bridge.tracker.model import CallEvent, CallFacts, CallParked, CallRecord, OpenCall
from bridge.tracker.tracker import CallTracker
from tests.support.continuity import Trace
from tests.support.traces import TRACES, by_call, compare_with_expected, grammar_violations
from tests.unit.test_tracker_traces import Lab, lab_traces, lab_tracker


def events_of(name: str) -> list[tuple[float, dict[str, str]]]:
    return list(trace_events(TRACES / f"{name}.ami.jsonl"))


def live_channels(tracker: CallTracker, at: float) -> list[dict[str, str]]:
    """What `CoreShowChannels` would list for the channels the tracker knows."""
    return [
        {
            "Event": "CoreShowChannel",
            "Channel": ch.name,
            "Uniqueid": ch.uid,
            "Linkedid": ch.call.callid if ch.call else ch.uid,
            "ChannelState": str(ch.state),
            "CallerIDNum": ch.caller_num,
            "Exten": ch.exten,
            "BridgeId": ch.bridge or "",
            "Duration": f"00:00:{int(at - ch.created):02d}",
        }
        for ch in tracker.channels.values()
    ]


def split_after(events, predicate):
    for i, (_, ev) in enumerate(events):
        if predicate(ev):
            return events[: i + 1], events[i + 1 :]
    raise AssertionError("no split point")


def answered(ev: dict[str, str]) -> bool:
    return ev.get("Event") == "BridgeEnter" and ev.get("Channel", "").startswith("PJSIP/trunk")


def test_call_that_ended_while_disconnected_is_closed_by_resync() -> None:
    tracker = lab_tracker()
    before, _ = split_after(events_of("in_answered"), answered)
    outputs = [o for t, ev in before for o in tracker.feed(ev, t)]
    assert [o.type for o in outputs if isinstance(o, CallEvent)] == ["INCOMING", "ACCEPTED"]
    mark = tracker.mark()
    closed = tracker.resync([], at=before[-1][0] + 30, known=mark)
    assert [o.type for o in closed if isinstance(o, CallEvent)] == ["COMPLETED"]
    (record,) = [o for o in closed if isinstance(o, CallRecord)]
    assert record.status == "Success" and record.ext == "1001" and record.closed_by == "resync"
    assert tracker.open_calls == 0 and not tracker.channels


def test_a_call_younger_than_the_gap_never_ends_before_it_began() -> None:
    """A call whose events were dropped (a full buffer) may be younger than the moment the
    bridge last knew Asterisk's state: closed at a resync, it ends when it began, not
    before."""
    tracker = lab_tracker()
    events = events_of("in_answered")
    before, _ = split_after(events, answered)
    for t, ev in before:
        tracker.feed(ev, t)
    mark = tracker.mark()  # the events dropped since began before the call
    closed = tracker.resync([], at=before[-1][0] + 30, known=mark, seen_until=events[0][0] - 60)
    (record,) = [o for o in closed if isinstance(o, CallRecord)]
    assert record.end >= record.start and record.closed_by == "resync"
    assert all(leg.ended is not None and leg.ended >= leg.started for leg in record.legs)


def test_channels_created_after_the_mark_survive_the_resync() -> None:
    tracker = lab_tracker()
    events = events_of("in_answered")
    mark = tracker.mark()  # asked for before the call started
    before, after = split_after(events, answered)
    outputs = [o for t, ev in before for o in tracker.feed(ev, t)]
    outputs += tracker.resync([], at=before[-1][0], known=mark)
    outputs += [o for t, ev in after for o in tracker.feed(ev, t)]
    assert compare_with_expected("in_answered", list(crm_payloads(outputs))) == []


@pytest.mark.parametrize(("lab", "name"), lab_traces())
def test_calls_born_after_the_mark_are_seen_whole_and_wait_for_no_cel(lab: Lab, name: str) -> None:
    """Between the snapshot's request and its answer the bridge follows AMI: a call whose
    first channel it saw created then needs no account of a gap, and the CEL's account of
    the gap (what Asterisk had written by the snapshot) changes nothing of it. Its history
    comes at its hang-up, as without the gap."""
    tracker = lab.tracker()
    events = lab.events(name)
    mark = tracker.mark()  # asked for before the first call started
    before, after = events[: len(events) // 3], events[len(events) // 3 :]
    outputs = [o for t, ev in before for o in tracker.feed(ev, t)]
    at = before[-1][0]
    outputs += tracker.resync(live_channels(tracker, at), at, mark, seen_until=at, park=True)
    assert tracker.open_calls and not tracker.waiting_for_cel()
    written = [row for row in Trace(lab.directory, name).cel if row.eventtime <= at]
    gap = Gap(events[0][0] - 1.0, at, frozenset(tracker.waiting_for_cel()))
    outputs += apply(tracker, read_gap(CelInterpreters.for_tracker(tracker), gap, written))
    outputs += [o for t, ev in after for o in tracker.feed(ev, t)]
    assert not tracker.parked()
    assert not [o for o in outputs if isinstance(o, CallParked)]
    unbroken = lab.tracker()
    alone = [o for t, ev in events for o in unbroken.feed(ev, t)]
    assert list(crm_payloads(outputs)) == list(crm_payloads(alone))


def test_only_a_call_up_across_a_gap_takes_the_cels_facts() -> None:
    """What the CEL says of a live call fills in what the bridge missed in a gap: a call
    it saw whole keeps its own start and answer."""
    for mark_first, amended in ((True, False), (False, True)):
        tracker = lab_tracker()
        before, _ = split_after(events_of("in_answered"), answered)
        mark = tracker.mark() if mark_first else frozenset()
        for t, ev in before:
            tracker.feed(ev, t)
        mark = mark if mark_first else tracker.mark()
        at = before[-1][0]
        tracker.resync(live_channels(tracker, at), at, mark, seen_until=at, park=True)
        (call,) = tracker.calls.values()
        start, answer = call.start, call.answered
        assert answer is not None
        tracker.amend(call.callid, CallFacts(start=start - 7, answered=answer - 3))
        assert (call.start, call.answered) == (
            (start - 7, answer) if amended else (start, answer)
        ), f"mark taken {'before' if mark_first else 'after'} the call began"


def test_calls_up_or_born_while_events_are_lost_wait_for_the_cel() -> None:
    """Events dropped from a full buffer: a call up then, or born before the mark of the
    resync the loss asks for, may have lost any event; its end waits for the CEL. A call
    born after that mark is seen whole again."""
    tracker = lab_tracker()
    before, after = split_after(events_of("in_answered"), answered)
    for t, ev in before:
        tracker.feed(ev, t)
    tracker.events_lost(park=True)
    born_meanwhile = events_of("in_noanswer")
    outputs = [o for t, ev in after + born_meanwhile for o in tracker.feed(ev, t)]
    assert not [o for o in outputs if isinstance(o, CallRecord)]
    assert len({o.callid for o in outputs if isinstance(o, CallParked)}) == 2
    assert len(tracker.parked()) == 2
    tracker.mark()
    outputs = [o for t, ev in events_of("out_answered") for o in tracker.feed(ev, t)]
    assert [o.direction for o in outputs if isinstance(o, CallRecord)] == ["out"]


def test_a_call_up_when_the_mark_was_taken_waits_for_the_cel() -> None:
    tracker = lab_tracker()
    before, after = split_after(events_of("in_answered"), answered)
    outputs = [o for t, ev in before for o in tracker.feed(ev, t)]
    mark = tracker.mark()  # the call may have lived through a gap
    at = before[-1][0]
    tracker.resync(live_channels(tracker, at), at, mark, seen_until=at, park=True)
    (callid,) = tracker.waiting_for_cel()
    outputs = [o for t, ev in after for o in tracker.feed(ev, t)]
    assert [o.callid for o in outputs if isinstance(o, CallParked)] == [callid]
    assert not [o for o in outputs if isinstance(o, CallRecord)]
    assert tracker.parked() == [callid]


def test_live_call_survives_a_reconnect_without_duplicates() -> None:
    tracker = lab_tracker()
    before, after = split_after(events_of("in_queue"), answered)
    outputs = [o for t, ev in before for o in tracker.feed(ev, t)]
    at = before[-1][0]
    outputs += tracker.resync(live_channels(tracker, at), at, tracker.mark())
    outputs += [o for t, ev in after for o in tracker.feed(ev, t)]
    assert compare_with_expected("in_queue", list(crm_payloads(outputs))) == []


def test_restart_mid_call_restores_and_finishes_without_repeating_events() -> None:
    first = lab_tracker()
    before, after = split_after(events_of("in_blind_transfer"), answered)
    sent = [o for t, ev in before for o in first.feed(ev, t)]
    events = [o for o in sent if isinstance(o, CallEvent)]
    assert events == sent  # nothing but events before the answer
    at = before[-1][0]
    live = live_channels(first, at)
    (callid,) = first.calls
    # what the store would hand back after a restart
    open_call = OpenCall(
        callid=callid,
        direction="in",
        phone="79101234567",
        diversion="74957654321",
        group="",
        start=first.calls[callid].start,
        answered=first.calls[callid].answered,
        last_seq=max(e.seq for e in events),
        sessions={e.ext: e.type for e in events},
    )
    second = lab_tracker()
    second.restore([open_call])
    resumed = second.resync(live, at + 2)
    resumed += [o for t, ev in after for o in second.feed(ev, t)]
    assert compare_with_expected("in_blind_transfer", list(crm_payloads(sent + resumed))) == []
    seqs = [o.seq for o in sent + resumed if isinstance(o, CallEvent)]
    assert seqs == sorted(set(seqs)), "event sequence numbers continue, never repeat"


def test_restored_call_that_ended_during_the_restart_is_closed() -> None:
    second = lab_tracker()
    second.restore(
        [
            OpenCall(
                "42.1",
                "in",
                "79101234567",
                "74957654321",
                "sales",
                100.0,
                101.0,
                2,
                {"1001": "ACCEPTED", "1002": "INCOMING"},
            ),
        ]
    )
    outputs = second.resync([], at=200.0)
    types = {(o.ext, o.type) for o in outputs if isinstance(o, CallEvent)}
    assert types == {("1001", "COMPLETED"), ("1002", "CANCELLED")}
    (record,) = [o for o in outputs if isinstance(o, CallRecord)]
    assert (record.status, record.ext, record.group, record.closed_by) == (
        "Success",
        "1001",
        "sales",
        "resync",
    )
    assert [o.seq for o in outputs if isinstance(o, CallEvent)] == [3, 4]


def test_adopting_a_call_seen_first_in_the_snapshot() -> None:
    """The bridge starts while a call is up: it reports it from then on."""
    donor = lab_tracker()
    before, after = split_after(events_of("in_answered"), answered)
    for t, ev in before:
        donor.feed(ev, t)
    at = before[-1][0]
    tracker = lab_tracker()
    outputs = tracker.resync(live_channels(donor, at), at)
    outputs += [o for t, ev in after for o in tracker.feed(ev, t)]
    calls = by_call(list(crm_payloads(outputs)))
    (call,) = calls.values()
    assert call["events"] == {"1001": ["INCOMING", "ACCEPTED", "COMPLETED"]}
    assert call["history"][0]["status"] == "Success"
    for types in call["events"].values():
        assert grammar_violations(types) == []


def test_a_duration_no_channel_could_have_counts_as_just_seen() -> None:
    """CoreShowChannel `Duration` is HH:MM:SS; garbage there (a year and more, negative
    time, not a number) must not give a call a start no database can store."""
    seen = lab_tracker()
    before, after = split_after(events_of("in_answered"), answered)
    for t, ev in before:
        seen.feed(ev, t)
    at = before[-1][0]

    def start_taken_over_with(duration: str) -> float:
        live = [{**ch, "Duration": duration} for ch in live_channels(seen, at)]
        restarted = lab_tracker()
        outputs = restarted.resync(live, at, restarted.mark())
        outputs += [o for t, ev in after for o in restarted.feed(ev, t)]
        (record,) = [o for o in outputs if isinstance(o, CallRecord)]
        return record.start

    for duration in ("99999999999:00:00", "-5:00:00", "1e300", "8785:00:00"):
        assert start_taken_over_with(duration) == at, duration
    assert start_taken_over_with("01:02:03") == at - 3723, "a real Duration: the true start"
