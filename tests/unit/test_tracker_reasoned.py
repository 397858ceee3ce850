"""Scenarios no lab recorded (they are held back): the AMI events are reasoned from
Asterisk's source, not recorded, in the Asterisk 22 shapes of tests/support/ami_events.py,
then run through the corpus' shape transformations too (chan_sip births and names, no
Timestamp, Newchannel without Linkedid, DialBegin published late).

Transfer while the target still rings (SPEC section 4, INCOMING): phones ringing for a
colleague's consultation call ring with the customer from the transfer on.

- REFER with Replaces while the consultation rings (a "blonde" transfer from a SIP
  phone; main/bridge.c ast_bridge_transfer_attended): the customer's bridge holds two
  channels and the consultation channel runs Dial, not in a bridge, so the transferee is
  queued to take its place (bridge_channel_internal_queue_attended_transfer ->
  after_bridge_move_channel -> ast_channel_move). The transferer leaves the bridge, the
  `AttendedTransfer` says `DestType: App`, `DestApp: Dial` with the `Transferee`; the
  masquerade swaps Uniqueid, Linkedid and name (main/channel.c channel_do_masquerade,
  no Rename event), so the Dial's later DialEnds name the customer's channel, and the
  old consultation identity is hung up (possibly before the `AttendedTransfer`, from
  the customer's thread). The ringing phones keep their Linkedid until they are bridged
  with the customer (bridge_channel.c ast_bridge_channel_update_linkedids: the oldest).
- Asterisk's own attended transfer (features `atxfer`, AMI `Atxfer`), the transferer
  hanging up while the target rings (main/bridge_basic.c): the target is a Local channel
  requested by the transferer (dial_transfer: no DialBegin, the transferer's Linkedid),
  imparted into a consultation bridge the transferer is moved to; on hang-up the state
  machine goes BLOND: bridge_merge(transferee bridge <- target bridge, kicking the
  transferer): `BridgeMerge`, the Local half's BridgeLeave/BridgeEnter, then
  `AttendedTransfer` `DestType: Bridge` (publish_transfer_success).
- A blind transfer (REFER without Replaces) while the consultation rings: the customer
  is sent to the ring group's extension (bridge.c ast_bridge_transfer_blind, two
  channels: an async goto), whose Dial rings the phones again on new channels of the
  customer's call; the phone then cancels its consultation, whose channels end.

Forwarded and declined (SPEC section 4, "Answered"): an outside number that picks up
but declines was never connected with the customer.

- FollowMe with call acceptance (apps/app_followme.c findmeexec): the caller is answered
  (music on hold), each number is a Local channel requested by the caller and announced
  with a DialBegin after ast_call(); its other half dials the trunk; when the far end
  answers, a DialEnd ANSWER is published for the Local half and the prompt is played
  on it; pressing the decline digit hangs it up (clear_caller), hanging up on the
  prompt gives a second DialEnd NOANSWER. Only a taken call is bridged with the caller
  (ast_bridge_call).
- Dial with a callee screening routine (`U()`, apps/app_dial.c): the trunk leg is Up and
  runs the routine; declined (GOSUB_RESULT=CONTINUE) the DialEnd says `CONTINUE` and the
  leg is hung up, never bridged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from bridge.tracker.model import CallEvent, CallRecord, Output
from bridge.tracker.tracker import CallTracker
from tests.support.ami_events import T0, Ch, ev
from tests.support.traces import grammar_violations
from tests.unit.test_tracker_shapes import (
    born_down,
    dial_published_late,
    no_newchannel_linkedid,
    no_timestamp,
    run_steps,
    tech,
)
from tests.unit.test_tracker_traces import Events

L1 = "1800000000.1"  # the customer's call
L2 = "1800000000.3"  # the consultation call

CUSTOMER = Ch("PJSIP/trunk-00000001", L1, L1, 4, "74957654321", "+79101234567", "from-trunk")
PHONE_1001 = Ch("PJSIP/1001-00000002", "1800000000.2", L1, 0, "s", "1001")


def timed(*events: dict[str, str]) -> Events:
    """(t, event) pairs, t the seconds since T0 as a recorder would note them."""
    return [(float(e["Timestamp"]) - T0, e) for e in events]


def answered_by_1001() -> list[dict[str, str]]:
    c, a = CUSTOMER, PHONE_1001
    return [
        ev("Newchannel", 0, c.h()),
        ev("Newchannel", 0.1, a.h()),
        ev("DialBegin", 0.1, c.h(), a.h("Dest"), DialString="1001"),
        ev("Newstate", 0.2, a.h(ChannelState="5")),
        ev("DialState", 0.2, c.h(), a.h("Dest", ChannelState="5"), DialStatus="RINGING"),
        ev("Newstate", 1, a.h(ChannelState="6")),
        ev("DialEnd", 1, c.h(), a.h("Dest", ChannelState="6"), DialStatus="ANSWER"),
        ev("Newstate", 1, c.h(ChannelState="6")),
        ev("BridgeEnter", 1, a.h(ChannelState="6"), BridgeUniqueid="B1"),
        ev("BridgeEnter", 1, c.h(ChannelState="6"), BridgeUniqueid="B1"),
    ]


def hangup(t: float, ch: Ch, state: str = "6", cause: str = "16", **over: str) -> dict[str, str]:
    return ev("Hangup", t, ch.h(**{"ChannelState": state, **over}), Cause=cause)


# ----------------------------------------------------- transfers while the target rings


def consultation(dialler: Ch, phones: list[Ch], t: float = 5) -> list[dict[str, str]]:
    """`dialler` (1001's second line, or a Local half) rings the ring group's phones."""
    steps = [ev("Newchannel", t, p.h()) for p in phones]
    steps += [ev("DialBegin", t, dialler.h(), p.h("Dest"), DialString=p.num) for p in phones]
    for p in phones:
        steps += [
            ev("Newstate", t + 0.1, p.h(ChannelState="5")),
            ev(
                "DialState",
                t + 0.1,
                dialler.h(),
                p.h("Dest", ChannelState="5"),
                DialStatus="RINGING",
            ),
        ]
    return steps


def refer_with_replaces(zombie_first: bool) -> list[dict[str, str]]:
    c, a = CUSTOMER, PHONE_1001
    a2 = Ch("PJSIP/1001-00000003", L2, L2, 4, "600", "1001")
    p2 = Ch("PJSIP/1002-00000004", "1800000000.4", L2, 0, "s", "1002")
    p3 = Ch("PJSIP/1003-00000005", "1800000000.5", L2, 0, "s", "1003")
    # after the masquerade the Dial runs on the customer's identity, in 1001's dialplan
    c_in_dial = {"ChannelState": "6", "Context": "from-internal", "Exten": "600"}
    transfer = ev(
        "AttendedTransfer",
        8,
        a.h("OrigTransferer", ChannelState="6"),
        {"OrigBridgeUniqueid": "B1", "OrigBridgeNumChannels": "2"},
        a2.h("SecondTransferer"),
        c.h("Transferee", ChannelState="6"),
        Result="Success",
        IsExternal="Yes",
        DestType="App",
        DestApp="Dial",
    )
    zombie = hangup(8, a2, "4")
    steps = [
        *answered_by_1001(),
        ev("Newchannel", 5, a2.h()),
        *consultation(a2, [p2, p3]),
        ev("BridgeLeave", 8, a.h(ChannelState="6"), BridgeUniqueid="B1"),
        *([zombie, transfer] if zombie_first else [transfer]),
        ev("BridgeLeave", 8, c.h(ChannelState="6"), BridgeUniqueid="B1"),
        ev("BridgeDestroy", 8, BridgeUniqueid="B1"),
        ev("Newexten", 8, c.h(**c_in_dial), Application="Dial", AppData="PJSIP/1002&PJSIP/1003"),
        *([] if zombie_first else [zombie]),
        hangup(8.1, a),
        ev("Newstate", 10, p2.h(ChannelState="6")),
        ev("DialEnd", 10, c.h(**c_in_dial), p2.h("Dest", ChannelState="6"), DialStatus="ANSWER"),
        ev("DialEnd", 10, c.h(**c_in_dial), p3.h("Dest", ChannelState="5"), DialStatus="CANCEL"),
        hangup(10, p3, "5", "26"),
        ev("BridgeEnter", 10, p2.h(ChannelState="6"), BridgeUniqueid="B2"),
        ev("BridgeEnter", 10, c.h(**c_in_dial), BridgeUniqueid="B2"),
        ev("BridgeLeave", 20, c.h(**c_in_dial), BridgeUniqueid="B2"),
        hangup(20, c, **c_in_dial),
        ev("BridgeLeave", 20, p2.h(ChannelState="6", Linkedid=L1), BridgeUniqueid="B2"),
        hangup(20, p2, Linkedid=L1),
        ev("BridgeDestroy", 20, BridgeUniqueid="B2"),
    ]
    return steps


def features_blonde() -> list[dict[str, str]]:
    c, a = CUSTOMER, PHONE_1001
    t1 = Ch("Local/600@from-internal-00000001;1", "1800000000.3", L1, 0, "600", "1001")
    t2 = Ch("Local/600@from-internal-00000001;2", "1800000000.4", L1, 4, "600", "1001")
    p2 = Ch("PJSIP/1002-00000005", "1800000000.5", L1, 0, "s", "1002")
    p3 = Ch("PJSIP/1003-00000006", "1800000000.6", L1, 0, "s", "1003")
    return [
        *answered_by_1001(),
        # *2 600: dial_transfer() requests Local/600@from-internal for 1001 (no DialBegin)
        ev("Newchannel", 5, t1.h()),
        ev("Newchannel", 5, t2.h()),
        ev("MusicOnHoldStart", 5, c.h(ChannelState="6")),
        ev("BridgeEnter", 5, t1.h(), BridgeUniqueid="B2"),
        ev("BridgeLeave", 5, a.h(ChannelState="6"), BridgeUniqueid="B1"),
        ev("BridgeEnter", 5, a.h(ChannelState="6"), BridgeUniqueid="B2"),
        *consultation(t2, [p2, p3]),
        ev("Newstate", 5.1, t1.h(ChannelState="5")),
        # 1001 hangs up while they ring: BLOND, the consultation bridge merged into B1
        ev("BridgeMerge", 8, ToBridgeUniqueid="B1", FromBridgeUniqueid="B2"),
        ev("BridgeLeave", 8, t1.h(ChannelState="5"), BridgeUniqueid="B2"),
        ev("BridgeEnter", 8, t1.h(ChannelState="5"), BridgeUniqueid="B1"),
        ev("BridgeLeave", 8, a.h(ChannelState="6"), BridgeUniqueid="B2"),
        ev(
            "AttendedTransfer",
            8,
            a.h("OrigTransferer", ChannelState="6"),
            {"OrigBridgeUniqueid": "B1"},
            a.h("SecondTransferer", ChannelState="6"),
            {"SecondBridgeUniqueid": "B2"},
            c.h("Transferee", ChannelState="6"),
            t1.h("TransferTarget", ChannelState="5"),
            Result="Success",
            IsExternal="No",
            DestType="Bridge",
            DestBridgeUniqueid="B1",
        ),
        ev("MusicOnHoldStop", 8, c.h(ChannelState="6")),
        hangup(8, a),
        ev("BridgeDestroy", 8, BridgeUniqueid="B2"),
        ev("Newstate", 10, p2.h(ChannelState="6")),
        ev("DialEnd", 10, t2.h(), p2.h("Dest", ChannelState="6"), DialStatus="ANSWER"),
        ev("DialEnd", 10, t2.h(), p3.h("Dest", ChannelState="5"), DialStatus="CANCEL"),
        hangup(10, p3, "5", "26"),
        ev("Newstate", 10, t2.h(ChannelState="6")),
        ev("Newstate", 10, t1.h(ChannelState="6")),
        ev("BridgeEnter", 10, p2.h(ChannelState="6"), BridgeUniqueid="B3"),
        ev("BridgeEnter", 10, t2.h(ChannelState="6"), BridgeUniqueid="B3"),
        ev("BridgeLeave", 20, c.h(ChannelState="6"), BridgeUniqueid="B1"),
        hangup(20, c),
        ev("BridgeLeave", 20, t1.h(ChannelState="6"), BridgeUniqueid="B1"),
        hangup(20, t1),
        ev("BridgeLeave", 20, t2.h(ChannelState="6"), BridgeUniqueid="B3"),
        hangup(20, t2),
        ev("BridgeLeave", 20, p2.h(ChannelState="6"), BridgeUniqueid="B3"),
        hangup(20, p2),
    ]


def blind_while_consulting() -> list[dict[str, str]]:
    c, a = CUSTOMER, PHONE_1001
    a2 = Ch("PJSIP/1001-00000003", L2, L2, 4, "600", "1001")
    old2 = Ch("PJSIP/1002-00000004", "1800000000.4", L2, 0, "s", "1002")
    old3 = Ch("PJSIP/1003-00000005", "1800000000.5", L2, 0, "s", "1003")
    p2 = Ch("PJSIP/1002-00000006", "1800000000.6", L1, 0, "s", "1002")
    p3 = Ch("PJSIP/1003-00000007", "1800000000.7", L1, 0, "s", "1003")
    c_at_600 = {"ChannelState": "6", "Context": "from-internal", "Exten": "600"}
    return [
        *answered_by_1001(),
        ev("Newchannel", 5, a2.h()),
        *consultation(a2, [old2, old3]),
        ev(
            "BlindTransfer",
            8,
            a.h("Transferer", ChannelState="6"),
            c.h("Transferee", ChannelState="6"),
            {"BridgeUniqueid": "B1"},
            Result="Success",
            IsExternal="Yes",
            Context="from-internal",
            Extension="600",
        ),
        ev("BridgeLeave", 8, a.h(ChannelState="6"), BridgeUniqueid="B1"),
        ev("BridgeLeave", 8, c.h(ChannelState="6"), BridgeUniqueid="B1"),
        ev("BridgeDestroy", 8, BridgeUniqueid="B1"),
        ev("Newexten", 8, c.h(**c_at_600), Application="Dial", AppData="PJSIP/1002&PJSIP/1003"),
        *consultation(Ch(c.name, L1, L1, 6, "600", c.num, "from-internal"), [p2, p3], 8.1),
        hangup(8.2, a),
        # the phone cancels its consultation: its Dial ends, its phones stop ringing
        ev("DialEnd", 8.3, a2.h(), old2.h("Dest", ChannelState="5"), DialStatus="CANCEL"),
        ev("DialEnd", 8.3, a2.h(), old3.h("Dest", ChannelState="5"), DialStatus="CANCEL"),
        hangup(8.3, old2, "5", "0"),
        hangup(8.3, old3, "5", "0"),
        hangup(8.3, a2, "4", "0"),
        ev("Newstate", 10, p2.h(ChannelState="6")),
        ev("DialEnd", 10, c.h(**c_at_600), p2.h("Dest", ChannelState="6"), DialStatus="ANSWER"),
        ev("DialEnd", 10, c.h(**c_at_600), p3.h("Dest", ChannelState="5"), DialStatus="CANCEL"),
        hangup(10, p3, "5", "26"),
        ev("BridgeEnter", 10, p2.h(ChannelState="6"), BridgeUniqueid="B2"),
        ev("BridgeEnter", 10, c.h(**c_at_600), BridgeUniqueid="B2"),
        ev("BridgeLeave", 20, c.h(**c_at_600), BridgeUniqueid="B2"),
        hangup(20, c, **c_at_600),
        ev("BridgeLeave", 20, p2.h(ChannelState="6"), BridgeUniqueid="B2"),
        hangup(20, p2),
    ]


# --------------------------------------------------------- forwarded and declined

MOBILE = "79161112233"


def ring_1001_then_forward() -> list[dict[str, str]]:
    """The customer rings 1001 for 5 s (Dial timeout), then is forwarded outside."""
    c, a = CUSTOMER, PHONE_1001
    return [
        ev("Newchannel", 0, c.h()),
        ev("Newchannel", 0.1, a.h()),
        ev("DialBegin", 0.1, c.h(), a.h("Dest"), DialString="1001"),
        ev("Newstate", 0.2, a.h(ChannelState="5")),
        ev("DialState", 0.2, c.h(), a.h("Dest", ChannelState="5"), DialStatus="RINGING"),
        ev("DialEnd", 5.1, c.h(), a.h("Dest", ChannelState="5"), DialStatus="NOANSWER"),
        hangup(5.1, a, "5", "0"),
    ]


def followme(outcome: str) -> list[dict[str, str]]:
    """FollowMe(1001) after 1001 did not answer: one step, the mobile, call acceptance
    on. `outcome`: "declined" (the decline digit), "hung_up" (on the prompt), "taken"."""
    c = Ch(CUSTOMER.name, L1, L1, 6, CUSTOMER.exten, CUSTOMER.num, "from-trunk")
    f1 = Ch(f"Local/{MOBILE}@followme-00000001;1", "1800000000.3", L1, 0, MOBILE, CUSTOMER.num)
    f2 = Ch(f"Local/{MOBILE}@followme-00000001;2", "1800000000.4", L1, 4, MOBILE, CUSTOMER.num)
    out = Ch("PJSIP/trunk-00000005", "1800000000.5", L1, 0, "s", CUSTOMER.num, "from-trunk")
    steps = [
        *ring_1001_then_forward(),
        ev("Newexten", 5.2, c.h(ChannelState="4"), Application="FollowMe", AppData="1001"),
        ev("Newstate", 5.2, c.h()),  # FollowMe answers the caller, music on hold
        ev("MusicOnHoldStart", 5.2, c.h()),
        ev("Newchannel", 5.3, f1.h()),
        ev("Newchannel", 5.3, f2.h()),
        ev("DialBegin", 5.3, c.h(), f1.h("Dest"), DialString=f"{MOBILE}@followme/n"),
        ev("Newchannel", 5.4, out.h()),
        ev("DialBegin", 5.4, f2.h(), out.h("Dest"), DialString=f"{MOBILE}@trunk"),
        ev("Newstate", 6, out.h(ChannelState="5")),
        ev("DialState", 6, f2.h(), out.h("Dest", ChannelState="5"), DialStatus="RINGING"),
        ev("Newstate", 6, f1.h(ChannelState="5")),
        ev("DialState", 6, c.h(), f1.h("Dest", ChannelState="5"), DialStatus="RINGING"),
        # the mobile picks up: Dial in the Local half bridges it; FollowMe plays the prompt
        ev("Newstate", 9, out.h(ChannelState="6")),
        ev("DialEnd", 9, f2.h(), out.h("Dest", ChannelState="6"), DialStatus="ANSWER"),
        ev("Newstate", 9, f2.h(ChannelState="6")),
        ev("BridgeEnter", 9, out.h(ChannelState="6"), BridgeUniqueid="B2"),
        ev("BridgeEnter", 9, f2.h(ChannelState="6"), BridgeUniqueid="B2"),
        ev("Newstate", 9, f1.h(ChannelState="6")),
        ev("DialEnd", 9, c.h(), f1.h("Dest", ChannelState="6"), DialStatus="ANSWER"),
    ]
    far_end_gone = [
        ev("BridgeLeave", 12, f2.h(ChannelState="6"), BridgeUniqueid="B2"),
        hangup(12, f2),
        ev("BridgeLeave", 12, out.h(ChannelState="6"), BridgeUniqueid="B2"),
        hangup(12, out),
        ev("BridgeDestroy", 12, BridgeUniqueid="B2"),
    ]
    if outcome == "declined":
        steps += [hangup(12, f1), *far_end_gone]
    elif outcome == "hung_up":
        steps += [
            ev("BridgeLeave", 12, out.h(ChannelState="6"), BridgeUniqueid="B2"),
            hangup(12, out),
            ev("BridgeLeave", 12, f2.h(ChannelState="6"), BridgeUniqueid="B2"),
            hangup(12, f2),
            ev("BridgeDestroy", 12, BridgeUniqueid="B2"),
            ev("DialEnd", 12, c.h(), f1.h("Dest", ChannelState="6"), DialStatus="NOANSWER"),
            hangup(12, f1),
        ]
    if outcome in ("declined", "hung_up"):
        return [
            *steps,
            ev("MusicOnHoldStop", 12.1, c.h()),
            ev("Newexten", 12.1, c.h(), Application="Hangup", AppData=""),
            hangup(13, c),
        ]
    return [  # taken: the caller is bridged with the Local half
        *steps,
        ev("MusicOnHoldStop", 12, c.h()),
        ev("BridgeEnter", 12, c.h(), BridgeUniqueid="B3"),
        ev("BridgeEnter", 12, f1.h(ChannelState="6"), BridgeUniqueid="B3"),
        ev("BridgeLeave", 30, c.h(), BridgeUniqueid="B3"),
        hangup(30, c),
        ev("BridgeLeave", 30, f1.h(ChannelState="6"), BridgeUniqueid="B3"),
        hangup(30, f1),
        *[
            ev(e["Event"], 30, {k: v for k, v in e.items() if k not in ("Event", "Timestamp")})
            for e in far_end_gone
        ],
    ]


def dial_screened(accepted: bool) -> list[dict[str, str]]:
    """Dial(PJSIP/<mobile>@trunk,20,U(screen)) after 1001 did not answer."""
    c = Ch(CUSTOMER.name, L1, L1, 4, CUSTOMER.exten, CUSTOMER.num, "from-trunk")
    out = Ch("PJSIP/trunk-00000003", "1800000000.3", L1, 0, "s", CUSTOMER.num, "from-trunk")
    steps = [
        *ring_1001_then_forward(),
        ev(
            "Newexten", 5.2, c.h(), Application="Dial", AppData=f"PJSIP/{MOBILE}@trunk,20,U(screen)"
        ),
        ev("Newchannel", 5.3, out.h()),
        ev("DialBegin", 5.3, c.h(), out.h("Dest"), DialString=f"{MOBILE}@trunk"),
        ev("Newstate", 6, out.h(ChannelState="5")),
        ev("DialState", 6, c.h(), out.h("Dest", ChannelState="5"), DialStatus="RINGING"),
        ev("Newstate", 9, out.h(ChannelState="6")),
        # the screening routine runs on the callee before anything is bridged
        ev("Newexten", 9, out.h(ChannelState="6", Context="screen"), Application="Read"),
    ]
    if not accepted:
        return [
            *steps,
            ev("DialEnd", 12, c.h(), out.h("Dest", ChannelState="6"), DialStatus="CONTINUE"),
            hangup(12, out),
            ev("Newexten", 12.1, c.h(), Application="Hangup", AppData=""),
            hangup(12.1, c, "4"),
        ]
    c_up = {"ChannelState": "6"}
    return [
        *steps,
        ev("DialEnd", 12, c.h(), out.h("Dest", ChannelState="6"), DialStatus="ANSWER"),
        ev("Newstate", 12, c.h(**c_up)),
        ev("BridgeEnter", 12, out.h(ChannelState="6"), BridgeUniqueid="B2"),
        ev("BridgeEnter", 12, c.h(**c_up), BridgeUniqueid="B2"),
        ev("BridgeLeave", 30, c.h(**c_up), BridgeUniqueid="B2"),
        hangup(30, c),
        ev("BridgeLeave", 30, out.h(ChannelState="6"), BridgeUniqueid="B2"),
        hangup(30, out),
    ]


# --------------------------------------------------------------------- the checks

SHAPES: dict[str, tuple[Callable[[Events], Events], ...]] = {
    "asterisk22": (),
    "chan_sip": (born_down, tech("SIP")),
    "no_timestamp": (no_timestamp,),
    "no_newchannel_linkedid": (no_newchannel_linkedid,),
    "dial_published_late": (dial_published_late,),
}


def tracker_for(shape: str) -> CallTracker:
    tech_name = "SIP" if shape == "chan_sip" else "PJSIP"
    return CallTracker([f"{tech_name}/trunk-*"], [f"{tech_name}/*"], "RU", "74957654321")


def outcome(shape: str, steps: list[dict[str, str]]) -> tuple[dict[str, Any], list[Output]]:
    evs = timed(*steps)
    for transform in SHAPES[shape]:
        evs = transform(evs)
    tracker = tracker_for(shape)
    outputs = [o for _, outs in run_steps(tracker, evs) for o in outs]
    assert tracker.take_faults() == []
    assert tracker.open_calls == 0 and not tracker.channels and not tracker.bridges
    per: dict[str, list[str]] = {}
    for o in outputs:
        if isinstance(o, CallEvent):
            assert o.callid == L1, "every event is the customer's call"
            per.setdefault(o.ext, []).append(o.type)
    for types in per.values():
        assert grammar_violations(types) == []
    (record,) = [o for o in outputs if isinstance(o, CallRecord) and o.external]
    return {
        "events": per,
        "history": (record.callid, record.direction, record.status, record.ext),
        "duration": record.duration,
    }, outputs


def incoming_at(outputs: list[Output], ext: str) -> float:
    (e,) = [
        o for o in outputs if isinstance(o, CallEvent) and o.ext == ext and o.type == "INCOMING"
    ]
    return e.at if e.at < T0 else e.at - T0


shapes = pytest.mark.parametrize("shape", list(SHAPES))
TRANSFERRED_AND_RINGING = {
    "1001": ["INCOMING", "ACCEPTED", "TRANSFERRED", "COMPLETED"],
    "1002": ["INCOMING", "ACCEPTED", "COMPLETED"],
    "1003": ["INCOMING", "CANCELLED"],
}


@shapes
@pytest.mark.parametrize("zombie_first", [False, True], ids=["transfer_first", "hangup_first"])
def test_refer_with_replaces_while_the_target_rings(shape: str, zombie_first: bool) -> None:
    got, outputs = outcome(shape, refer_with_replaces(zombie_first))
    assert got["events"] == TRANSFERRED_AND_RINGING
    assert got["history"] == (L1, "in", "Success", "1002")
    assert got["duration"] == 19, "from 1001's answer to the customer's hang-up"
    assert incoming_at(outputs, "1002") == pytest.approx(8) == incoming_at(outputs, "1003")
    (transferred,) = [o for o in outputs if isinstance(o, CallEvent) and o.type == "TRANSFERRED"]
    assert transferred.second_callid == L2


@shapes
def test_features_attended_transfer_completed_while_the_target_rings(shape: str) -> None:
    got, outputs = outcome(shape, features_blonde())
    assert got["events"] == TRANSFERRED_AND_RINGING
    assert got["history"] == (L1, "in", "Success", "1002")
    assert incoming_at(outputs, "1002") == pytest.approx(8) == incoming_at(outputs, "1003")


@shapes
def test_blind_transfer_while_the_consultation_rings(shape: str) -> None:
    """The phones ring again for the customer (new channels); their consultation legs,
    which never rang with the customer, say nothing."""
    got, outputs = outcome(shape, blind_while_consulting())
    assert got["events"] == TRANSFERRED_AND_RINGING
    assert got["history"] == (L1, "in", "Success", "1002")
    assert 8 <= incoming_at(outputs, "1002") < 8.5


def test_consultation_that_is_not_transferred_stays_silent() -> None:
    """The colleague hangs up the consultation: the phones it rang never rang with the
    customer."""
    steps = refer_with_replaces(False)
    cut = next(
        i
        for i, e in enumerate(steps)
        if e["Event"] == "BridgeLeave" and e["Channel"] == PHONE_1001.name
    )
    a2 = Ch("PJSIP/1001-00000003", L2, L2, 4, "600", "1001")
    p2 = Ch("PJSIP/1002-00000004", "1800000000.4", L2, 0, "s", "1002")
    p3 = Ch("PJSIP/1003-00000005", "1800000000.5", L2, 0, "s", "1003")
    steps = steps[:cut] + [
        ev("DialEnd", 8, a2.h(), p2.h("Dest", ChannelState="5"), DialStatus="CANCEL"),
        ev("DialEnd", 8, a2.h(), p3.h("Dest", ChannelState="5"), DialStatus="CANCEL"),
        hangup(8, p2, "5", "0"),
        hangup(8, p3, "5", "0"),
        hangup(8, a2, "4", "0"),
        ev("BridgeLeave", 9, CUSTOMER.h(ChannelState="6"), BridgeUniqueid="B1"),
        hangup(9, CUSTOMER),
        ev("BridgeLeave", 9, PHONE_1001.h(ChannelState="6"), BridgeUniqueid="B1"),
        hangup(9, PHONE_1001),
    ]
    got, _ = outcome("asterisk22", steps)
    assert got["events"] == {"1001": ["INCOMING", "ACCEPTED", "COMPLETED"]}
    assert got["history"] == (L1, "in", "Success", "1001")


@shapes
@pytest.mark.parametrize("how", ["declined", "hung_up"])
def test_followme_number_that_picks_up_and_declines_has_not_answered(shape: str, how: str) -> None:
    got, _ = outcome(shape, followme(how))
    assert got["events"] == {"1001": ["INCOMING", "CANCELLED"]}
    assert got["history"] == (L1, "in", "missed", "1001")
    assert got["duration"] == 0


@shapes
def test_followme_number_that_takes_the_call_answered_it(shape: str) -> None:
    got, _ = outcome(shape, followme("taken"))
    assert got["events"] == {"1001": ["INCOMING", "CANCELLED"]}
    assert got["history"] == (L1, "in", "Success", "1001"), "the employee rung last"
    assert got["duration"] == 18, "from the moment it was connected with the customer"


@shapes
@pytest.mark.parametrize("accepted", [False, True], ids=["declined", "accepted"])
def test_screened_forward_to_an_outside_number(shape: str, accepted: bool) -> None:
    got, _ = outcome(shape, dial_screened(accepted))
    assert got["events"] == {"1001": ["INCOMING", "CANCELLED"]}
    status = "Success" if accepted else "missed"
    assert got["history"] == (L1, "in", status, "1001")
    assert got["duration"] == (18 if accepted else 0)
