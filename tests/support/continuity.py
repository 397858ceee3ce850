"""A bridge stopped at one point of a recorded trace and back at another, in pure code.

What the daemon does across a gap, step by step and synchronously: the tracker before the
gap writes into a store (`MemoryCallStore`); after it, a tracker restored from that store
(a restart) or the same one (an AMI reconnect) takes Asterisk's channel snapshot at that
moment (`AsteriskView`, as the fake AMI server computes it) and, with the CEL rows Asterisk
had written by then, settles, amends and reports what it missed (`bridge.cel.backfill`).
The AMI events of the gap are lost; the rest of the trace follows.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

from bridge.ami.parser import AmiMessage, parse_message
from bridge.cel.backfill import Gap, apply, read_gap
from bridge.cel.csvlog import CelCsv
from bridge.cel.interpret import CelInterpreters
from bridge.cel.rows import CelRow
from bridge.devtools.fake_ami import AsteriskView, load_trace
from bridge.devtools.memory_store import MemoryCallStore
from bridge.tracker.tracker import CallTracker
from tests.support.traces import grammar_violations

Mode = Literal["restart", "reconnect"]
Timed = tuple[float, str, AmiMessage]
HISTORY_KEYS = ("type", "status", "ext", "user", "phone", "diversion", "groupRealName")
MOMENTS = ("ringing", "talking", "hung_up")


@dataclass(frozen=True)
class Trace:
    """One recorded scenario: its AMI messages and its CEL rows."""

    directory: Path
    name: str

    @property
    def messages(self) -> list[Timed]:
        return _messages(self.directory / f"{self.name}.ami.jsonl")

    @property
    def cel(self) -> list[CelRow]:
        return _cel(self.directory / f"{self.name}.cel.csv")

    def moment(self, what: str) -> int:
        """How many messages were replayed at a moment of the call: `ringing` (the first
        phone rings), `talking` (the customer is bridged with someone), `hung_up` (after
        the last hang-up)."""
        msgs = self.messages
        for i, (_, _, ev) in enumerate(msgs):
            name = ev.get("Event")
            if what == "ringing" and name == "Newstate" and ev.get("ChannelState") == "5":
                return i + 1
            if what == "talking" and name == "BridgeEnter" and "trunk" in ev.get("Channel", ""):
                return i + 1
        if what == "hung_up":
            last = max(i for i, (_, _, ev) in enumerate(msgs) if ev.get("Event") == "Hangup")
            return last + 1
        return 0


@cache
def _messages(path: Path) -> list[Timed]:
    return [(t, raw, parse_message(raw)) for t, raw in load_trace(path) if "Event:" in raw]


@cache
def _cel(path: Path) -> list[CelRow]:
    return CelCsv(path).parse(path.read_text(encoding="utf-8").splitlines())


def uninterrupted(trace: Trace, tracker: CallTracker) -> MemoryCallStore:
    store = MemoryCallStore()
    for t, _, ev in trace.messages:
        store.save_now(tracker.feed(ev, t))
    return store


def interrupted(
    trace: Trace,
    new_tracker: Any,
    stop: int,
    back: int,
    mode: Mode = "restart",
    cel: bool = True,
) -> MemoryCallStore:
    """The bridge follows `stop` messages, misses those up to `back`, follows the rest."""
    msgs = trace.messages
    store = MemoryCallStore()
    tracker: CallTracker = new_tracker()
    for t, _, ev in msgs[:stop]:
        store.save_now(tracker.feed(ev, t))
    view = AsteriskView()
    view.start_clock([(t, raw) for t, raw, _ in msgs])
    seen_until = view.clock - 1.0  # the bridge ran before the trace began, on a quiet PBX
    for t, raw, _ in msgs[:stop]:
        view.apply(t, raw)
    if stop:
        seen_until = max(tracker.last_at, view.clock)
    for t, raw, _ in msgs[stop:back]:
        view.apply(t, raw)
    known = None
    if mode == "restart":
        store.covered = seen_until
        tracker = new_tracker()
        tracker.restore(store.open_now())
    else:
        known = tracker.mark()
    live = [{"Event": "CoreShowChannel", **c} for c in view.show()]
    store.save_now(tracker.resync(live, view.clock, known, seen_until=seen_until, park=cel))
    if cel:
        written = [r for r in trace.cel if r.eventtime <= view.clock]
        _backfill(tracker, store, seen_until, view.clock, written)
    for t, _, ev in msgs[back:]:
        store.save_now(tracker.feed(ev, t))
    if cel and tracker.parked():  # their last rows were written after the snapshot
        _backfill(tracker, store, seen_until, view.clock, trace.cel)
    for callid in tracker.parked():
        store.save_now(tracker.close_parked(callid))
    return store


def killed_before_the_account(
    trace: Trace, new_tracker: Any, stop: int, back: int, kill: int, again: int
) -> tuple[MemoryCallStore, list[str]]:
    """The bridge follows `stop` messages and loses its AMI link until `back`; the CEL's
    account of the gap comes at once, but the calls up across the gap that end later
    wait for the next one, which is slow: the bridge follows up to `kill` and is killed
    (kill -9) before it came; a new bridge starts at `again`. Returns the store and the
    calls the first bridge had waiting at its death."""
    msgs = trace.messages
    store = MemoryCallStore()
    tracker: CallTracker = new_tracker()
    view = AsteriskView()
    view.start_clock([(t, raw) for t, raw, _ in msgs])
    for t, raw, ev in msgs[:stop]:
        store.save_now(tracker.feed(ev, t))
        view.apply(t, raw)
    seen_until = tracker.last_at
    for t, raw, _ in msgs[stop:back]:
        view.apply(t, raw)
    known = tracker.mark()
    live = [{"Event": "CoreShowChannel", **c} for c in view.show()]
    store.save_now(tracker.resync(live, view.clock, known, seen_until=seen_until, park=True))
    _backfill(
        tracker, store, seen_until, view.clock, [r for r in trace.cel if r.eventtime <= view.clock]
    )
    for t, raw, ev in msgs[back:kill]:
        store.save_now(tracker.feed(ev, t))
        view.apply(t, raw)
    waiting = tracker.parked()
    store.covered = tracker.last_at  # everything it tracked was stored
    for t, raw, _ in msgs[kill:again]:
        view.apply(t, raw)
    tracker = new_tracker()
    tracker.restore(store.open_now())
    live = [{"Event": "CoreShowChannel", **c} for c in view.show()]
    store.save_now(tracker.resync(live, view.clock, None, seen_until=store.covered, park=True))
    written = [r for r in trace.cel if r.eventtime <= view.clock]
    _backfill(tracker, store, store.covered, view.clock, written)
    for t, _, ev in msgs[again:]:
        store.save_now(tracker.feed(ev, t))
    if tracker.parked():
        _backfill(tracker, store, store.covered, view.clock, trace.cel)
    for callid in tracker.parked():
        store.save_now(tracker.close_parked(callid))
    return store, waiting


def _backfill(
    tracker: CallTracker, store: MemoryCallStore, since: float, until: float, rows: list[CelRow]
) -> None:
    wanted = frozenset(tracker.parked()) | frozenset(tracker.calls)
    account = read_gap(CelInterpreters.for_tracker(tracker), Gap(since, until, wanted), rows)
    assert not account.faults, account.faults
    finished = {c for c, call in store.calls.items() if call.record is not None}
    store.save_now(apply(tracker, account, finished))


def differences(want: MemoryCallStore, got: MemoryCallStore, strict_events: bool) -> list[str]:
    """What a CRM received differently: histories (every one exactly once, same fields,
    duration/wait/start within a second), and the event grammar; `strict_events`: the
    same events too."""
    problems: list[str] = []
    wanted = {h["callid"]: h for h in want.crm() if h["cmd"] == "history"}
    counts = Counter(h["callid"] for h in got.crm() if h["cmd"] == "history")
    problems += [f"{c}: {n} histories" for c, n in counts.items() if n != 1]
    received = {h["callid"]: h for h in got.crm() if h["cmd"] == "history"}
    for callid, h in wanted.items():
        other = received.get(callid)
        if other is None:
            problems.append(f"{callid}: no history")
            continue
        for key in HISTORY_KEYS:
            if h.get(key) != other.get(key):
                problems.append(f"{callid}: {key} {other.get(key)!r}, want {h.get(key)!r}")
        for key in ("duration", "wait"):
            if abs(int(h[key]) - int(other[key])) > 1:
                problems.append(f"{callid}: {key} {other[key]}, want {h[key]}")
        if abs(_seconds(h["start"]) - _seconds(other["start"])) > 1:
            problems.append(f"{callid}: start {other['start']}, want {h['start']}")
    problems += [f"{c}: not expected" for c in received if c not in wanted]
    for callid, exts in _events(got).items():
        for ext, types in exts.items():
            problems += [f"{callid} {ext}: {p}" for p in grammar_violations(types)]
    if strict_events and _events(want) != _events(got):
        problems.append(f"events {_events(got)}, want {_events(want)}")
    return problems


def _events(store: MemoryCallStore) -> dict[str, dict[str, list[str]]]:
    found: dict[str, dict[str, list[str]]] = {}
    for p in store.crm():
        if p["cmd"] == "event":
            found.setdefault(p["callid"], {}).setdefault(p.get("ext", ""), []).append(p["type"])
    return found


def _seconds(stamp: str) -> int:
    from calendar import timegm
    from time import strptime

    return timegm(strptime(stamp, "%Y%m%dT%H%M%SZ"))
