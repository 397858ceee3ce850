"""The benchmark's input: the shared real Asterisk 22 AMI traces as one AMI byte stream.

How the stream is built (stdlib only; the same code runs in ``.venv`` and ``.bench-venv``,
and it is deterministic, so both processes build byte-identical streams):

* Every ``*.ami.jsonl`` file of the traces directory, in file-name order. Its first two
  lines (the ``Asterisk Call Manager/...`` banner and the Login response) are skipped;
  every other line's ``raw`` message is kept verbatim (the ``FullyBooted`` /
  ``SuccessfulAuth`` events that open each trace included).
* Each ``raw`` already ends in the ``\\r\\n`` of its last header; one more ``\\r\\n`` (the
  blank line the recorder left out) is appended, so consecutive messages are separated by
  ``\\r\\n\\r\\n`` exactly as on an AMI socket.
* That block (one "repetition": 14,252 messages = 14,251 events + the one ``Response:``
  of click_to_call's Originate, ~6.6 MB) is repeated until the stream holds at least
  ``min_events`` events (default 1,000,000; env ``BENCH_EVENTS`` overrides).
* Repetition 0 is verbatim. In repetition ``k >= 1`` the calls are made distinct:
  - every header whose name ends in ``Uniqueid``/``Linkedid``/``UniqueID``/``LinkedID``
    (Uniqueid, Linkedid, DestUniqueid, DestLinkedid, LocalOne/LocalTwo*, Transferer*/
    Transferee*, the ``Cdr`` event's UniqueID, ...) with an Asterisk id value
    ``<epoch>.<seq>`` becomes ``<epoch>.<seq + k * REP_OFFSET>`` (REP_OFFSET = 1,000,000;
    the traces' largest seq is 536), still a valid ``digits.digits`` Uniqueid;
  - ``BridgeUniqueid: <uuid>`` gets the first 4 hex digits of its last group replaced by
    ``k`` in hex (``...-0001xxxxxxxx``);
  - nothing else changes: ``Timestamp`` headers, channel names (``PJSIP/1001-0000002a``),
    and ids embedded inside other values (a MixMonitor file name) repeat as recorded.
    Repetitions follow each other in time, so no call of one repetition overlaps another.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from bridge.devtools.traces import traces_dir as shared_traces_dir

DEFAULT_EVENTS = 1_000_000
REP_OFFSET = 1_000_000

REPO_ROOT = Path(__file__).resolve().parent.parent

_ID_RE = re.compile(rb"(?m)^([A-Za-z]*(?:Uniqueid|Linkedid|UniqueID|LinkedID)): (\d+)\.(\d+)\r$")
_BRIDGE_RE = re.compile(
    rb"(?m)^(BridgeUniqueid: [0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-)"
    rb"[0-9a-f]{4}([0-9a-f]{8})\r$"
)


def bench_events(default: int = DEFAULT_EVENTS) -> int:
    """The requested minimum number of events: env ``BENCH_EVENTS`` or ``default``."""
    raw = os.environ.get("BENCH_EVENTS", "").strip().replace("_", "").replace(",", "")
    return int(raw) if raw else default


def traces_dir() -> Path:
    """env ``AMI_TRACES``, else ``<repo>/traces/asterisk22``."""
    path = shared_traces_dir()
    if not path.is_dir():
        raise FileNotFoundError(f"AMI traces directory not found: {path} (set AMI_TRACES)")
    return path


def load_messages(directory: Path | None = None) -> tuple[list[bytes], list[str]]:
    """All traces' raw messages (banner and login response skipped), as encoded bytes
    without the trailing blank line, plus the file names used."""
    directory = directory or traces_dir()
    files = sorted(directory.glob("*.ami.jsonl"))
    if not files:
        raise FileNotFoundError(f"no *.ami.jsonl in {directory}")
    messages: list[bytes] = []
    for path in files:
        with path.open(encoding="utf-8") as fh:
            lines = [json.loads(line)["raw"] for line in fh if line.strip()]
        if len(lines) < 2 or not lines[0].startswith("Asterisk Call Manager/"):
            raise ValueError(f"{path.name}: line 1 is not the AMI banner")
        if not lines[1].startswith("Response:"):
            raise ValueError(f"{path.name}: line 2 is not the login response")
        messages.extend(raw.encode("utf-8") for raw in lines[2:])
    return messages, [p.name for p in files]


def _rewrite(block: bytes, rep: int) -> bytes:
    if rep == 0:
        return block
    add = rep * REP_OFFSET

    def ids(m: re.Match[bytes]) -> bytes:
        return b"%s: %s.%d\r" % (m.group(1), m.group(2), int(m.group(3)) + add)

    block = _ID_RE.sub(ids, block)
    prefix = b"%04x" % (rep & 0xFFFF)
    return _BRIDGE_RE.sub(lambda m: m.group(1) + prefix + m.group(2) + b"\r", block)


@dataclass
class Corpus:
    data: bytes
    events: int  # messages starting with "Event:" (the rate denominator)
    messages: int  # all AMI messages in data (events + the few action responses)
    repetitions: int
    files: list[str] = field(default_factory=list)

    def describe(self) -> str:
        return (
            f"{self.events:,} events ({self.messages:,} AMI messages, "
            f"{len(self.data) / 1e6:,.1f} MB) = {self.repetitions} x {len(self.files)} traces"
        )


def build_corpus(min_events: int | None = None, directory: Path | None = None) -> Corpus:
    """Build the benchmark stream with at least ``min_events`` events
    (``None``: env ``BENCH_EVENTS`` or 1,000,000)."""
    if min_events is None:
        min_events = bench_events()
    messages, files = load_messages(directory)
    per_rep_events = sum(1 for m in messages if m.startswith(b"Event:"))
    block = b"".join(m + b"\r\n" for m in messages)
    max_seq = max((int(m.group(3)) for m in _ID_RE.finditer(block)), default=0)
    if max_seq >= REP_OFFSET:
        raise ValueError(f"Uniqueid sequence {max_seq} >= REP_OFFSET; raise REP_OFFSET")
    reps = max(1, math.ceil(min_events / per_rep_events))
    data = b"".join(_rewrite(block, k) for k in range(reps))
    return Corpus(
        data=data,
        events=per_rep_events * reps,
        messages=len(messages) * reps,
        repetitions=reps,
        files=files,
    )


def build_stream(min_events: int | None = None) -> tuple[bytes, int]:
    """``(stream bytes, event count)``: the form the benchmark hooks take."""
    c = build_corpus(min_events)
    return c.data, c.events


def iter_chunks(data: bytes, size: int):
    """The stream as a socket would deliver it under load: ``size``-byte reads."""
    for off in range(0, len(data), size):
        yield data[off : off + size]
