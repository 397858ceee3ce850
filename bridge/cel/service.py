"""Backfill in the daemon: after every gap, Asterisk's CEL read and its account handed to
the tracking loop.

The pipeline tells each gap (`gap`, when it takes a resync: start-up, AMI reconnect, a
resync after dropped events). This task then reads the CEL rows of the gap (the source's
I/O, and the interpretation, off the tracking loop), asks the store which of those calls
it already finished, and hands the account to the pipeline (`Backfilled`), which applies
it between two AMI events (`bridge.cel.backfill.apply`). While calls wait for their rows
(parked: they ended while the bridge was away, or up across a gap and ended since) it
reads again every `poll` seconds; a call whose rows do not come within `settle_timeout`
is closed with what the bridge saw (`CloseParked`). A failed read is logged and retried.
"""

from __future__ import annotations

import asyncio
import csv
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar

from ..observability.logs import get_logger
from ..store.errors import DB_ERRORS_OR_TIMEOUT
from ..tracker.tracker import CallTracker
from .backfill import SLACK, Gap, GapAccount, read_gap
from .csvlog import LAB_FIELDS, CelCsv
from .interpret import CelInterpreters
from .rows import CelRow

log = get_logger("bridge.cel")

_REMEMBERED = 100_000  # calls reported by a backfill, never reported again by another


T = TypeVar("T")


class CelSource(Protocol):
    async def rows(self, since: float) -> list[CelRow]: ...

    async def read(self, since: float, reader: Callable[[Iterable[CelRow]], T]) -> T:
        """`reader` over the rows written at `since` or later, in a worker thread."""
        ...

    async def close(self) -> None: ...


class CsvSource:
    """cel_custom's file, read in a worker thread as it is interpreted (a long gap's rows
    are never all in memory at once)."""

    def __init__(self, path: str | Path, fields: Sequence[str] = (), timezone: str = "UTC"):
        self.csv = CelCsv(path, fields or LAB_FIELDS, timezone)

    async def rows(self, since: float) -> list[CelRow]:
        return await asyncio.to_thread(lambda: list(self.csv.rows(since)))

    async def read(self, since: float, reader: Callable[[Iterable[CelRow]], T]) -> T:
        return await asyncio.to_thread(lambda: reader(self.csv.rows(since)))

    async def close(self) -> None:
        return None


@dataclass(slots=True)
class Backfilled:
    """A CEL account for the tracking loop; `finished`: calls the store has finished."""

    account: GapAccount
    finished: frozenset[str] = frozenset()
    gaps: int = 0  # how many of the gaps handed to `Backfiller.gap`, oldest first, it covers


@dataclass(slots=True)
class CloseParked:
    """Calls whose rows did not come in time: closed with what the bridge saw."""

    callids: list[str] = field(default_factory=list)


# a CEL read or the store's answer failed: logged, retried at the next poll
READ_ERRORS: tuple[type[BaseException], ...] = (
    *DB_ERRORS_OR_TIMEOUT,
    ValueError,
    LookupError,
    csv.Error,
)


class Backfiller:
    def __init__(
        self,
        source: CelSource,
        tracker: CallTracker,
        finished_among: Callable[[Collection[str]], Awaitable[Collection[str]]],
        inject: Callable[[Backfilled | CloseParked], None],
        *,
        poll: float = 2.0,
        settle_timeout: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source = source
        self.tracker = tracker
        self.finished_among = finished_among
        self.inject = inject
        self.poll = poll
        self.settle_timeout = settle_timeout
        self.clock = clock
        self._gaps: list[Gap] = []
        self._wake = asyncio.Event()
        self._parked_since: dict[str, float] = {}
        self._reported: OrderedDict[str, None] = OrderedDict()
        self.reads = 0
        self.read_failures = 0
        self._failing: tuple[str, float] | None = None  # the error, when it was logged
        self.reported = 0
        self.settled = 0
        self.last_read_seconds = 0.0

    def gap(self, since: float | None, until: float) -> None:
        """The bridge missed what Asterisk did from `since` (its last event before the
        gap; None: it knows of no earlier moment) to `until` (the snapshot after it)."""
        if since is None:
            log.info("cel_backfill_no_gap_start", until=until)
            since = until
        self._gaps.append(Gap(since=since, until=until))
        self._wake.set()

    async def run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), self.poll)
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                await self.once()
            except READ_ERRORS as exc:
                self._failed(f"{type(exc).__name__}: {exc}"[:300])
            else:
                if self._failing is not None:
                    log.warning("cel_read_ok_again", failures=self.read_failures)
                    self._failing = None

    def _failed(self, error: str) -> None:
        """A failed read is retried every `poll` seconds: logged when it starts, when the
        error changes, and once a minute while it lasts."""
        self.read_failures += 1
        now = self.clock()
        last = self._failing
        if last is None or last[0] != error or now - last[1] >= 60.0:
            log.warning("cel_read_failed", error=error, failures=self.read_failures)
            self._failing = (error, now)

    async def once(self) -> None:
        """One read of the CEL, if a gap or a call waits for it."""
        tracker = self.tracker
        parked = tracker.parked()
        self._expire(parked)
        gaps = list(self._gaps)
        if not gaps and not parked:
            return
        waiting = tracker.waiting_for_cel()
        starts = {c: waiting[c] for c in parked if c in waiting}
        if gaps:  # live calls up across the gap: their real start and answer
            starts = waiting
        since = min(g.since for g in gaps) if gaps else float("inf")
        read_from = min([since, *starts.values()]) - SLACK
        until = max([tracker.last_at, *(g.until for g in gaps)])
        interpreters = CelInterpreters.for_tracker(tracker)
        gap = Gap(since=since, until=until, wanted=frozenset(starts))
        began = time.perf_counter()
        account = await self.source.read(read_from, lambda rows: read_gap(interpreters, gap, rows))
        self.last_read_seconds = time.perf_counter() - began
        self.reads += 1
        finished = set(await self.finished_among(list(account.calls)))
        finished.update(c for c in account.calls if c in self._reported)
        for fault in account.faults:
            log.error("cel_call_not_interpreted", callid=fault.callid, error=fault.error)
        del self._gaps[: len(gaps)]
        unseen = [
            c
            for c in account.calls
            if c not in finished
            and c not in parked
            and not tracker.follows(c)
            and not tracker.knows(c)
        ]
        for callid in unseen:
            self._remember(callid)
        settled = [c for c in account.calls if c in parked]
        self.settled += len(settled)
        self.reported += len(unseen)
        if gaps or settled:
            log.info(
                "cel_backfill",
                since=round(since, 3) if gaps else None,
                until=round(until, 3),
                rows=account.rows,
                calls=len(account.calls),
                unseen=len(unseen),
                settled=len(settled),
                seconds=round(self.last_read_seconds, 3),
            )
        self.inject(Backfilled(account, frozenset(finished), gaps=len(gaps)))

    def _expire(self, parked: list[str]) -> None:
        now = self.clock()
        since = self._parked_since
        for callid in list(since):
            if callid not in parked:
                del since[callid]
        for callid in parked:
            since.setdefault(callid, now)
        late = [c for c, t in since.items() if now - t >= self.settle_timeout]
        if late:
            for callid in late:
                del since[callid]
            log.warning("cel_rows_missing_closing_with_what_was_seen", calls=late[:20])
            self.inject(CloseParked(late))

    def _remember(self, callid: str) -> None:
        self._reported[callid] = None
        if len(self._reported) > _REMEMBERED:
            self._reported.popitem(last=False)
