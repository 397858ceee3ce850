"""Recorded traces replayed again and again as if they happened now (the demo's AMI feed).

Each round is the recorded scenarios one after another, at their recorded pace; every
channel gets a fresh Uniqueid (its Linkedid follows) and every Timestamp is moved to the
round's real time, so the bridge sees new calls each round, never stragglers of old ones.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

_ID = re.compile(r"^(\w*(?:Uniqueid|Linkedid): )(\d+)\.(\d+)(?=\r?$)", re.MULTILINE)
_STAMP = re.compile(r"^(Timestamp: )(\d+(?:\.\d+)?)(?=\r?$)", re.MULTILINE)
GAP = 2.0  # seconds between two scenarios of a round

Timed = tuple[float, str]


def _recorded(path: Path) -> list[Timed]:
    """`(t, raw)` of one trace: events only (no banner, no responses, no FullyBooted)."""
    pairs = []
    for line in path.read_text(encoding="utf-8").splitlines()[2:]:
        if not line.strip():
            continue
        item = json.loads(line)
        raw = str(item["raw"])
        if raw.startswith("Event: ") and not raw.startswith("Event: FullyBooted"):
            pairs.append((float(item["t"]), raw))
    return pairs


def _first_stamp(pairs: Sequence[Timed]) -> float | None:
    for _, raw in pairs:
        found = _STAMP.search(raw)
        if found:
            return float(found.group(2))
    return None


class EndlessReplay:
    """`round(start)` gives the next round's `(t, raw)` pairs, `t` counting from the first
    round's start; call it again for the round after (ids never repeat)."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self.scenarios = [p for p in (_recorded(path) for path in paths) if p]
        self._ids = itertools.count(1)
        self._t = 0.0  # replay clock: where the next round starts

    @property
    def duration(self) -> float:
        """Seconds one round takes at the recorded pace."""
        return sum(pairs[-1][0] - pairs[0][0] + GAP for pairs in self.scenarios)

    def round(self, now: float) -> list[Timed]:
        """The next round; `now` is the wall-clock time its first event should carry."""
        out: list[Timed] = []
        clock = now
        for pairs in self.scenarios:
            t0 = pairs[0][0]
            stamp0 = _first_stamp(pairs)
            shift = clock - stamp0 if stamp0 is not None else 0.0
            ids: dict[str, str] = {}

            def new_id(m: re.Match[str], shift: float = shift, ids: dict[str, str] = ids) -> str:
                old = f"{m.group(2)}.{m.group(3)}"
                if old not in ids:
                    ids[old] = f"{int(int(m.group(2)) + shift)}.{next(self._ids)}"
                return m.group(1) + ids[old]

            def new_stamp(m: re.Match[str], shift: float = shift) -> str:
                return f"{m.group(1)}{float(m.group(2)) + shift:.6f}"

            for t, raw in pairs:
                raw = _STAMP.sub(new_stamp, _ID.sub(new_id, raw))
                out.append((self._t + (t - t0), raw))
            span = pairs[-1][0] - t0 + GAP
            self._t += span
            clock += span
        return out


def rounds(replay: EndlessReplay, start: float) -> Iterator[list[Timed]]:
    """Round after round, each stamped with the time it will be played."""
    at = start
    while True:
        yield replay.round(at)
        at += replay.duration
