"""The call tracker on every real Asterisk trace of the lab, against its expected outcome."""

from __future__ import annotations

import pytest

from bridge.ami.trace import trace_events
from bridge.replay import crm_payloads
from bridge.tracker.model import CallEvent, CallRecord
from bridge.tracker.tracker import CallTracker
from tests.support.traces import (
    EVENT_TYPES,
    TRACES,
    all_trace_names,
    by_call,
    compare_with_expected,
    grammar_violations,
    scenario_names,
)


def lab_tracker() -> CallTracker:
    return CallTracker(["PJSIP/trunk-*"], ["PJSIP/*"], region="RU", main_number="74957654321")


def run(name: str, tracker: CallTracker | None = None) -> tuple[CallTracker, list]:
    tracker = tracker or lab_tracker()
    outputs = []
    for t, message in trace_events(TRACES / f"{name}.ami.jsonl"):
        outputs.extend(tracker.feed(message, t))
    return tracker, outputs


def test_every_scenario_has_a_trace() -> None:
    assert len(scenario_names()) >= 20
    assert "load_mixed" in all_trace_names()


@pytest.mark.parametrize("name", scenario_names())
def test_scenario_matches_expected(name: str) -> None:
    tracker, outputs = run(name)
    payloads = list(crm_payloads(outputs))
    assert compare_with_expected(name, payloads) == []
    assert tracker.open_calls == 0 and not tracker.channels and not tracker.bridges


@pytest.mark.parametrize("name", all_trace_names())
def test_event_grammar_and_one_history_per_call(name: str) -> None:
    _, outputs = run(name)
    calls = by_call(list(crm_payloads(outputs)))
    for callid, call in calls.items():
        assert len(call["history"]) == 1, callid
        for ext, types in call["events"].items():
            assert set(types) <= EVENT_TYPES
            assert grammar_violations(types) == [], (callid, ext)


def test_load_trace_invariants() -> None:
    tracker, outputs = run("load_mixed")
    records = [o for o in outputs if isinstance(o, CallRecord)]
    external = [r for r in records if r.external]
    # 130 inbound + 70 outbound calls were placed (see load_mixed.md)
    assert sum(r.direction == "in" for r in external) == 130
    assert sum(r.direction == "out" for r in external) == 70
    assert len({r.callid for r in records}) == len(records)
    assert tracker.open_calls == 0 and not tracker.channels
    events = [o for o in outputs if isinstance(o, CallEvent)]
    assert {e.callid for e in events} <= {r.callid for r in external}
    for r in external:
        assert r.status in {
            "Success",
            "missed",
            "Cancel",
            "Busy",
            "NotAvailable",
            "NotAllowed",
            "NotFound",
        }
        if r.status == "Success":
            assert r.duration >= 0 and r.answered is not None
        else:
            assert r.duration == 0


def test_internal_call_is_kept_but_sends_nothing() -> None:
    _, outputs = run("internal")
    records = [o for o in outputs if isinstance(o, CallRecord)]
    assert [r.direction for r in records] == ["internal"]
    assert list(crm_payloads(outputs)) == []
    assert list(crm_payloads(outputs, send_internal=True))[0]["type"] == "internal"


def test_recording_path_is_reported() -> None:
    _, outputs = run("in_recorded")
    (record,) = [o for o in outputs if isinstance(o, CallRecord)]
    assert record.recording.startswith("/var/spool/asterisk/monitor/")
    assert record.recording.endswith(".wav")


def test_blind_transfer_reports_both_employees_and_legs() -> None:
    _, outputs = run("in_blind_transfer")
    (record,) = [o for o in outputs if isinstance(o, CallRecord)]
    assert record.ext == "1002" and record.status == "Success"
    assert {leg.ext for leg in record.legs if leg.kind == "extension"} == {"1001", "1002"}
    transferred = [o for o in outputs if isinstance(o, CallEvent) and o.type == "TRANSFERRED"]
    assert [e.ext for e in transferred] == ["1001"]


def test_memory_is_freed_between_scenarios() -> None:
    tracker = lab_tracker()
    for name in scenario_names():
        run(name, tracker)
    assert tracker.open_calls == 0 and not tracker.channels and not tracker.bridges


@pytest.mark.parametrize("name", all_trace_names())
def test_events_the_reader_skips_change_nothing(name: str) -> None:
    """The AMI reader drops what `wants` refuses, unparsed: the outcome must not move."""
    from bridge.ami.trace import read_trace

    full, filtered = lab_tracker(), lab_tracker()
    everything, kept = [], []
    skipped = 0
    for msg in read_trace(TRACES / f"{name}.ami.jsonl"):
        event = msg.parse()
        if "Event" not in event:
            continue
        everything.extend(full.feed(event, msg.t))
        if filtered.wants(event["Event"], msg.raw):
            kept.extend(filtered.feed(event, msg.t))
        else:
            skipped += 1
    assert list(crm_payloads(kept)) == list(crm_payloads(everything))
    assert [o for o in kept if isinstance(o, CallRecord)] == [
        o for o in everything if isinstance(o, CallRecord)
    ]
    assert skipped > 0.5 * full.events_seen, "most traffic is skipped"


def test_directory_logins_and_group_names_from_config() -> None:
    tracker = CallTracker(
        ["PJSIP/trunk-*"],
        ["PJSIP/*"],
        "RU",
        "74957654321",
        users={"1002": "olga.smirnova"},
        groups={"74957654323": "Sales"},
    )
    _, outputs = run("in_ringgroup", tracker)
    (record,) = [o for o in outputs if isinstance(o, CallRecord)]
    assert (record.ext, record.user, record.group) == ("1002", "olga.smirnova", "Sales")
    events = [o for o in outputs if isinstance(o, CallEvent)]
    assert {e.user for e in events} == {"1001", "olga.smirnova", "1003"}
    assert {e.group for e in events} == {"Sales"}
    _, queued = run(
        "in_queue", CallTracker(["PJSIP/trunk-*"], ["PJSIP/*"], groups={"sales": "Sales team"})
    )
    (record,) = [o for o in queued if isinstance(o, CallRecord)]
    assert record.group == "Sales team"
