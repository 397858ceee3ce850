"""Click-to-call through a Local channel (FreePBX-style `Originate Local/1001@from-internal`).

The lab recorded the PJSIP form (see click_to_call); this stream follows the same Asterisk
22 event shapes with the Local pair in front, to pin the rule that the employee is the
call's first phone when the dial chain starts at a Local half nobody dialled.
"""

from __future__ import annotations

from bridge.replay import crm_payloads
from tests.support.traces import by_call, grammar_violations
from tests.unit.test_tracker_traces import lab_tracker

L = "1800000000.1"


def ev(event: str, t: float, **headers: str) -> dict[str, str]:
    return {"Event": event, "Timestamp": f"{1800000000 + t:.3f}", **headers}


def chan(name: str, uid: str, state: int, exten: str = "s", num: str = "") -> dict[str, str]:
    return {
        "Channel": name,
        "Uniqueid": uid,
        "Linkedid": L,
        "ChannelState": str(state),
        "Exten": exten,
        "CallerIDNum": num,
    }


def dest(name: str, uid: str, state: int) -> dict[str, str]:
    return {
        "DestChannel": name,
        "DestUniqueid": uid,
        "DestLinkedid": L,
        "DestChannelState": str(state),
    }


ONE = chan("Local/1001@from-internal-00000001;1", L, 0, "79101234567")
TWO = chan("Local/1001@from-internal-00000001;2", "1800000000.2", 4, "1001")
PHONE = chan("PJSIP/1001-00000003", "1800000000.3", 0)
TRUNK = chan("PJSIP/trunk-00000004", "1800000000.4", 0)


def stream(customer_answers: bool) -> list[dict[str, str]]:
    events = [
        ev("Newchannel", 0.0, **ONE),
        ev("Newchannel", 0.0, **TWO),
        ev("LocalBridge", 0.0, LocalOneUniqueid=ONE["Uniqueid"], LocalTwoUniqueid=TWO["Uniqueid"]),
        ev("Newchannel", 0.1, **PHONE),
        ev(
            "DialBegin",
            0.1,
            **TWO,
            **dest(PHONE["Channel"], PHONE["Uniqueid"], 0),
            DialString="1001",
        ),
        ev("Newstate", 0.2, **{**PHONE, "ChannelState": "5"}),
        ev("Newstate", 1.0, **{**PHONE, "ChannelState": "6"}),
        ev(
            "DialEnd",
            1.0,
            **TWO,
            **dest(PHONE["Channel"], PHONE["Uniqueid"], 6),
            DialStatus="ANSWER",
        ),
        ev("BridgeEnter", 1.0, **{**PHONE, "ChannelState": "6"}, BridgeUniqueid="b1"),
        ev("BridgeEnter", 1.0, **{**TWO, "ChannelState": "6"}, BridgeUniqueid="b1"),
        ev("Newchannel", 1.1, **TRUNK),
        ev(
            "DialBegin",
            1.1,
            **ONE,
            **dest(TRUNK["Channel"], TRUNK["Uniqueid"], 0),
            DialString="79101234567@trunk",
        ),
        ev("Newstate", 1.2, **{**TRUNK, "ChannelState": "5"}),
    ]
    if customer_answers:
        events += [
            ev("Newstate", 3.0, **{**TRUNK, "ChannelState": "6"}),
            ev(
                "DialEnd",
                3.0,
                **ONE,
                **dest(TRUNK["Channel"], TRUNK["Uniqueid"], 6),
                DialStatus="ANSWER",
            ),
            ev("BridgeEnter", 3.0, **{**TRUNK, "ChannelState": "6"}, BridgeUniqueid="b2"),
            ev("BridgeEnter", 3.0, **{**ONE, "ChannelState": "6"}, BridgeUniqueid="b2"),
        ]
    else:
        events += [
            ev(
                "DialEnd",
                9.0,
                **ONE,
                **dest(TRUNK["Channel"], TRUNK["Uniqueid"], 5),
                DialStatus="NOANSWER",
            )
        ]
    end = 10.0
    for c in (TRUNK, ONE, TWO, PHONE):
        events.append(ev("Hangup", end, **c, Cause="16"))
    return events


def run(customer_answers: bool) -> dict:
    tracker = lab_tracker()
    outputs = [o for e in stream(customer_answers) for o in tracker.feed(e)]
    (call,) = by_call(list(crm_payloads(outputs))).values()
    return call


def test_answered_click_to_call_via_local() -> None:
    call = run(customer_answers=True)
    assert call["events"] == {"1001": ["OUTGOING", "ACCEPTED", "COMPLETED"]}
    (h,) = call["history"]
    assert (h["type"], h["status"], h["ext"], h["phone"], h["duration"]) == (
        "out",
        "Success",
        "1001",
        "79101234567",
        7,
    )


def test_unanswered_click_to_call_via_local() -> None:
    call = run(customer_answers=False)
    assert call["events"] == {"1001": ["OUTGOING", "CANCELLED"]}
    assert grammar_violations(call["events"]["1001"]) == []
    (h,) = call["history"]
    assert (h["status"], h["ext"]) == ("missed", "1001")
