"""CEL rows -> calls: the call tracker fed with the AMI events the rows stand for.

Pure code, like the tracker: no I/O, no clock. Why the tracker and not rules of its own:
CEL and AMI are written from the same channel snapshots (see `synth`), and the tracker is
where the product's call semantics live (who the customer is, direction, "answered" as
connected with the customer through bridges and Local pairs, queues, transfers, the
employee a history names, the status). A second set of rules over CEL would be a second
product that could disagree with the first; a translation cannot, except where CEL says
less than AMI (`synth` lists what is inferred).

Interpreters are chosen per call by `can_interpret` (as wazo-call-logd does), and one
call that fails is reported as a fault and skipped: the others go on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ..tracker.model import CallEvent, CallFacts, CallRecord, TrackerFault
from ..tracker.record import facts_of
from ..tracker.tracker import CallTracker
from .groups import CelGroup
from .rows import CHAN_START
from .synth import CallSynth


@dataclass(slots=True)
class CelCall:
    """One call as its CEL tells it: the history and each employee's events."""

    record: CallRecord
    events: list[CallEvent] = field(default_factory=list)


@dataclass(slots=True)
class CelFault:
    """A call (group of rows) that could not be interpreted: logged, skipped."""

    callid: str
    error: str


class Interpreter(Protocol):
    def can_interpret(self, group: CelGroup) -> bool: ...

    def interpret(self, group: CelGroup) -> list[CelCall]: ...

    def facts(self, group: CelGroup) -> dict[str, tuple[CallFacts, str]]: ...


class TrackerInterpreter:
    """The default: any call whose rows name its channels (a CHAN_START at least)."""

    def __init__(self, new_tracker: Callable[[], CallTracker]) -> None:
        self._new_tracker = new_tracker
        self._tracker: CallTracker | None = None
        self.tracker_faults: list[TrackerFault] = []

    def can_interpret(self, group: CelGroup) -> bool:
        return any(row.eventtype == CHAN_START for row in group.rows)

    def interpret(self, group: CelGroup) -> list[CelCall]:
        """The calls of a complete group (their last channel hung up)."""
        tracker = self._tracker
        if tracker is None:
            tracker = self._tracker = self._new_tracker()
        outputs = []
        for event in CallSynth(group.rows).events():
            outputs.extend(tracker.feed(event))
        if tracker.open_calls:  # a channel whose HANGUP is not in the log
            outputs.extend(tracker.close_all(group.end))
        self.tracker_faults.extend(tracker.take_faults())
        calls: dict[str, CelCall] = {}
        events: dict[str, list[CallEvent]] = {}
        for out in outputs:
            if isinstance(out, CallRecord):
                calls[out.callid] = CelCall(out, events.pop(out.callid, []))
            elif isinstance(out, CallEvent):  # a CEL tracker never parks a call
                events.setdefault(out.callid, []).append(out)
        return list(calls.values())

    def facts(self, group: CelGroup) -> dict[str, tuple[CallFacts, str]]:
        """What the rows so far tell of calls still up (their start, answer, offer, the
        customer's number)."""
        tracker = self._new_tracker()
        for event in CallSynth(group.rows).events():
            tracker.feed(event)
        return {callid: (facts_of(call), call.phone) for callid, call in tracker.calls.items()}


class CelInterpreters:
    """The interpreters in order of preference; faults isolated per group."""

    def __init__(self, interpreters: Sequence[Interpreter]) -> None:
        self.interpreters = list(interpreters)
        self.faults: list[CelFault] = []

    @classmethod
    def for_tracker(cls, live: CallTracker) -> CelInterpreters:
        """Interpreting as `live` tracks: same channel classes, numbers and directory."""
        return cls([TrackerInterpreter(live.sibling)])

    def _choose(self, group: CelGroup) -> Interpreter | None:
        return next((i for i in self.interpreters if i.can_interpret(group)), None)

    def interpret(self, group: CelGroup) -> list[CelCall]:
        chosen = self._choose(group)
        if chosen is None:
            self.faults.append(CelFault(group.callid, "no interpreter for these rows"))
            return []
        try:
            return chosen.interpret(group)
        except Exception as exc:  # one call's rows must not cost the others
            self.faults.append(CelFault(group.callid, repr(exc)))
            return []

    def facts(self, group: CelGroup) -> dict[str, tuple[CallFacts, str]]:
        chosen = self._choose(group)
        if chosen is None:
            return {}
        try:
            return chosen.facts(group)
        except Exception as exc:
            self.faults.append(CelFault(group.callid, repr(exc)))
            return {}

    def take_faults(self) -> list[CelFault]:
        faults = list(self.faults)
        self.faults.clear()
        for interpreter in self.interpreters:
            if isinstance(interpreter, TrackerInterpreter) and interpreter.tracker_faults:
                faults.extend(
                    CelFault(f.callid, f"{f.event}: {f.error}") for f in interpreter.tracker_faults
                )
                interpreter.tracker_faults.clear()
        return faults
