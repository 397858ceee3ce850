"""The `next` / `after` keyset cursor of the calls list: opaque to clients.

It carries the last row's keys and the order it was made for, so a cursor passed back with
another sort is a 400 instead of a silently wrong page.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime

from ...store import history
from .. import json_input
from ..errors import bad_request

_INT32 = 1 << 31


def _order(sort: str, descending: bool) -> str:
    return f"{sort}.{'desc' if descending else 'asc'}"


def encode(cursor: history.Cursor, sort: str, descending: bool) -> str:
    data: dict[str, object] = {
        "o": _order(sort, descending),
        "s": cursor.start.isoformat(),
        "c": cursor.callid,
    }
    if cursor.value is not None:
        data["v"] = cursor.value
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode(text: str, sort: str, descending: bool) -> history.Cursor:
    """The cursor `text` for a page of this order; 400 (`after: ...`) when it is not one."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        data = json_input.loads(raw)
        order, start, callid = data["o"], datetime.fromisoformat(data["s"]), data["c"]
        value = data.get("v")
        start.astimezone(UTC)  # in range once in UTC
    except (ValueError, TypeError, KeyError, OverflowError, binascii.Error, UnicodeDecodeError):
        raise bad_request("after: not a cursor of this API (pass `next` back as it is)") from None
    if (
        not isinstance(order, str)
        or start.tzinfo is None
        or not isinstance(callid, str)
        or not (callid.isprintable() and len(callid) <= 200)
        or not (value is None or (type(value) is int and -_INT32 <= value < _INT32))
    ):
        raise bad_request("after: not a cursor of this API (pass `next` back as it is)")
    if order != _order(sort, descending):
        raise bad_request("after: the cursor is of a page in another order; keep sort and order")
    if (value is None) != (sort == "start"):
        raise bad_request("after: not a cursor of this API (pass `next` back as it is)")
    return history.Cursor(start, callid, value)
