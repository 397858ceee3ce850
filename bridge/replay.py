"""`crm-bridge replay TRACE`: run a recorded AMI trace through the call tracker and
print, one JSON object per line, the `event` and `history` payloads the primary CRM would
receive, in the order they would be sent (SPEC section 7). No database, no network.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from .ami.trace import trace_events
from .crm.payloads import Fields, event_fields, history_fields, without_empty
from .tracker.model import CallEvent, CallRecord, Output
from .tracker.tracker import CallTracker


def crm_payloads(outputs: list[Output], send_internal: bool = False) -> Iterator[Fields]:
    for out in outputs:
        if isinstance(out, CallEvent):
            yield without_empty(event_fields(out))
        elif isinstance(out, CallRecord) and (out.external or send_internal):
            yield without_empty(history_fields(out))


def replay(
    trace: str | Path, tracker: CallTracker, send_internal: bool = False
) -> Iterator[Fields]:
    for t, message in trace_events(trace):
        yield from crm_payloads(tracker.feed(message, t), send_internal)


def write_replay(
    trace: str | Path, tracker: CallTracker, stream: TextIO, send_internal: bool = False
) -> int:
    count = 0
    for payload in replay(trace, tracker, send_internal):
        stream.write(json.dumps(payload, ensure_ascii=False) + "\n")
        count += 1
    return count
