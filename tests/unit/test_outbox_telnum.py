"""`telnum` / `telnum_name` of the webhooks: the employee's direct number ("User direct
phone number VPBX") and the name of the company number the call came through, both from
the directory (mappings it updates in place)."""

from __future__ import annotations

import json

from bridge.ami.trace import trace_events
from bridge.crm.outbox_rows import OutboxRows, Target
from bridge.crm.profiles import wire_fields
from tests.support.traces import TRACES
from tests.unit.test_tracker_traces import lab_tracker


def target(profile: str) -> Target:
    commands = frozenset({"event", "history"})
    return Target(1, "lab", "primary", "http://crm", "tok", profile, commands, "both", None, True)


def payloads(name: str, rows: OutboxRows, profile: str = "vpbx") -> list[dict[str, str]]:
    tracker = lab_tracker()
    outputs = [
        o for t, ev in trace_events(TRACES / f"{name}.ami.jsonl") for o in tracker.feed(ev, t)
    ]
    return [
        wire_fields(profile, json.loads(row[6]), "tok")
        for row in rows.rows(outputs, [target(profile)])
    ]


def test_an_inbound_call_carries_the_direct_number_and_the_company_numbers_name() -> None:
    names = {"74957654321": "Main line"}
    direct = {"1001": "74957650001"}
    sent = payloads("in_answered", OutboxRows("lab", number_names=names, direct_numbers=direct))
    assert [p["cmd"] for p in sent] == ["event", "event", "event", "history"]
    for p in sent:
        assert (p["ext"], p["telnum"], p["diversion"]) == ("1001", "74957650001", "74957654321")
    assert {p["telnum_name"] for p in sent if p["cmd"] == "event"} == {"Main line"}


def test_a_new_direct_number_is_sent_at_once() -> None:
    direct: dict[str, str] = {}
    rows = OutboxRows("lab", direct_numbers=direct)
    assert {p["telnum"] for p in payloads("in_answered", rows)} == {""}
    direct["1001"] = "74957650001"  # the directory was refreshed
    assert {p["telnum"] for p in payloads("in_answered", rows)} == {"74957650001"}


def test_a_renamed_number_is_sent_with_its_new_name() -> None:
    names = {"74957654321": "Main line"}
    rows = OutboxRows("lab", number_names=names)
    names["74957654321"] = "Head office"  # the directory was refreshed
    assert payloads("in_answered", rows)[0]["telnum_name"] == "Head office"


def test_unknown_numbers_have_no_name_and_legacy_receivers_get_none() -> None:
    sent = payloads("in_answered", OutboxRows("lab"))
    assert sent[0]["telnum"] == "" and sent[0]["telnum_name"] == ""
    rows = OutboxRows(
        "lab", number_names={"74957654321": "x"}, direct_numbers={"1001": "74957650001"}
    )
    legacy = payloads("in_answered", rows, "vpbx-legacy")
    assert "telnum_name" not in legacy[0] and legacy[0]["telnum"] == "74957650001"
