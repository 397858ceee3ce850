"""One call as a FusionPBX `v_xml_cdr` row, the object billing clients read (pure code).

Times and lengths follow Asterisk's own CDR, so a bill made from this API and one made from
Asterisk's Master.csv agree (tests/integration/test_billing_cdr.py compares them call by
call):

- `duration` and `billsec` are whole seconds, the exact elapsed time rounded down, as
  Asterisk computes its CDR's (`(end - start)` and `(end - answer)` in milliseconds, / 1000);
  `mduration` and `billmsec` are the same in milliseconds;
- the answer is the bridge's: the first moment an employee (inbound) or the customer
  (outbound) was connected, never an IVR's or a queue's `Answer()`; for an internal call the
  called phone's answer;
- `waitsec` is `duration - billsec` (the time before the answer, or the whole call when
  nobody answered), so the three always add up;
- `*_epoch` are whole Unix seconds as text (FusionPBX's columns are numeric, which PHP
  returns as strings), `*_stamp` the same moments as `YYYY-MM-DD HH:MM:SS+00` (UTC).

`hangup_cause` names the Q.850 cause the way FreeSWITCH does (NORMAL_CLEARING, NO_ANSWER,
USER_BUSY, ORIGINATOR_CANCEL, ...), see `hangup_cause`; `hangup_cause_q850` is its Q.850
code, see `q850_code`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

_NAMESPACE = uuid.UUID("0c6f1e0a-5b8e-4a3c-9d8e-6a1b2c3d4e5f")

DIRECTIONS = {"in": "inbound", "out": "outbound", "internal": "local"}

# Q.850 causes by their FreeSWITCH names (switch_types.h), as FusionPBX shows them.
Q850: dict[int, str] = {
    1: "UNALLOCATED_NUMBER",
    2: "NO_ROUTE_TRANSIT_NET",
    3: "NO_ROUTE_DESTINATION",
    6: "CHANNEL_UNACCEPTABLE",
    7: "CALL_AWARDED_DELIVERED",
    16: "NORMAL_CLEARING",
    17: "USER_BUSY",
    18: "NO_USER_RESPONSE",
    19: "NO_ANSWER",
    20: "SUBSCRIBER_ABSENT",
    21: "CALL_REJECTED",
    22: "NUMBER_CHANGED",
    23: "REDIRECTION_TO_NEW_DESTINATION",
    25: "EXCHANGE_ROUTING_ERROR",
    27: "DESTINATION_OUT_OF_ORDER",
    28: "INVALID_NUMBER_FORMAT",
    29: "FACILITY_REJECTED",
    30: "RESPONSE_TO_STATUS_ENQUIRY",
    31: "NORMAL_UNSPECIFIED",
    34: "NORMAL_CIRCUIT_CONGESTION",
    38: "NETWORK_OUT_OF_ORDER",
    41: "NORMAL_TEMPORARY_FAILURE",
    42: "SWITCH_CONGESTION",
    43: "ACCESS_INFO_DISCARDED",
    44: "REQUESTED_CHAN_UNAVAIL",
    45: "PRE_EMPTED",
    50: "FACILITY_NOT_SUBSCRIBED",
    52: "OUTGOING_CALL_BARRED",
    54: "INCOMING_CALL_BARRED",
    57: "BEARERCAPABILITY_NOTAUTH",
    58: "BEARERCAPABILITY_NOTAVAIL",
    63: "SERVICE_UNAVAILABLE",
    65: "BEARERCAPABILITY_NOTIMPL",
    66: "CHAN_NOT_IMPLEMENTED",
    69: "FACILITY_NOT_IMPLEMENTED",
    79: "SERVICE_NOT_IMPLEMENTED",
    81: "INVALID_CALL_REFERENCE",
    88: "INCOMPATIBLE_DESTINATION",
    95: "INVALID_MSG_UNSPECIFIED",
    96: "MANDATORY_IE_MISSING",
    97: "MESSAGE_TYPE_NONEXIST",
    98: "WRONG_MESSAGE",
    99: "IE_NONEXIST",
    100: "INVALID_IE_CONTENTS",
    101: "WRONG_CALL_STATE",
    102: "RECOVERY_ON_TIMER_EXPIRE",
    103: "MANDATORY_IE_LENGTH_ERROR",
    111: "PROTOCOL_ERROR",
    127: "INTERWORKING",
}
ORIGINATOR_CANCEL = ("ORIGINATOR_CANCEL", 487)  # FreeSWITCH's own code, not Q.850

# Causes that say nothing about why nobody answered: the caller hung up normally, the
# callee's side did not say, a SIP CANCEL (Asterisk reports 127).
_SILENT = frozenset({0, 16, 31, 127})

# Asterisk's DialStatus -> what it means as a hangup cause
_BY_DIAL_STATUS: dict[str, tuple[str, int]] = {
    "CANCEL": ORIGINATOR_CANCEL,
    "NOANSWER": ("NO_ANSWER", 19),
    "BUSY": ("USER_BUSY", 17),
    "CONGESTION": ("NORMAL_CIRCUIT_CONGESTION", 34),
    "CHANUNAVAIL": ("SUBSCRIBER_ABSENT", 20),
}

# the history status, when neither a cause nor a dial status says more
_BY_STATUS: dict[str, tuple[str, int]] = {
    "missed": ("NO_ANSWER", 19),
    "Cancel": ORIGINATOR_CANCEL,
    "Busy": ("USER_BUSY", 17),
    "NotAvailable": ("NORMAL_TEMPORARY_FAILURE", 41),
    "NotAllowed": ("CALL_REJECTED", 21),
    "NotFound": ("UNALLOCATED_NUMBER", 1),
}


def cdr_uuid(pbx_id: str, callid: str) -> str:
    """`xml_cdr_uuid`: a UUID (what FusionPBX clients store), derived from the call id."""
    return str(uuid.uuid5(_NAMESPACE, f"{pbx_id}/{callid}"))


def _uuid_of(*parts: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, "/".join(parts)))


def hangup_cause(
    status: str | None, answered: bool, customer_cause: int | None, dial_status: str
) -> tuple[str, int]:
    """(FreeSWITCH name, code) of why the call ended.

    An answered call ended normally (NORMAL_CLEARING). Else the customer's leg's own cause
    when it says why (USER_BUSY 17, NO_ANSWER 19, UNALLOCATED_NUMBER 1, ...); when it does
    not (the caller hung up: 16, a SIP CANCEL: 127, none: 0), the dial status of the leg
    that was rung (CANCEL: the caller gave up, ORIGINATOR_CANCEL; NOANSWER: rang out,
    NO_ANSWER; BUSY: USER_BUSY); failing that, the call's status."""
    if answered or status == "Success":
        return "NORMAL_CLEARING", 16
    if customer_cause is not None and customer_cause not in _SILENT:
        return Q850.get(customer_cause, "NORMAL_UNSPECIFIED"), customer_cause
    if dial_status in _BY_DIAL_STATUS:
        return _BY_DIAL_STATUS[dial_status]
    return _BY_STATUS.get(status or "", ("NORMAL_CLEARING", 16))


