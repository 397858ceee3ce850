"""The record every benchmark returns (stdlib only: also imported inside .bench-venv)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Result:
    """One measured figure.

    ``events`` is the number of AMI events in the stream that was processed (the
    denominator of ``events_per_s``), ``seconds`` the wall time (``time.perf_counter``)
    of the timed part only. ``errors`` maps an error kind to its count (e.g. exceptions
    a third-party tracker raised on some events); ``extra`` holds any other figures.
    A benchmark that could not run returns ``events_per_s = 0.0`` and says why in
    ``notes`` (``skipped`` is then True).
    """

    name: str
    events: int
    seconds: float
    events_per_s: float
    notes: str = ""
    errors: dict[str, int] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    skipped: bool = False

    @classmethod
    def timed(cls, name: str, events: int, seconds: float, notes: str = "", **kw: Any) -> Result:
        rate = events / seconds if seconds > 0 else 0.0
        return cls(name=name, events=events, seconds=seconds, events_per_s=rate, notes=notes, **kw)

    @classmethod
    def skip(cls, name: str, why: str) -> Result:
        return cls(name=name, events=0, seconds=0.0, events_per_s=0.0, notes=why, skipped=True)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Result:
        return cls(**d)


def median_run(fn: Callable[[], Result], repeat: int = 1) -> Result:
    """Run ``fn`` ``repeat`` times; return the run with the median rate, all rates in
    ``extra['runs_events_per_s']`` (only when ``repeat > 1``)."""
    runs = [fn() for _ in range(max(1, repeat))]
    if len(runs) == 1:
        return runs[0]
    ordered = sorted(runs, key=lambda r: r.events_per_s)
    chosen = ordered[(len(ordered) - 1) // 2]
    chosen.extra["runs_events_per_s"] = [round(r.events_per_s) for r in runs]
    return chosen


def bench_repeat(default: int = 1) -> int:
    """env ``BENCH_REPEAT``: how many times each benchmark runs (median reported)."""
    raw = os.environ.get("BENCH_REPEAT", "").strip()
    return max(1, int(raw)) if raw else default
