"""Backfill of a one-hour gap at 20 calls/s (issue 8): 72,000 calls rebuilt from CEL.

The CEL file is synthesized from the recorded load trace (traces/asterisk22/load_mixed,
200 calls): its rows repeated 360 times, each repetition shifted by 10 s (200 calls per
10 s = 20 calls/s) with its own Uniqueids, Linkedids, channel names and bridge ids, in a
cel_custom file of the lab's format. Timed, as the daemon does it after a gap (no store):
`CsvSource.rows` (bisection + CSV parse), `read_gap` (group, say as AMI events, through a
tracker) and `apply` against a live tracker that saw none of them. Baselines measured in
the same run: the plain `csv.reader` pass over the same file (the floor: reading it at
all), and the tracker following the same calls live from their AMI events (per call,
measured on 20 repetitions).

`BENCH_BACKFILL_CALLS` (default 72000) sets the number of calls.
"""

from __future__ import annotations

import asyncio
import csv
import os
import re
import tempfile
import time
from pathlib import Path

from bench.corpus import traces_dir

LAB = dict(trunks=["PJSIP/trunk-*"], extensions=["PJSIP/*"], region="RU", main_number="74957654321")
_EPOCH = re.compile(r"1[78]\d{8}(?:\.\d+)?")
_CHANNEL = re.compile(r"-0000([0-9a-f]{4})(?=[;\",]|$)")
_UUID = re.compile(r"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-)[0-9a-f]{4}")
SHIFT = 10.0  # seconds between two repetitions of the 200 calls


def _shifted(text: str, k: int) -> str:
    """One repetition: times and ids moved by k * SHIFT s, names and bridges made unique."""
    shift = k * SHIFT

    def epoch(m: re.Match[str]) -> str:
        whole, _, frac = m.group(0).partition(".")
        return f"{int(whole) + int(shift)}" + (f".{frac}" if frac else "")

    text = _EPOCH.sub(epoch, text)
    text = _CHANNEL.sub(lambda m: f"-{k:04x}{m.group(1)}", text)
    return _UUID.sub(lambda m: f"{m.group(1)}{k:04x}", text)


def synthesize(path: Path, calls: int) -> tuple[int, int]:
    """Write the CEL file of `calls` calls; return (rows, repetitions)."""
    source = traces_dir() / "load_mixed.cel.csv"
    header, *body = source.read_text(encoding="utf-8").splitlines()
    block = "\n".join(body) + "\n"
    repetitions = max(1, calls // 200)
    with path.open("w", encoding="utf-8") as fh:
        fh.write(header + "\n")
        for k in range(repetitions):
            fh.write(_shifted(block, k))
    return len(body) * repetitions, repetitions


def _csv_floor(path: Path) -> tuple[float, int]:
    began = time.perf_counter()
    with path.open(encoding="utf-8", newline="") as fh:
        n = sum(1 for _ in csv.reader(fh))
    return time.perf_counter() - began, n


def _live_per_call(repetitions: int = 20) -> float:
    """Seconds per call for the tracker following load_mixed's calls live on AMI."""
    from bridge.ami.trace import trace_events
    from bridge.tracker.tracker import CallTracker

    events = list(trace_events(traces_dir() / "load_mixed.ami.jsonl"))
    copies = [  # made before the clock starts: only the tracking is timed
        (
            t + k * SHIFT,
            {
                key: (value + f"r{k}" if key.endswith(("Uniqueid", "Linkedid")) else value)
                for key, value in ev.items()
            },
        )
        for k in range(repetitions)
        for t, ev in events
    ]
    tracker = CallTracker(**LAB)  # type: ignore[arg-type]
    feed = tracker.feed
    began = time.perf_counter()
    for t, ev in copies:
        feed(ev, t)
    return (time.perf_counter() - began) / (200 * repetitions)


async def _backfill(path: Path, since: float, until: float) -> tuple[float, dict[str, float]]:
    from bridge.cel.backfill import Gap, apply, read_gap
    from bridge.cel.interpret import CelInterpreters
    from bridge.cel.service import CsvSource
    from bridge.tracker.model import CallRecord
    from bridge.tracker.tracker import CallTracker

    live = CallTracker(**LAB)  # type: ignore[arg-type]
    source = CsvSource(path)
    interpreters = CelInterpreters.for_tracker(live)
    began = time.perf_counter()
    account = await source.read(since, lambda rows: read_gap(interpreters, Gap(since, until), rows))
    interpreted = time.perf_counter()
    outputs = apply(live, account)
    done = time.perf_counter()
    histories = sum(isinstance(o, CallRecord) and o.external for o in outputs)
    return done - began, {
        "rows": account.rows,
        "read_interpret_s": interpreted - began,
        "apply_s": done - interpreted,
        "histories": histories,
        "faults": len(account.faults),
    }


def backfill_report() -> str:
    calls = int(os.environ.get("BENCH_BACKFILL_CALLS", "72000"))
    with tempfile.TemporaryDirectory(prefix="bench-cel-") as tmp:
        path = Path(tmp) / "cel_master.csv"
        began = time.perf_counter()
        rows, repetitions = synthesize(path, calls)
        made = time.perf_counter() - began
        with path.open(encoding="utf-8") as fh:
            fh.readline()
            first = float(next(csv.reader([fh.readline()]))[1])
        span = repetitions * SHIFT
        seconds, figures = asyncio.run(_backfill(path, first, first + span + 600))
        floor, _ = _csv_floor(path)
        size = path.stat().st_size
    per_call = _live_per_call()
    live = per_call * repetitions * 200
    return "\n".join(
        [
            f"CEL of {repetitions * 200:,} calls over {span / 3600:.2f} h (20 calls/s): "
            f"{rows:,} rows, {size / 1e6:.0f} MB (synthesized in {made:.1f} s)",
            f"backfill of the gap: {seconds:.1f} s = read and interpret (streamed) "
            f"{figures['read_interpret_s']:.1f} s + apply {figures['apply_s']:.2f} s; "
            f"{figures['histories']:,.0f} histories, {figures['faults']:.0f} faults; "
            f"{repetitions * 200 / seconds:,.0f} calls/s",
            f"  vs csv.reader over the same file ({floor:.1f} s): {seconds / floor:.1f}x",
            f"  vs the tracker following the same calls live on AMI ({live:.1f} s, "
            f"{per_call * 1e6:.0f} us/call): {seconds / live:.2f}x",
            f"  a 1-hour gap is {3600 / seconds:,.0f}x its own duration",
        ]
    )


if __name__ == "__main__":
    print(backfill_report())
