"""CEL rows per call, as they stream in (in the order Asterisk wrote them).

A call is a Linkedid; a pickup or an attended transfer moves channels from one Linkedid to
another, so the rows of every Linkedid that shares a channel with another are one group
(wazo-call-logd does the same). main/cel.c writes LINKEDID_END when no channel carries a
Linkedid any more (after the last one's HANGUP and CHAN_END, or when the last one moved to
another Linkedid): a group is complete once each of its Linkedids ended and all its
channels hung up. Rows arriving for a group already complete are stragglers.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from ..tracker.ids import uid_order
from .rows import CHAN_END, HANGUP, LINKEDID_END, CelRow

_DONE_MEMORY = 65_536


@dataclass(eq=False)
class CelGroup:
    """The rows of one call (one or more Linkedids sharing channels), in source order."""

    linkedids: set[str] = field(default_factory=set)
    rows: list[CelRow] = field(default_factory=list)
    ended: set[str] = field(default_factory=set)  # Linkedids whose LINKEDID_END came
    channels: dict[str, bool] = field(default_factory=dict)  # Uniqueid -> hung up

    @property
    def complete(self) -> bool:
        """Each Linkedid ended and no channel lives (a channel a pickup moved to another
        call ends its old Linkedid while it lives on)."""
        return bool(self.linkedids) and self.linkedids <= self.ended and self.over

    @property
    def over(self) -> bool:
        """Every channel hung up (complete, for a CEL that logs no LINKEDID_END)."""
        return bool(self.channels) and all(self.channels.values())

    @property
    def start(self) -> float:
        return self.rows[0].eventtime if self.rows else 0.0

    @property
    def end(self) -> float:
        return max((r.eventtime for r in self.rows), default=0.0)

    @property
    def callid(self) -> str:
        """The call's id for logs: its oldest Linkedid."""
        return min(self.linkedids, key=uid_order) if self.linkedids else ""


class Grouper:
    """Feed rows in source order; `add` returns a group the moment it is complete."""

    def __init__(self) -> None:
        self._by_uid: dict[str, CelGroup] = {}
        self._by_lid: dict[str, CelGroup] = {}
        self._done: OrderedDict[str, None] = OrderedDict()
        self.stragglers = 0

    def add(self, row: CelRow) -> CelGroup | None:
        uid, lid = row.uniqueid, row.linkedid
        if uid in self._done or lid in self._done:
            self.stragglers += 1
            return None
        group = self._by_uid.get(uid)
        other = self._by_lid.get(lid)
        if group is None:
            group = other
        elif other is not None and other is not group:
            group = self._merge(group, other)
        if group is None:
            group = CelGroup()
        group.rows.append(row)
        if lid:
            group.linkedids.add(lid)
            self._by_lid[lid] = group
        if uid:
            self._by_uid[uid] = group
            hung_up = row.eventtype in (HANGUP, CHAN_END)
            group.channels[uid] = group.channels.get(uid, False) or hung_up
        if row.eventtype == LINKEDID_END:
            group.ended.add(lid)
            if group.complete:
                self._retire(group)
                return group
        return None

    def finish(self) -> list[CelGroup]:
        """The groups not complete at the end of the rows (calls still up, or a CEL that
        logs no LINKEDID_END: see `CelGroup.over`)."""
        seen: dict[int, CelGroup] = {}
        for group in self._by_lid.values():
            seen[id(group)] = group
        for group in self._by_uid.values():
            seen[id(group)] = group
        self._by_lid.clear()
        self._by_uid.clear()
        return sorted(seen.values(), key=lambda g: g.rows[0].order if g.rows else 0)

    def _merge(self, a: CelGroup, b: CelGroup) -> CelGroup:
        big, small = (a, b) if len(a.rows) >= len(b.rows) else (b, a)
        big.rows = list(heapq.merge(big.rows, small.rows, key=lambda r: r.order))
        big.linkedids |= small.linkedids
        big.ended |= small.ended
        for uid, hung_up in small.channels.items():
            big.channels[uid] = big.channels.get(uid, False) or hung_up
            self._by_uid[uid] = big
        for lid in small.linkedids:
            self._by_lid[lid] = big
        return big

    def _retire(self, group: CelGroup) -> None:
        for uid in group.channels:
            self._by_uid.pop(uid, None)
            self._remember(uid)
        for lid in group.linkedids:
            self._by_lid.pop(lid, None)
            self._remember(lid)

    def _remember(self, key: str) -> None:
        self._done[key] = None
        if len(self._done) > _DONE_MEMORY:
            self._done.popitem(last=False)


def group_rows(rows: Iterable[CelRow]) -> Iterator[CelGroup]:
    """Every group of `rows`: complete ones as they complete, then the others."""
    grouper = Grouper()
    for row in rows:
        done = grouper.add(row)
        if done is not None:
            yield done
    yield from grouper.finish()