def q850_code(cause: int) -> int:
    """The Q.850 code of a FreeSWITCH cause, as switch_channel_cause_q850() gives it:
    FreeSWITCH's own causes above INTERWORKING (127), such as ORIGINATOR_CANCEL (487),
    are not Q.850 and count as NORMAL_CLEARING (16)."""
    return cause if cause <= 127 else 16


_MS = timedelta(milliseconds=1)


def _seconds(later: datetime | None, earlier: datetime | None) -> tuple[int, int]:
    """(whole seconds rounded down, milliseconds) between two moments; 0 when one is unknown."""
    if later is None or earlier is None or later < earlier:
        return 0, 0
    ms = (later - earlier) // _MS
    return ms // 1000, ms


def _epoch(at: datetime | None) -> str:
    return str(int(at.timestamp())) if at is not None else "0"


def _stamp(at: datetime | None) -> str | None:
    return at.strftime("%Y-%m-%d %H:%M:%S+00") if at is not None else None


def _answer(call: Mapping[str, Any], legs: Sequence[Mapping[str, Any]]) -> datetime | None:
    if call["direction"] != "internal":
        answered: datetime | None = call["answered_at"]
        return answered
    # an internal call has no customer: it was answered when the called phone was
    answers = [
        leg["answered_at"]
        for leg in legs
        if leg["kind"] == "extension" and leg["dial_status"] == "ANSWER" and leg["answered_at"]
    ]
    return min(answers) if answers else None


def _customer_leg(call: Mapping[str, Any], legs: Sequence[Mapping[str, Any]]) -> Mapping | None:
    trunks = [leg for leg in legs if leg["kind"] == "trunk"]
    return trunks[0] if trunks else None


def _rung_dial_status(call: Mapping[str, Any], legs: Sequence[Mapping[str, Any]]) -> str:
    """The dial status of the leg that was rung last: the customer's (outbound), an
    employee's phone (inbound, internal)."""
    kind = "trunk" if call["direction"] == "out" else "extension"
    rung = [leg for leg in legs if leg["kind"] == kind and leg["dial_status"]]
    if not rung:
        return ""
    last = max(rung, key=lambda leg: (leg["ended_at"] or leg["started_at"], leg["uniqueid"]))
    status: str = last["dial_status"]
    return status


