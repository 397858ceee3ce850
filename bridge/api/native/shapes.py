"""How the native API writes a call: one shape for the list, the call itself and the CSV."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from aiohttp import web

from ..errors import not_found
from ..params import is_text

# The fields of a call in the list, in the CSV's column order.
CALL_FIELDS = (
    "callid",
    "direction",
    "status",
    "caller",
    "destination",
    "phone",
    "diversion",
    "user",
    "user_name",
    "ext",
    "group",
    "start",
    "answered",
    "end",
    "duration",
    "wait",
    "recorded",
    "rating",
    "missed_status",
    "phone_name",  # last: CSV readers that go by position keep their columns
)


def iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def caller_and_destination(row: Any) -> tuple[str, str]:
    """Who called whom: inbound the customer called the company number; outbound and
    internal the employee's extension called the number dialled."""
    if row["direction"] == "in":
        return row["phone"], row["diversion"]
    return row["ext"], row["phone"]


def call_json(row: Any, names: Mapping[str, str]) -> dict[str, Any]:
    """A call row (history.COLUMNS) as the API shows it; `names` maps logins to the
    directory's names."""
    caller, destination = caller_and_destination(row)
    return {
        "callid": row["callid"],
        "direction": row["direction"],
        "status": row["status"],
        "caller": caller,
        "destination": destination,
        "phone": row["phone"],
        "diversion": row["diversion"],
        "user": row["user_login"],
        "user_name": names.get(row["user_login"], ""),
        "ext": row["ext"],
        "group": row["group_name"],
        "start": iso(row["started_at"]),
        "answered": iso(row["answered_at"]),
        "end": iso(row["ended_at"]),
        "duration": row["duration"],
        "wait": row["wait"],
        "recorded": bool(row["recording"]),
        "rating": row["rating"],
        "missed_status": row["missed_status"],
        "phone_name": row["phone_name"],
    }


def path_text(request: web.Request, name: str, what: str) -> str:
    """A path parameter that can name something stored; anything else is a plain 404
    (a NUL or a lone surrogate would make PostgreSQL fail instead)."""
    value = request.match_info[name]
    if not value or len(value) > 200 or not is_text(value):
        raise not_found(f"No such {what}")
    return value
