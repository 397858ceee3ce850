"""The call pipeline: AMI buffer -> call tracker -> store, tracking never waits on Postgres.

Two loops share one ordered buffer of tracker outputs:
- tracking takes AMI events in small chunks, feeds the tracker and appends what it
  reports; it yields to the event loop after every chunk, so FastAGI look-ups never wait
  behind a burst of AMI traffic, and it never awaits the database;
- writing stores the buffer's head, many outputs per transaction (that is what makes the
  database keep up), in order, and removes them only once committed.

While PostgreSQL is away the writer retries with backoff and tracking goes on: calls that
start and end during the outage are kept in the buffer (Asterisk does not buffer AMI for
us) and written, in order and once (writes are idempotent), when it is back. The buffer is
bounded (`buffer_limit` outputs): when full, the oldest ringing pop-ups (`event` outputs,
worthless minutes later) are dropped first, counted and logged; if histories alone fill
it, tracking pauses, the AMI ingest buffer fills in turn and drops events, and the ingest
asks Asterisk for a resync once it has room again (counted as AMI drops).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence
from itertools import islice
from typing import Any, Protocol

import asyncpg

from .ami.ingest import EventsDropped, Item, Resync, ResyncMark
from .backoff import Backoff
from .cel.backfill import apply
from .cel.service import Backfilled, Backfiller, CloseParked
from .net.priority import Priority
from .observability.logs import get_logger
from .store.errors import STORE_RETRY, refuses_data
from .tracker.model import CallEvent, CallParked, GapsPending, Output, Stored
from .tracker.tracker import CallTracker

BUSY_CHUNK = 100  # AMI events tracked between two yields while a look-up is in progress

log = get_logger("bridge.calls")


class Source(Protocol):
    wake: asyncio.Event

    def take(self, limit: int) -> list[Item]: ...


class Sink(Protocol):
    async def save(self, outputs: Sequence[Stored]) -> None: ...


class CallPipeline:
    def __init__(
        self,
        source: Source,
        tracker: CallTracker,
        sink: Sink,
        *,
        batch_size: int = 5000,
        chunk_size: int = 500,
        buffer_limit: int = 200_000,
        on_outputs: Callable[[Sequence[Output]], None] | None = None,
        seen_until: float | None = None,
        priority: Priority | None = None,
    ) -> None:
        self.source = source
        self.tracker = tracker
        self.sink = sink
        self.batch_size = batch_size  # outputs per transaction, at most
        self.chunk_size = chunk_size  # AMI events tracked between two yields to the loop
        self.priority = priority  # FastAGI look-ups in progress go first (bridge.net.priority)
        self.buffer_limit = buffer_limit
        self.on_outputs = on_outputs
        # how far a previous run followed the PBX (Asterisk's clock): a gap's start until
        # this run's first event
        self.seen_until = seen_until
        self.backfill: Backfiller | None = None  # the CEL's account of gaps (if configured)
        self._injected: deque[Backfilled | CloseParked] = deque()
        self.pending: deque[Stored] = deque()  # tracked, not yet committed, in order
        # the start of each gap handed to the backfill whose account was not tracked yet
        self._unaccounted: deque[float] = deque()
        self.events = 0
        self.batches = 0
        self.store_failures = 0
        self.dropped_events = 0  # pop-ups dropped from a full buffer
        self.rejected = 0  # outputs the database refused for good (a bug): logged, skipped
        self.faults = 0  # tracker faults (one call closed early, the rest went on)
        self.db_ok = True
        self._marks: dict[int, frozenset[str]] = {}
        self._since: dict[int, float | None] = {}
        self._lost_since: float | None = None  # the first event dropped since the last mark
        self._queued = asyncio.Event()  # pending has something
        self._room = asyncio.Event()  # pending is below its limit
        self._room.set()
        self._idle = asyncio.Event()  # pending is empty and nothing is being written
        self._idle.set()
        self._inflight = 0  # outputs at the head of `pending` being written now
        self._track_lock = asyncio.Lock()
        self._write_lock = asyncio.Lock()

    # ------------------------------------------------------------------ loops

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self._tracking(), name="pipeline-tracking")
            group.create_task(self._writing(), name="pipeline-writing")

    async def _tracking(self) -> None:
        while True:
            await self.source.wake.wait()
            await self._room.wait()
            if self.priority is not None:
                await self.priority.turn()
            await self._track_some()
            await asyncio.sleep(0)  # let FastAGI and HTTP in between chunks

    async def _writing(self) -> None:
        backoff = Backoff(first=0.2, cap=5.0)
        while True:
            await self._queued.wait()
            try:
                await self._write_some()
                backoff.reset()
            except STORE_RETRY as exc:
                self._store_failed(exc)
                await backoff.sleep()

    # -------------------------------------------------------------- tracking

    async def _track_some(self) -> int:
        async with self._track_lock:
            items: list[Item | Backfilled | CloseParked] = []
            while self._injected:
                items.append(self._injected.popleft())
            busy = self.priority is not None and self.priority.busy
            items.extend(
                self.source.take(min(self.chunk_size, BUSY_CHUNK) if busy else self.chunk_size)
            )
            if items:
                self._keep(self.track(items))
            return len(items)

    def inject(self, item: Backfilled | CloseParked) -> None:
        """Work for the tracking loop from outside AMI (a backfill's account)."""
        self._injected.append(item)
        self.source.wake.set()

    def track(self, items: Sequence[Item | Backfilled | CloseParked]) -> list[Stored]:
        tracker = self.tracker
        feed = tracker.feed
        outputs: list[Stored] = []
        for item in items:
            if type(item) is tuple:
                result = feed(item[0], item[1])
                if result:
                    outputs.extend(result)
            elif isinstance(item, EventsDropped):
                # what the calls up meanwhile lost, the CEL's account of the gap will tell
                tracker.events_lost(park=self.backfill is not None)
                if self._lost_since is None:
                    self._lost_since = item.since
            elif isinstance(item, ResyncMark):
                self._marks[item.id] = tracker.mark()
                # the gap began with the last event before the snapshot was asked for
                since = tracker.last_at or self.seen_until
                lost, self._lost_since = self._lost_since, None
                if lost is not None:  # events were dropped before that
                    since = lost if since is None else min(since, lost)
                self._since[item.id] = since
            elif isinstance(item, Resync):
                # without its mark, kill nothing: only channels known before the snapshot
                # was asked for may be declared gone
                known = self._marks.pop(item.id, frozenset())
                since = self._since.pop(item.id, tracker.last_at or self.seen_until)
                backfill = self.backfill
                outputs.extend(
                    tracker.resync(
                        item.live, item.at, known, seen_until=since, park=backfill is not None
                    )
                )
                if backfill is not None:
                    backfill.gap(since, item.at)
                    self._unaccounted.append(item.at if since is None else since)
                    outputs.append(GapsPending(min(self._unaccounted)))
            elif isinstance(item, Backfilled):
                outputs.extend(apply(tracker, item.account, item.finished))
                if item.gaps:  # stored after the calls of the gaps it accounts for
                    for _ in range(min(item.gaps, len(self._unaccounted))):
                        self._unaccounted.popleft()
                    outputs.append(GapsPending(min(self._unaccounted, default=None)))
            elif isinstance(item, CloseParked):
                for callid in item.callids:
                    outputs.extend(tracker.close_parked(callid))
        self.events += len(items)
        self._log_faults()
        return outputs

    def _log_faults(self) -> None:
        """A call the tracker could not follow was closed with what was known; say so."""
        for fault in self.tracker.take_faults():
            self.faults += 1
            log.error(
                "tracker_fault_call_closed",
                callid=fault.callid,
                ami_event=fault.event,  # `event` is the log line's own name (structlog)
                uniqueid=fault.uniqueid,
                error=fault.error,
                closed=list(fault.closed),
            )

    def _keep(self, outputs: list[Stored]) -> None:
        if not outputs:
            return
        self.pending.extend(outputs)
        self._queued.set()
        self._idle.clear()
        if len(self.pending) >= self.buffer_limit:
            self._make_room()

    def _make_room(self) -> None:
        """The buffer is full (the database has been away a long time): drop the oldest
        pop-ups first; if histories alone fill it, pause tracking."""
        target = self.buffer_limit * 9 // 10
        excess = len(self.pending) - target
        if excess > 0:
            kept: deque[Stored] = deque()
            dropped = 0
            for i, out in enumerate(self.pending):
                # the head being written now stays: the writer removes it once committed
                if i >= self._inflight and dropped < excess and isinstance(out, CallEvent):
                    dropped += 1
                else:
                    kept.append(out)
            if dropped:
                self.pending = kept
                self.dropped_events += dropped
                log.error(
                    "outage_buffer_full_dropping_events",
                    dropped=dropped,
                    total_dropped=self.dropped_events,
                )
        if len(self.pending) >= self.buffer_limit:
            self._room.clear()
            log.error("outage_buffer_full_tracking_paused", size=len(self.pending))

    # --------------------------------------------------------------- writing

    async def _write_some(self) -> None:
        async with self._write_lock:
            while self.pending:
                batch = list(islice(self.pending, self.batch_size))
                self._inflight = len(batch)
                try:
                    refused = await self._save(batch)
                finally:
                    self._inflight = 0
                for _ in batch:
                    self.pending.popleft()
                if not self._room.is_set() and len(self.pending) < self.buffer_limit:
                    self._room.set()
                    log.warning("outage_buffer_room_tracking_resumed")
                self._saved(batch, refused)
            self._queued.clear()
            self._idle.set()

    async def _save(self, batch: list[Stored]) -> set[str]:
        """Store the batch; return the calls that could not be stored for good, each logged
        and skipped: PostgreSQL refused their data (`refuses_data`), or building their rows
        failed (a bug). Anything else about the server raises, and the batch is kept and
        tried again (STORE_RETRY)."""
        refused: set[str] = set()
        try:
            await self.sink.save(batch)
        except Exception as exc:
            if not _refused(exc):
                raise
            # Keep every call the database can take instead of blocking every later call.
            log.error("store_batch_refused_splitting", error=repr(exc)[:300])
            refused = await self._save_per_call(batch)
        if not self.db_ok:
            self.db_ok = True
            log.warning("store_available_again", buffered=len(self.pending))
        return refused

    async def _save_per_call(self, batch: list[Stored]) -> set[str]:
        by_call: dict[str, list[Stored]] = {}
        for out in batch:
            by_call.setdefault(out.callid, []).append(out)
        refused: dict[str, BaseException] = {}
        # the gaps' state ("", no call) last: a gap is never marked accounted for before
        # the calls of its account are stored
        for callid, outputs in sorted(by_call.items(), key=lambda item: item[0] == ""):
            try:
                await self.sink.save(outputs)
            except Exception as exc:
                if not _refused(exc):
                    raise  # the whole batch again, later (the calls stored are upserts)
                refused[callid] = exc
        for callid, error in refused.items():  # counted once the batch is done with
            self.rejected += len(by_call[callid])
            log.error("store_refused_call", callid=callid, error=repr(error)[:300])
        return set(refused)

    def _saved(self, batch: list[Stored], refused: set[str]) -> None:
        self.batches += 1
        if refused:
            batch = [out for out in batch if out.callid not in refused]
        calls = [out for out in batch if not isinstance(out, GapsPending)]
        if self.on_outputs is not None:
            self.on_outputs(calls)
        for out in calls:
            if isinstance(out, CallEvent):
                log.info("call_event", **_fields(out, _EVENT_FIELDS))
            elif isinstance(out, CallParked):
                log.info("call_parked", **_fields(out, _PARKED_FIELDS))
            else:
                log.info("call_finished", **_fields(out, _RECORD_FIELDS))

    def _store_failed(self, error: BaseException) -> None:
        self.store_failures += 1
        if self.db_ok:
            self.db_ok = False
            log.error(
                "store_unavailable_buffering",
                error=repr(error),
                buffered=len(self.pending),
            )

    # ------------------------------------------------------------ callers

    async def drain(self) -> int:
        """Track everything buffered now and store it; return how many items were tracked.

        For shutdown and tests: waits while a batch is in flight, and until the database
        took all of it (callers bound it with a timeout)."""
        handled = 0
        while True:
            n = await self._track_some()
            handled += n
            if not n:
                break
        while self.pending:
            try:
                await self._write_some()
            except STORE_RETRY as exc:
                self._store_failed(exc)
                await asyncio.sleep(0.2)
        await self._idle.wait()
        return handled

    @property
    def buffered(self) -> int:
        return len(self.pending)


def _refused(exc: Exception) -> bool:
    """For good, for the calls of this data: PostgreSQL refused it, or the store could not
    even build its rows (a bug: one call's, not every later call's). Not an outage."""
    if isinstance(exc, asyncpg.PostgresError):
        return refuses_data(exc)
    return not isinstance(exc, STORE_RETRY)


_EVENT_FIELDS = ("callid", "type", "ext", "direction", "phone")
_RECORD_FIELDS = ("callid", "direction", "status", "ext", "duration", "closed_by")
_PARKED_FIELDS = ("callid", "direction", "phone")


def _fields(obj: Any, names: Sequence[str]) -> dict[str, Any]:
    return {n: getattr(obj, n) for n in names}
