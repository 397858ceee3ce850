"""The name a carrier presents with an inbound caller's number (CallerIDName): kept with the
call when it is a name, never when it is the number again (the lab's carrier always sends
the number there), across a restart and from Asterisk's CEL after a gap.

The named variants are the recorded traces with the caller's CallerIDName replaced by a
name wherever Asterisk showed it (the carrier's channel, and the phones it was passed on to).
"""

from __future__ import annotations

import dataclasses

import pytest

from bridge.cel.backfill import Gap, read_gap
from bridge.cel.interpret import CelInterpreters
from bridge.cel.rows import CelRow
from bridge.devtools.memory_store import MemoryCallStore
from bridge.tracker.model import CallFacts, CallRecord
from bridge.tracker.numbers import presented_name
from tests.support.continuity import Trace
from tests.unit.test_tracker_resync import live_channels, split_after
from tests.unit.test_tracker_traces import LABS, Events, Lab

NAME = "Иван Сидоров"
CRM_NAME = "ООО Ромашка (CRM)"  # what the bridge's contact look-up set as CALLERID(name)
INBOUND = ("in_answered", "in_noanswer", "in_queue", "in_ringgroup", "in_blind_transfer")


@pytest.mark.parametrize(
    ("presented", "kept"),
    [
        ("+79101234567", ""),  # the number again, as the lab's carrier sends it
        ("8 (495) 123-45-67", ""),
        ("<unknown>", ""),
        ("Anonymous", ""),
        ("PRIVATE", ""),
        ("Unavailable", ""),
        ("", ""),
        ("Ivan Sidorov", "Ivan Sidorov"),
        (" Иван\tСидоров\r\n", "Иван Сидоров"),
        ("Ivan\x00\x1b Sidorov", "Ivan Sidorov"),
        ("A" * 200, "A" * 80),
    ],
)
def test_what_counts_as_a_name(presented: str, kept: str) -> None:
    assert presented_name(presented) == kept


def caller_number(events: Events) -> str:
    """The caller ID the carrier's channel came with (the first channel of the trace)."""
    first = next(ev for _, ev in events if ev.get("Event") == "Newchannel")
    return first["CallerIDNum"]


def with_caller_name(events: Events, name: str = NAME) -> list[tuple[float, dict[str, str]]]:
    number = caller_number(events)
    return [
        (t, {**ev, "CallerIDName": name} if ev.get("CallerIDName") == number else dict(ev))
        for t, ev in events
    ]


def records(lab: Lab, events: Events) -> list[CallRecord]:
    tracker = lab.tracker()
    return [o for t, ev in events for o in tracker.feed(ev, t) if isinstance(o, CallRecord)]


def cases() -> list[object]:
    return [pytest.param(lab, n, id=f"{lab}-{n}") for lab in LABS for n in INBOUND]


@pytest.mark.parametrize(("lab", "name"), cases())
def test_an_inbound_call_keeps_the_name_its_carrier_presented(lab: Lab, name: str) -> None:
    events = lab.events(name)
    assert [r.phone_name for r in records(lab, events)] == [""], "the number is no name"
    (record,) = records(lab, with_caller_name(events))
    assert (record.direction, record.phone_name) == ("in", NAME)


@pytest.mark.parametrize("lab", LABS, ids=str)
def test_an_outbound_call_has_no_presented_name(lab: Lab) -> None:
    assert [r.phone_name for r in records(lab, with_caller_name(lab.events("out_answered")))] == [
        ""
    ]


def talking(ev: dict[str, str]) -> bool:
    """The carrier's channel (chan_pjsip's or chan_sip's) joined a bridge."""
    return ev.get("Event") == "BridgeEnter" and "/trunk" in ev.get("Channel", "")


@pytest.mark.parametrize("lab", LABS, ids=str)
def test_a_restart_mid_call_keeps_the_name(lab: Lab) -> None:
    before, after = split_after(with_caller_name(lab.events("in_answered")), talking)
    store = MemoryCallStore()
    first = lab.tracker()
    for t, ev in before:
        store.save_now(first.feed(ev, t))
    at = before[-1][0]
    live = live_channels(first, at)
    second = lab.tracker()  # a new bridge, with what the store kept
    second.restore(store.open_now())
    outputs = second.resync(live, at + 2)
    outputs += [o for t, ev in after for o in second.feed(ev, t)]
    (record,) = [o for o in outputs if isinstance(o, CallRecord)]
    assert record.phone_name == NAME


@pytest.mark.parametrize("lab", LABS, ids=str)
def test_a_call_only_the_cel_saw_keeps_the_name(lab: Lab) -> None:
    trace = Trace(lab.directory, "in_answered")
    number = caller_number(lab.events("in_answered"))

    def name_of(row: CelRow) -> CelRow:
        return dataclasses.replace(row, cid_name=NAME) if row.cid_name == number else row

    rows = [name_of(row) for row in trace.cel]
    assert any(row.cid_name == NAME for row in rows), "the CEL has the caller's name column"
    tracker = lab.tracker()
    gap = Gap(rows[0].eventtime - 1, rows[-1].eventtime + 1, frozenset())
    account = read_gap(CelInterpreters.for_tracker(tracker), gap, rows)
    (call,) = account.calls.values()
    assert (call.record.direction, call.record.phone_name) == ("in", NAME)


@pytest.mark.parametrize("lab", LABS, ids=str)
def test_a_name_the_dialplan_gave_later_is_not_the_carriers(lab: Lab) -> None:
    """The bridge's own look-up renames the caller to the CRM's contact (CALLERID(name)). A
    bridge that takes the call over from Asterisk's snapshot sees that name, not the
    carrier's: it keeps none, and takes the CEL's (the name the channel was made with)."""
    before, after = split_after(with_caller_name(lab.events("in_answered")), talking)
    first = lab.tracker()
    for t, ev in before:
        first.feed(ev, t)
    at = before[-1][0]
    live = [{**ch, "CallerIDName": CRM_NAME} for ch in live_channels(first, at)]

    seen = lab.tracker()  # without the CEL: what the bridge saw
    outputs = seen.resync(live, at + 2)
    outputs += [o for t, ev in after for o in seen.feed(ev, t)]
    (record,) = [o for o in outputs if isinstance(o, CallRecord)]
    assert (record.direction, record.phone_name) == ("in", "")

    told = lab.tracker()  # with it: Asterisk's own account of the call's start
    told.resync(live, at + 2, park=True)
    (call,) = told.calls.values()
    told.amend(call.callid, CallFacts(start=call.start, phone_name=NAME))
    assert call.phone_name == NAME
