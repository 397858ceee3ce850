"""Rules the lab traces do not exercise: reconnect mid-answer, REFER attended transfer,
a duplicated transfer event, a call first seen by its phone, outbound trunk failover."""

from __future__ import annotations

from bridge.tracker.model import CallEvent, CallRecord
from bridge.tracker.tracker import CallTracker
from tests.support.ami_events import T0, Ch, Step, ev, feed, take_mark
from tests.support.traces import grammar_violations

L = "1800000000.1"


def tracker() -> CallTracker:
    return CallTracker(["PJSIP/trunk-*", "PJSIP/trunk2-*"], ["PJSIP/*"], "RU", "74957654321")


def summary(outputs: list) -> tuple[dict[str, list[str]], list[CallRecord]]:
    per: dict[str, list[str]] = {}
    for o in outputs:
        if isinstance(o, CallEvent):
            per.setdefault(o.ext, []).append(o.type)
    for types in per.values():
        assert grammar_violations(types) == []
    return per, [o for o in outputs if isinstance(o, CallRecord)]


def test_answered_while_the_link_was_down() -> None:
    trunk = Ch("PJSIP/trunk-00000001", L, L, 4, "74957654321", "+79101234567", "from-trunk")
    phone = Ch("PJSIP/1001-00000002", "1800000000.2", L, 0, "s", "1001")
    mark: list[frozenset[str]] = []
    steps: list[Step] = [
        ev("Newchannel", 0, trunk.h()),
        ev("Newchannel", 0.1, phone.h()),
        ev("DialBegin", 0.1, trunk.h(), phone.h("Dest"), DialString="1001"),
        ev("Newstate", 0.2, phone.h(ChannelState="5")),
        take_mark(mark),
        # link lost; 1001 answered; link back: the snapshot shows both up and bridged
        lambda tr: tr.resync(
            [trunk.shown(20, "b1", ChannelState="6"), phone.shown(20, "b1", ChannelState="6")],
            T0 + 20,
            mark[0],
        ),
        ev("Hangup", 40, phone.h(ChannelState="6"), Cause="16"),
        ev("Hangup", 40, trunk.h(ChannelState="6"), Cause="16"),
    ]
    per, (record,) = summary(feed(tracker(), steps))
    assert per == {"1001": ["INCOMING", "ACCEPTED", "COMPLETED"]}
    assert (record.status, record.ext, record.duration) == ("Success", "1001", 20)


def test_a_stale_snapshot_never_moves_a_call_back() -> None:
    """The snapshot arrives after newer events: 1001 answered, the snapshot says ringing."""
    trunk = Ch("PJSIP/trunk-00000001", L, L, 4, "74957654321", "+79101234567", "from-trunk")
    phone = Ch("PJSIP/1001-00000002", "1800000000.2", L, 5, "74957654321", "1001")
    mark: list[frozenset[str]] = []
    steps: list[Step] = [
        take_mark(mark),
        ev("Newstate", 10, phone.h(ChannelState="6")),
        ev("DialEnd", 10, trunk.h(), phone.h("Dest", ChannelState="6"), DialStatus="ANSWER"),
        ev("Newstate", 10, trunk.h(ChannelState="6")),
        ev("BridgeEnter", 10, phone.h(ChannelState="6"), BridgeUniqueid="b1"),
        ev("BridgeEnter", 10, trunk.h(ChannelState="6"), BridgeUniqueid="b1"),
        lambda tr: tr.resync(
            [trunk.shown(5, ChannelState="4"), phone.shown(5, ChannelState="5")],
            T0 + 10.05,
            mark[0],
        ),
        ev("Hangup", 40, phone.h(ChannelState="6"), Cause="16"),
        ev("Hangup", 40, trunk.h(ChannelState="6"), Cause="16"),
    ]
    per, (record,) = summary(feed(tracker(), steps))
    assert per == {"1001": ["INCOMING", "ACCEPTED", "COMPLETED"]}
    assert (record.direction, record.status, record.phone) == ("in", "Success", "79101234567")


