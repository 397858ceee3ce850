"""The wire fields of the VPBX "REST API for CRM" (SPEC section 4).

Built from the tracker's plain records; profiles (vpbx, vpbx-legacy, json) and the token
are the delivery layer's business, so `crm_token` is not here.
"""

from __future__ import annotations

import time

from ..tracker.model import CallEvent, CallRecord

Fields = dict[str, str | int]


def crm_time(ts: float) -> str:
    """`YYYYmmddTHHMMSSZ`, UTC."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(ts))


def event_fields(ev: CallEvent, telnum: str = "", telnum_name: str = "") -> Fields:
    return {
        "cmd": "event",
        "type": ev.type,
        "callid": ev.callid,
        "phone": ev.phone,
        "user": ev.user,
        "direction": ev.direction,
        "diversion": ev.diversion,
        "groupRealName": ev.group,
        "ext": ev.ext,
        "telnum": telnum,
        "telnum_name": telnum_name,
        "second_callid": ev.second_callid,
    }


def history_fields(
    rec: CallRecord, link: str = "", rating: str = "", telnum: str = "", missed_status: str = ""
) -> Fields:
    return {
        "cmd": "history",
        "type": rec.direction,
        "user": rec.user,
        "ext": rec.ext,
        "groupRealName": rec.group,
        "telnum": telnum,
        "phone": rec.phone,
        "diversion": rec.diversion,
        "start": crm_time(rec.start),
        "duration": rec.duration,
        "wait": rec.wait,
        "callid": rec.callid,
        "link": link,
        "status": rec.status,
        "rating": rating,
        "missedStatus": missed_status,
    }


def without_empty(fields: Fields) -> Fields:
    """Drop empty strings (numbers, 0 included, stay)."""
    return {k: v for k, v in fields.items() if v != "" and v is not None}
