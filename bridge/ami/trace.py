"""Recorded AMI traces: one `{"t": seconds, "raw": "<message>"}` JSON object per line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .parser import AmiMessage, parse_message


@dataclass(frozen=True, slots=True)
class TracedMessage:
    t: float
    raw: str

    def parse(self) -> AmiMessage:
        return parse_message(self.raw)


class TraceError(ValueError):
    pass


def read_trace(path: str | Path) -> Iterator[TracedMessage]:
    """Every message of a trace, banner and responses included, in order."""
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, 1):
            try:  # ValueError: not UTF-8 (a binary file, a pcap), not JSON
                line = raw.decode("utf-8")
                if not line.strip():
                    continue
                item = json.loads(line)
                message = TracedMessage(float(item["t"]), str(item["raw"]))
            except (ValueError, KeyError, TypeError) as exc:
                raise TraceError(f"{path}:{number}: not a trace line ({exc})") from exc
            yield message


def trace_events(path: str | Path) -> Iterator[tuple[float, AmiMessage]]:
    """The events of a trace (responses and the banner left out), with their `t`."""
    for msg in read_trace(path):
        message = msg.parse()
        if "Event" in message:
            yield msg.t, message