def test_refer_attended_transfer_with_asterisk_22_swap_order() -> None:
    l2 = "1800000000.3"
    trunk = Ch("PJSIP/trunk-00000001", L, L, 4, "74957654321", "+79101234567", "from-trunk")
    p1 = Ch("PJSIP/1001-00000002", "1800000000.2", L, 0, "s", "1001")
    p1b = Ch("PJSIP/1001-00000003", l2, l2, 4, "1002", "1001")
    p2 = Ch("PJSIP/1002-00000004", "1800000000.4", l2, 0, "s", "1002")
    steps = [
        ev("Newchannel", 0, trunk.h()),
        ev("Newchannel", 0.1, p1.h()),
        ev("DialBegin", 0.1, trunk.h(), p1.h("Dest"), DialString="1001"),
        ev("Newstate", 0.2, p1.h(ChannelState="5")),
        ev("Newstate", 1, p1.h(ChannelState="6")),
        ev("DialEnd", 1, trunk.h(), p1.h("Dest", ChannelState="6"), DialStatus="ANSWER"),
        ev("Newstate", 1, trunk.h(ChannelState="6")),
        ev("BridgeEnter", 1, p1.h(ChannelState="6"), BridgeUniqueid="B1"),
        ev("BridgeEnter", 1, trunk.h(ChannelState="6"), BridgeUniqueid="B1"),
        # 1001 consults 1002 from a second line
        ev("Newchannel", 5, p1b.h()),
        ev("Newchannel", 5, p2.h()),
        ev("DialBegin", 5, p1b.h(), p2.h("Dest"), DialString="1002"),
        ev("Newstate", 5.1, p2.h(ChannelState="5")),
        ev("Newstate", 6, p2.h(ChannelState="6")),
        ev("DialEnd", 6, p1b.h(), p2.h("Dest", ChannelState="6"), DialStatus="ANSWER"),
        ev("Newstate", 6, p1b.h(ChannelState="6")),
        ev("BridgeEnter", 6, p2.h(ChannelState="6"), BridgeUniqueid="B2"),
        ev("BridgeEnter", 6, p1b.h(ChannelState="6"), BridgeUniqueid="B2"),
        # REFER with Replaces: the customer takes the second line's place in B2
        ev("BridgeLeave", 10, trunk.h(ChannelState="6"), BridgeUniqueid="B1"),
        ev("BridgeEnter", 10, trunk.h(ChannelState="6"), BridgeUniqueid="B2", SwapUniqueid=l2),
        ev("BridgeLeave", 10, p1b.h(ChannelState="6"), BridgeUniqueid="B2"),
        ev("BridgeLeave", 10, p1.h(ChannelState="6"), BridgeUniqueid="B1"),
        ev(
            "AttendedTransfer",
            10,
            p1.h("OrigTransferer", ChannelState="6"),
            p1b.h("SecondTransferer", ChannelState="6"),
            trunk.h("Transferee"),
            p2.h("TransferTarget", Linkedid=L),
            Result="Success",
            DestType="Bridge",
        ),
        ev("Hangup", 10.1, p1.h(), Cause="16"),
        ev("Hangup", 10.1, p1b.h(), Cause="16"),
        ev("BridgeLeave", 30, p2.h(Linkedid=L, ChannelState="6"), BridgeUniqueid="B2"),
        ev("Hangup", 30, p2.h(Linkedid=L, ChannelState="6"), Cause="16"),
        ev("Hangup", 30, trunk.h(ChannelState="6"), Cause="16"),
    ]
    outputs = feed(tracker(), steps)
    per, records = summary(outputs)
    assert per == {
        "1001": ["INCOMING", "ACCEPTED", "TRANSFERRED", "COMPLETED"],
        "1002": ["INCOMING", "ACCEPTED", "COMPLETED"],
    }
    (transferred,) = [o for o in outputs if isinstance(o, CallEvent) and o.type == "TRANSFERRED"]
    assert transferred.callid == L and transferred.second_callid == l2
    (record,) = [r for r in records if r.external]
    assert (record.callid, record.status, record.ext) == (L, "Success", "1002")
    assert all(o.callid == L for o in outputs if isinstance(o, CallEvent))


