"""The call tracker on every real Asterisk trace of both labs (Asterisk 22 with PJSIP,
Asterisk 18 with chan_sip), against each scenario's expected outcome."""

from __future__ import annotations

import json
import tomllib
from collections import Counter
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from bridge.ami.trace import read_trace, trace_events
from bridge.devtools.traces import traces_dir
from bridge.replay import crm_payloads
from bridge.tracker.model import CallEvent, CallRecord
from bridge.tracker.tracker import CallTracker
from tests.support.cdr import read_cdr
from tests.support.traces import EVENT_TYPES, by_call, expected_problems, grammar_violations

Events = list[tuple[float, dict[str, str]]]


@dataclass(frozen=True)
class Lab:
    """One recording lab: its traces, the `[pbx]` config they are replayed with."""

    name: str
    directory: Path
    config: Path

    @property
    def pbx(self) -> dict[str, Any]:
        return dict(tomllib.loads(self.config.read_text())["pbx"])

    def tracker(self, **pbx: Any) -> CallTracker:
        """A tracker configured as the lab's PBX (keys of `[pbx]` overridden by `pbx`)."""
        conf = {**self.pbx, **pbx}
        return CallTracker(
            conf["trunks"],
            conf["extensions"],
            conf["region"],
            conf["main_number"],
            users=conf.get("users"),
            groups=conf.get("groups"),
        )

    def scenarios(self) -> list[str]:
        """The traces with an expected outcome."""
        return sorted(p.name.removesuffix(".expected.json") for p in self.glob("expected.json"))

    def traces(self) -> list[str]:
        return sorted(p.name.removesuffix(".ami.jsonl") for p in self.glob("ami.jsonl"))

    def glob(self, suffix: str) -> list[Path]:
        return list(self.directory.glob(f"*.{suffix}"))

    def trace(self, name: str) -> Path:
        return self.directory / f"{name}.ami.jsonl"

    def events(self, name: str) -> Events:
        return list(_events(self.trace(name)))

    def expected(self, name: str) -> dict[str, Any]:
        return json.loads((self.directory / f"{name}.expected.json").read_text())

    def problems(self, name: str, payloads: list[dict[str, Any]]) -> list[str]:
        """Everything that differs from `<name>.expected.json`, in plain words (the
        checks of tests/support/traces.py `compare_with_expected`, for any lab)."""
        return expected_problems(self.expected(name)["calls"], payloads)

    def __str__(self) -> str:
        return self.name


@cache
def _events(path: Path) -> tuple[tuple[float, dict[str, str]], ...]:
    return tuple(trace_events(path))


LAB22 = Lab("asterisk22", traces_dir("asterisk22"), traces_dir("asterisk22") / "lab.toml")
LAB18 = Lab("asterisk18", traces_dir("asterisk18"), traces_dir("asterisk18") / "lab18.toml")
LABS = (LAB22, LAB18)


def lab_scenarios() -> list[Any]:
    return [pytest.param(lab, n, id=f"{lab}-{n}") for lab in LABS for n in lab.scenarios()]


def lab_traces() -> list[Any]:
    return [pytest.param(lab, n, id=f"{lab}-{n}") for lab in LABS for n in lab.traces()]


def lab_tracker() -> CallTracker:
    """The Asterisk 22 lab's tracker (other test modules use it)."""
    return LAB22.tracker()


def run(
    name: str, tracker: CallTracker | None = None, lab: Lab = LAB22
) -> tuple[CallTracker, list]:
    tracker = tracker or lab.tracker()
    outputs = []
    for t, message in lab.events(name):
        outputs.extend(tracker.feed(message, t))
    return tracker, outputs


def test_every_lab_has_every_scenario() -> None:
    for lab in LABS:
        assert len(lab.scenarios()) >= 20, lab
        assert "load_mixed" in lab.traces(), lab
    assert LAB18.scenarios() == LAB22.scenarios()


@pytest.mark.parametrize(("lab", "name"), lab_scenarios())
def test_scenario_matches_expected(lab: Lab, name: str) -> None:
    tracker, outputs = run(name, lab=lab)
    payloads = list(crm_payloads(outputs))
    assert lab.problems(name, payloads) == []
    assert tracker.open_calls == 0 and not tracker.channels and not tracker.bridges
    assert tracker.take_faults() == []


@pytest.mark.parametrize(("lab", "name"), lab_traces())
def test_event_grammar_and_one_history_per_call(lab: Lab, name: str) -> None:
    _, outputs = run(name, lab=lab)
    calls = by_call(list(crm_payloads(outputs)))
    for callid, call in calls.items():
        assert len(call["history"]) == 1, callid
        for ext, types in call["events"].items():
            assert set(types) <= EVENT_TYPES
            assert grammar_violations(types) == [], (callid, ext)


@pytest.mark.parametrize("lab", LABS, ids=str)
def test_load_trace_invariants(lab: Lab) -> None:
    tracker, outputs = run("load_mixed", lab=lab)
    records = [o for o in outputs if isinstance(o, CallRecord)]
    external = [r for r in records if r.external]
    # 130 inbound + 70 outbound calls were placed (see load_mixed.md)
    assert sum(r.direction == "in" for r in external) == 130
    assert sum(r.direction == "out" for r in external) == 70
    assert len({r.callid for r in records}) == len(records)
    assert tracker.open_calls == 0 and not tracker.channels and not tracker.bridges
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
        if r.direction == "in":
            assert r.phone, "the customer's number of every inbound call"
    assert tracker.take_faults() == []


