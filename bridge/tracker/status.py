"""History status of a call, from what AMI shows (SPEC section 4).

Inbound calls are `Success` or `missed`. Outbound calls take the `DialStatus` of the
customer leg's `DialEnd` and the `Cause` of its `Hangup`; the cause is more precise
(Asterisk reports a SIP 404 as NOANSWER with cause 1), so it wins where it says more.
"""

from __future__ import annotations

SUCCESS = "Success"
MISSED = "missed"
CANCEL = "Cancel"
BUSY = "Busy"
NOT_AVAILABLE = "NotAvailable"
NOT_ALLOWED = "NotAllowed"
NOT_FOUND = "NotFound"

_BY_CAUSE = {
    1: NOT_FOUND,
    3: NOT_FOUND,
    28: NOT_FOUND,
    17: BUSY,
    18: NOT_AVAILABLE,
    20: NOT_AVAILABLE,
    27: NOT_AVAILABLE,
    34: NOT_AVAILABLE,
    38: NOT_AVAILABLE,
    41: NOT_AVAILABLE,
    42: NOT_AVAILABLE,
    21: NOT_ALLOWED,
    57: NOT_ALLOWED,
    87: NOT_ALLOWED,
    19: MISSED,
}

_BY_DIALSTATUS = {
    "ANSWER": SUCCESS,
    "CANCEL": CANCEL,
    "BUSY": BUSY,
    "CONGESTION": NOT_AVAILABLE,
    "CHANUNAVAIL": NOT_AVAILABLE,
    "NOANSWER": MISSED,
}


def outbound_status(answered: bool, dial_status: str, cause: int | None) -> str:
    if answered:
        return SUCCESS
    if dial_status == "CANCEL":
        return CANCEL  # the employee gave up: whatever the carrier said after does not count
    if cause is not None and cause in _BY_CAUSE:
        return _BY_CAUSE[cause]
    if dial_status == "ANSWER":
        return MISSED  # the customer picked up, but no employee ever talked with them
    return _BY_DIALSTATUS.get(dial_status, MISSED if dial_status else CANCEL)


def inbound_status(answered: bool) -> str:
    return SUCCESS if answered else MISSED