def test_outbound_trunk_failover_is_one_answered_call() -> None:
    phone = Ch("PJSIP/1001-00000001", L, L, 4, "79101234567", "1001")
    first = Ch("PJSIP/trunk-00000002", "1800000000.2", L, 0, "s", "74957654321", "from-trunk")
    second = Ch("PJSIP/trunk2-00000003", "1800000000.3", L, 0, "s", "74957654321", "from-trunk")
    steps = [
        ev("Newchannel", 0, phone.h()),
        ev("Newchannel", 0.1, first.h()),
        ev("DialBegin", 0.1, phone.h(), first.h("Dest"), DialString="79101234567@trunk"),
        ev("Hangup", 0.2, first.h(), Cause="34"),
        ev("DialEnd", 0.2, phone.h(), first.h("Dest"), DialStatus="CONGESTION"),
        ev("Newchannel", 0.3, second.h()),
        ev("DialBegin", 0.3, phone.h(), second.h("Dest"), DialString="79101234567@trunk2"),
        ev("Newstate", 1, second.h(ChannelState="5")),
        ev("Newstate", 3, second.h(ChannelState="6")),
        ev("DialEnd", 3, phone.h(), second.h("Dest", ChannelState="6"), DialStatus="ANSWER"),
        ev("BridgeEnter", 3, phone.h(ChannelState="6"), BridgeUniqueid="b"),
        ev("BridgeEnter", 3, second.h(ChannelState="6"), BridgeUniqueid="b"),
        ev("Hangup", 63, second.h(ChannelState="6"), Cause="16"),
        ev("Hangup", 63, phone.h(ChannelState="6"), Cause="16"),
    ]
    per, (record,) = summary(feed(tracker(), steps))
    assert per == {"1001": ["OUTGOING", "ACCEPTED", "COMPLETED"]}
    assert (record.status, record.duration, record.phone) == ("Success", 60, "79101234567")


def test_a_duplicated_transfer_event_is_reported_once() -> None:
    from bridge.ami.trace import trace_events
    from tests.support.traces import TRACES

    tr = tracker()
    outputs = []
    for t, message in trace_events(TRACES / "in_blind_transfer.ami.jsonl"):
        outputs.extend(tr.feed(message, t))
        if message.get("Event") == "BlindTransfer":
            outputs.extend(tr.feed(dict(message), t))
    per, _ = summary(outputs)
    assert per["1001"] == ["INCOMING", "ACCEPTED", "TRANSFERRED", "COMPLETED"]


def reverse_click_to_call(employee_answers: bool) -> list:
    """Originate the customer first (trunk), then the dialplan rings the employee."""
    trunk = Ch("PJSIP/trunk-00000001", L, L, 0, "s", "79101234567", "from-trunk")
    phone = Ch("PJSIP/1001-00000002", "1800000000.2", L, 0, "s", "1001")
    steps = [
        ev("Newchannel", 0, trunk.h()),
        ev("DialBegin", 0, trunk.h("Dest"), DialString="79101234567@trunk"),
        ev("Newstate", 1, trunk.h(ChannelState="5")),
        ev("Newstate", 3, trunk.h(ChannelState="6")),
        ev("DialEnd", 3, trunk.h("Dest", ChannelState="6"), DialStatus="ANSWER"),
        ev("Newchannel", 3.1, phone.h()),
        ev("DialBegin", 3.1, trunk.h(ChannelState="6"), phone.h("Dest"), DialString="1001"),
        ev("Newstate", 3.2, phone.h(ChannelState="5")),
    ]
    if employee_answers:
        steps += [
            ev("Newstate", 5, phone.h(ChannelState="6")),
            ev(
                "DialEnd",
                5,
                trunk.h(ChannelState="6"),
                phone.h("Dest", ChannelState="6"),
                DialStatus="ANSWER",
            ),
            ev("BridgeEnter", 5, phone.h(ChannelState="6"), BridgeUniqueid="b"),
            ev("BridgeEnter", 5, trunk.h(ChannelState="6"), BridgeUniqueid="b"),
        ]
    else:
        steps += [
            ev(
                "DialEnd",
                23,
                trunk.h(ChannelState="6"),
                phone.h("Dest", ChannelState="5"),
                DialStatus="NOANSWER",
            ),
            ev("Hangup", 23, phone.h(ChannelState="5"), Cause="0"),
        ]
    steps += [
        ev("Hangup", 35, phone.h(ChannelState="6"), Cause="16"),
        ev("Hangup", 35, trunk.h(ChannelState="6"), Cause="16"),
    ]
    return feed(tracker(), steps)


def test_reverse_click_to_call_answered_by_both() -> None:
    per, (record,) = summary(reverse_click_to_call(employee_answers=True))
    assert per == {"1001": ["OUTGOING", "ACCEPTED", "COMPLETED"]}
    assert (record.direction, record.status, record.ext, record.duration) == (
        "out",
        "Success",
        "1001",
        30,
    )


def test_reverse_click_to_call_the_employee_never_answers() -> None:
    per, (record,) = summary(reverse_click_to_call(employee_answers=False))
    assert per == {"1001": ["OUTGOING", "CANCELLED"]}
    assert (record.direction, record.status, record.ext, record.duration) == (
        "out",
        "missed",
        "1001",
        0,
    )