def test_both_labs_agree_on_the_load_trace() -> None:
    """The same 200 calls recorded on both versions: the same directions and statuses,
    but for the one Dial that ended NOANSWER on 22 and ANSWER on 18 (load_mixed.md of
    each set); which phone of a ring group answers first is a race on either."""
    outcomes = []
    for lab in LABS:
        _, outputs = run("load_mixed", lab=lab)
        records = [o for o in outputs if isinstance(o, CallRecord) and o.external]
        outcomes.append(Counter((r.direction, r.status) for r in records))
    one, other = outcomes
    assert sum(((one - other) + (other - one)).values()) <= 2, (one - other, other - one)


@pytest.mark.parametrize("lab", LABS, ids=str)
def test_internal_call_is_kept_but_sends_nothing(lab: Lab) -> None:
    _, outputs = run("internal", lab=lab)
    records = [o for o in outputs if isinstance(o, CallRecord)]
    assert [r.direction for r in records] == ["internal"]
    # 1002 answered 1001: as Asterisk's CDR of the call says (wait = duration - billsec)
    (record,) = records
    (row,) = read_cdr(lab.directory / "internal.cdr.csv")
    assert row.disposition == "ANSWERED"
    assert (record.status, record.ext) == ("Success", "1001")
    assert (record.wait, record.duration) == (row.duration - row.billsec, row.billsec)
    assert list(crm_payloads(outputs)) == []
    assert list(crm_payloads(outputs, send_internal=True))[0]["type"] == "internal"


@pytest.mark.parametrize("lab", LABS, ids=str)
def test_recording_path_is_reported(lab: Lab) -> None:
    _, outputs = run("in_recorded", lab=lab)
    (record,) = [o for o in outputs if isinstance(o, CallRecord)]
    assert record.recording.startswith("/var/spool/asterisk/monitor/")
    assert record.recording.endswith(".wav")


@pytest.mark.parametrize("lab", LABS, ids=str)
def test_blind_transfer_reports_both_employees_and_legs(lab: Lab) -> None:
    _, outputs = run("in_blind_transfer", lab=lab)
    (record,) = [o for o in outputs if isinstance(o, CallRecord)]
    assert record.ext == "1002" and record.status == "Success"
    assert {leg.ext for leg in record.legs if leg.kind == "extension"} == {"1001", "1002"}
    transferred = [o for o in outputs if isinstance(o, CallEvent) and o.type == "TRANSFERRED"]
    assert [e.ext for e in transferred] == ["1001"]


@pytest.mark.parametrize("lab", LABS, ids=str)
def test_inbound_chan_sip_call_is_inbound_with_the_customers_number(lab: Lab) -> None:
    """chan_sip creates the carrier's channel Down and sets Ring just after: the call
    came in all the same (SPEC section 3); the PJSIP lab's channel is born in Ring."""
    newchannel = next(ev for _, ev in lab.events("in_answered") if ev["Event"] == "Newchannel")
    assert newchannel["ChannelState"] == ("0" if lab is LAB18 else "4")
    _, outputs = run("in_answered", lab=lab)
    (record,) = [o for o in outputs if isinstance(o, CallRecord)]
    assert (record.direction, record.phone, record.diversion) == (
        "in",
        "79101234567",
        "74957654321",
    )
    assert [o.type for o in outputs if isinstance(o, CallEvent)][0] == "INCOMING"


@pytest.mark.parametrize("lab", LABS, ids=str)
def test_memory_is_freed_between_scenarios(lab: Lab) -> None:
    tracker = lab.tracker()
    for name in lab.scenarios():
        run(name, tracker, lab)
    assert tracker.open_calls == 0 and not tracker.channels and not tracker.bridges


@pytest.mark.parametrize(("lab", "name"), lab_traces())
def test_events_the_reader_skips_change_nothing(lab: Lab, name: str) -> None:
    """The AMI reader drops what `wants` refuses, unparsed: the outcome must not move."""
    full, filtered = lab.tracker(), lab.tracker()
    everything, kept = [], []
    skipped = 0
    for msg in read_trace(lab.trace(name)):
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


@pytest.mark.parametrize("lab", LABS, ids=str)
def test_directory_logins_and_group_names_from_config(lab: Lab) -> None:
    tracker = lab.tracker(users={"1002": "olga.smirnova"}, groups={"74957654323": "Sales"})
    _, outputs = run("in_ringgroup", tracker, lab)
    (record,) = [o for o in outputs if isinstance(o, CallRecord)]
    assert (record.ext, record.user, record.group) == ("1002", "olga.smirnova", "Sales")
    events = [o for o in outputs if isinstance(o, CallEvent)]
    assert {e.user for e in events} == {"1001", "olga.smirnova", "1003"}
    assert {e.group for e in events} == {"Sales"}
    _, queued = run("in_queue", lab.tracker(groups={"sales": "Sales team"}), lab)
    (record,) = [o for o in queued if isinstance(o, CallRecord)]
    assert record.group == "Sales team"
