"""One gap, from Asterisk's CEL: what the bridge reports for the calls it did not see.

A gap is what the bridge missed between the last moment it knew Asterisk's state
(`since`: its last event or Ping reply before the link dropped, or, at start-up, how far
the previous leader had stored) and the channel snapshot after the (re)connect (`until`).
The call tracker's resync already parked the calls that ended unseen and took over the
live ones. Here, from the CEL rows:

- a parked call (the bridge saw its start) is settled with the account of its end: its
  open employee sequences closed as the CEL says, the history the CEL's (`settle`);
- a live call the bridge took over gets its real start and answer (`amend`);
- a call the bridge never saw that ended after `since` is reported: its history only
  (no `event` pop-ups for a call already over), `closed_by = "backfill"`;
- a call the tracker follows, or that the store already has finished, is left alone: a
  call is never reported twice (and the store only ever writes a backfilled history over
  a call still open, see CallStore).

`GapReader` is pure (rows in, accounts out); `apply` runs in the pipeline's tracking loop.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field

from ..tracker.model import CallFacts, CallRecord, Output
from ..tracker.settle import BACKFILL
from ..tracker.tracker import CallTracker
from .groups import CelGroup, Grouper
from .interpret import CelCall, CelFault, CelInterpreters
from .rows import CelRow

# CEL rows and AMI events of one moment are written a few milliseconds apart, in either
# order: a call that ended just before the gap began may not have been seen ending. Such
# a call is read too; what the store or the tracker already has is not reported again.
SLACK = 5.0


@dataclass(slots=True)
class Gap:
    since: float  # the last moment the bridge knew Asterisk's state (Asterisk's clock)
    until: float  # the snapshot after the gap
    wanted: frozenset[str] = frozenset()  # calls parked or up at the snapshot


@dataclass(slots=True)
class GapAccount:
    """What the CEL says of a gap's calls."""

    calls: dict[str, CelCall] = field(default_factory=dict)  # ended (complete rows)
    # still up at `until`: their facts and the customer's number so far
    facts: dict[str, tuple[CallFacts, str]] = field(default_factory=dict)
    faults: list[CelFault] = field(default_factory=list)
    groups: int = 0
    rows: int = 0


class GapReader:
    """Feed the rows of a gap in the order Asterisk wrote them (`add`), then `finish`;
    `take` hands over the accounts complete so far (a long gap is reported as it is
    read)."""

    def __init__(self, interpreters: CelInterpreters, gap: Gap) -> None:
        self.interpreters = interpreters
        self.gap = gap
        self._grouper = Grouper()
        self._account = GapAccount()

    def add(self, rows: Iterable[CelRow]) -> None:
        grouper, account = self._grouper, self._account
        for row in rows:
            account.rows += 1
            done = grouper.add(row)
            if done is not None:
                self._complete(done)

    def finish(self) -> None:
        for group in self._grouper.finish():
            if group.over:  # a CEL that logs no LINKEDID_END
                self._complete(group)
            elif group.linkedids & self.gap.wanted:
                self._account.facts.update(self.interpreters.facts(group))

    def take(self) -> GapAccount:
        account, self._account = self._account, GapAccount()
        account.faults = self.interpreters.take_faults()
        return account

    def _complete(self, group: CelGroup) -> None:
        wanted = group.linkedids & self.gap.wanted
        if group.end < self.gap.since - SLACK and not wanted:
            return  # over before the gap: the bridge saw it
        self._account.groups += 1
        for call in self.interpreters.interpret(group):
            self._account.calls[call.record.callid] = call


def read_gap(interpreters: CelInterpreters, gap: Gap, rows: Iterable[CelRow]) -> GapAccount:
    """All of a gap at once (tests, tools)."""
    reader = GapReader(interpreters, gap)
    reader.add(rows)
    reader.finish()
    return reader.take()


def apply(
    tracker: CallTracker, account: GapAccount, finished: Collection[str] = ()
) -> list[Output]:
    """The account's effect on the calls (in the tracking loop, between AMI events):
    parked calls settled, live ones amended, unseen ones reported. `finished`: calls the
    store already has finished (a previous run reported them)."""
    out: list[Output] = []
    parked = set(tracker.parked())
    for callid, (facts, phone) in account.facts.items():
        tracker.amend(callid, facts, phone)
    for callid, call in account.calls.items():
        if callid in parked:
            out.extend(tracker.settle(callid, call.record, call.events))
        elif tracker.follows(callid):
            # up at the snapshot and ended since: what the rows say of it so far
            tracker.amend(callid, _facts_of_record(call.record), call.record.phone)
        elif tracker.knows(callid) or callid in finished:
            continue
        else:
            out.append(unseen(call.record))
    return out


def unseen(record: CallRecord) -> CallRecord:
    """A call the bridge never saw: its history as the CEL tells it."""
    return dataclasses.replace(record, closed_by=BACKFILL)


def _facts_of_record(record: CallRecord) -> CallFacts:
    talker = record.ext if record.answered is not None else ""
    return CallFacts(
        start=record.start,
        answered=record.answered,
        recording=record.recording,
        last_talker=talker,
        phone_name=record.phone_name,
    )


def callids(account: GapAccount) -> list[str]:
    return list(account.calls)


Finished = Callable[[Collection[str]], Collection[str]]
