"""One row of Asterisk's Channel Event Log, as cel_custom and cel_pgsql write it.

main/cel.c fills the same record for every backend: the event type (CHAN_START, ANSWER,
HANGUP, CHAN_END, BRIDGE_ENTER, BRIDGE_EXIT, BLINDTRANSFER, ATTENDEDTRANSFER, PICKUP,
LINKEDID_END, APP_START...), its time, the channel's snapshot at that moment (caller ID,
extension, context, name, application and its data, Uniqueid, Linkedid), the bridged peer
and a JSON `extra` (the hang-up cause and the caller's dial status on HANGUP, the bridge on
BRIDGE_ENTER/EXIT, the parties of a transfer).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

CHAN_START = "CHAN_START"
CHAN_END = "CHAN_END"
ANSWER = "ANSWER"
HANGUP = "HANGUP"
APP_START = "APP_START"
APP_END = "APP_END"
BRIDGE_ENTER = "BRIDGE_ENTER"
BRIDGE_EXIT = "BRIDGE_EXIT"
BLINDTRANSFER = "BLINDTRANSFER"
ATTENDEDTRANSFER = "ATTENDEDTRANSFER"
PICKUP = "PICKUP"
FORWARD = "FORWARD"
LINKEDID_END = "LINKEDID_END"


@dataclass(slots=True)
class CelRow:
    eventtype: str
    eventtime: float  # Unix time, Asterisk's clock
    uniqueid: str
    linkedid: str
    channame: str
    cid_num: str = ""
    cid_name: str = ""
    exten: str = ""
    context: str = ""
    appname: str = ""
    appdata: str = ""
    peer: str = ""
    userfield: str = ""
    extra: str = ""  # JSON text
    order: int = 0  # position in its source (the table's id, the file's line)

    def extras(self) -> dict[str, Any]:
        """`extra` parsed ({} when empty or not JSON)."""
        if not self.extra:
            return {}
        try:
            found = json.loads(self.extra)
        except ValueError:
            return {}
        return found if isinstance(found, dict) else {}


# Column names as cel_custom.conf `fields`, the legacy mapping's variables and the
# cel_pgsql table name them (lower case, without a "(noquote)"-like suffix) -> CelRow.
COLUMNS = {
    "eventtype": "eventtype",
    "eventtime": "eventtime",
    "uniqueid": "uniqueid",
    "linkedid": "linkedid",
    "channame": "channame",
    "channel": "channame",
    "num": "cid_num",
    "cidnum": "cid_num",
    "cid_num": "cid_num",
    "name": "cid_name",
    "cidname": "cid_name",
    "cid_name": "cid_name",
    "exten": "exten",
    "context": "context",
    "appname": "appname",
    "appdata": "appdata",
    "peer": "peer",
    "userfield": "userfield",
    "eventextra": "extra",
    "extra": "extra",
}


def column_key(name: str) -> str | None:
    """The CelRow field a column of that name fills, if any."""
    return COLUMNS.get(name.split("(", 1)[0].strip().lower())