def _parties(
    call: Mapping[str, Any], legs: Sequence[Mapping[str, Any]], names: Mapping[str, str]
) -> dict[str, str | None]:
    phone, diversion, ext = call["phone"], call["diversion"], call["ext"]
    user_name = names.get(call["user_login"]) or call["user_login"] or None
    if call["direction"] == "in":
        return {
            "caller_id_name": call["phone_name"] or phone or None,
            "caller_id_number": phone or None,
            "caller_destination": diversion or None,
            "source_number": phone or None,
            "destination_number": ext or diversion or None,
        }
    if call["direction"] == "out":
        return {
            "caller_id_name": user_name or ext or None,
            "caller_id_number": ext or None,
            "caller_destination": phone or None,
            "source_number": ext or None,
            "destination_number": phone or None,
        }
    caller = next((leg["ext"] for leg in legs if leg["uniqueid"] == call["callid"]), "") or ext
    called = [leg["ext"] for leg in legs if leg["kind"] == "extension" and leg["ext"] != caller]
    callee = called[-1] if called else ""
    return {
        "caller_id_name": user_name or caller or None,
        "caller_id_number": caller or None,
        "caller_destination": callee or None,
        "source_number": caller or None,
        "destination_number": callee or None,
    }


def cdr(
    call: Mapping[str, Any],
    legs: Sequence[Mapping[str, Any]],
    *,
    domain: str,
    names: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The CDR object of one finished call (a row of `history.COLUMNS`) and its legs."""
    start, end = call["started_at"], call["ended_at"]
    answer = _answer(call, legs)
    duration, mduration = _seconds(end, start)
    billsec, billmsec = _seconds(end, answer) if answer is not None else (0, 0)
    customer = _customer_leg(call, legs)
    cause, code = hangup_cause(
        call["status"],
        answer is not None,
        customer["cause"] if customer is not None else None,
        _rung_dial_status(call, legs),
    )
    recording: str = call["recording"] or ""
    folder, _, file = recording.rpartition("/")
    ext = call["ext"]
    parties = _parties(call, legs, names or {})
    return {
        "xml_cdr_uuid": cdr_uuid(domain, call["callid"]),
        "domain_uuid": _uuid_of(domain),
        "extension_uuid": _uuid_of(domain, "ext", ext) if ext else None,
        "sip_call_id": None,
        "domain_name": domain,
        "accountcode": None,
        "direction": DIRECTIONS.get(call["direction"], call["direction"]),
        "default_language": None,
        "context": None,
        "caller_id_name": parties["caller_id_name"],
        "caller_id_number": parties["caller_id_number"],
        "caller_destination": parties["caller_destination"],
        "source_number": parties["source_number"],
        "destination_number": parties["destination_number"],
        "start_epoch": _epoch(start),
        "start_stamp": _stamp(start),
        "answer_stamp": _stamp(answer),
        "answer_epoch": _epoch(answer),
        "end_epoch": _epoch(end),
        "end_stamp": _stamp(end),
        "duration": duration,
        "mduration": mduration,
        "billsec": billsec,
        "billmsec": billmsec,
        "bridge_uuid": None,
        "read_codec": None,
        "read_rate": None,
        "write_codec": None,
        "write_rate": None,
        "remote_media_ip": None,
        "network_addr": None,
        "record_path": (folder or None) if file else None,
        "record_name": file or None,
        "leg": "a",
        "originating_leg_uuid": None,
        "pdd_ms": None,
        "rtp_audio_in_mos": None,
        "last_app": None,
        "last_arg": None,
        "voicemail_message": False,
        "missed_call": call["direction"] == "in" and call["status"] != "Success",
        "call_center_queue_uuid": None,
        "cc_side": None,
        "cc_member_uuid": None,
        "cc_queue_joined_epoch": None,
        "cc_queue": call["group_name"] or None,
        "cc_member_session_uuid": None,
        "cc_agent_uuid": None,
        "cc_agent": None,
        "cc_agent_type": None,
        "cc_agent_bridged": None,
        "cc_queue_answered_epoch": None,
        "cc_queue_terminated_epoch": None,
        "cc_queue_canceled_epoch": None,
        "cc_cancel_reason": None,
        "cc_cause": None,
        "waitsec": duration - billsec,
        "conference_name": None,
        "conference_uuid": None,
        "conference_member_id": None,
        "digits_dialed": None,
        "pin_number": None,
        "hangup_cause": cause,
        "hangup_cause_q850": str(q850_code(code)),
        "sip_hangup_disposition": None,
        "xml": None,
    }
