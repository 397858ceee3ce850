"""The AMI buffer when the tracking side cannot keep up: what is dropped, and where the
loss is said in the stream (`EventsDropped`, before anything taken after it)."""

from __future__ import annotations

from bridge.ami.ingest import AmiIngest, EventsDropped
from bridge.ami.parser import AmiMessage


def message(n: int) -> AmiMessage:
    return {"Event": "Newstate", "Uniqueid": f"1795346414.{n}", "Timestamp": f"{100 + n}.5"}


def test_a_full_buffer_says_once_where_events_began_to_be_dropped() -> None:
    ingest = AmiIngest("127.0.0.1", 5038, "bridge", "secret", queue_size=3)
    for n in range(6):
        ingest.push(message(n), 200.0 + n)
    assert list(ingest.buffer) == [
        (message(0), 200.0),
        (message(1), 201.0),
        (message(2), 202.0),
        EventsDropped(103.5),  # Asterisk's time of the first event dropped
    ]
    assert (ingest.received, ingest.dropped) == (6, 3)

    assert len(ingest.take(10)) == 4  # not connected: no resync to start yet
    for n in range(6, 10):
        ingest.push(message(n), 200.0 + n)
    # the loss goes on until the resync it asked for: said once, where it began
    assert list(ingest.buffer) == [(message(n), 200.0 + n) for n in (6, 7, 8)]
    assert ingest.dropped == 4
