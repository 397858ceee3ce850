"""The call pipeline: AMI buffer -> call tracker -> store, one transaction per batch.

Batching is what makes the database keep up: a busy PBX sends thousands of events a
second, most of which change nothing (VarSet, Newexten); the tracker turns a batch into a
handful of rows, written together. While Postgres is away the batch is kept and retried,
and new events wait in the ingest buffer (bounded): nothing already taken is lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Protocol

from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential

from .ami.ingest import Item, Resync, ResyncMark
from .store.errors import DB_UNAVAILABLE
from .tracker.model import CallEvent, Output
from .tracker.tracker import CallTracker

log = logging.getLogger("bridge.calls")


class Source(Protocol):
    wake: asyncio.Event

    def take(self, limit: int) -> list[Item]: ...


class Sink(Protocol):
    async def save(self, outputs: Sequence[Output]) -> None: ...


class CallPipeline:
    def __init__(
        self,
        source: Source,
        tracker: CallTracker,
        sink: Sink,
        *,
        batch_size: int = 5000,
        on_outputs: Callable[[Sequence[Output]], None] | None = None,
    ) -> None:
        self.source = source
        self.tracker = tracker
        self.sink = sink
        self.batch_size = batch_size
        self.on_outputs = on_outputs
        self.events = 0
        self.batches = 0
        self.store_failures = 0
        self._marks: dict[int, frozenset[str]] = {}
        self._retry_errors = DB_UNAVAILABLE
        self._lock = asyncio.Lock()

    async def run(self) -> None:
        while True:
            await self.source.wake.wait()
            await self.drain()

    async def drain(self) -> int:
        """Process everything buffered now; return how many items were handled.

        Callers other than `run` (shutdown, tests) wait here for a batch in flight."""
        handled = 0
        async with self._lock:
            while True:
                items = self.source.take(self.batch_size)
                if not items:
                    return handled
                handled += len(items)
                outputs = self.track(items)
                if outputs:
                    await self._save(outputs)

    def track(self, items: list[Item]) -> list[Output]:
        tracker = self.tracker
        feed = tracker.feed
        outputs: list[Output] = []
        for item in items:
            if type(item) is tuple:
                result = feed(item[0], item[1])
                if result:
                    outputs.extend(result)
            elif isinstance(item, ResyncMark):
                self._marks[item.id] = tracker.mark()
            elif isinstance(item, Resync):
                # without its mark, kill nothing: only channels known before the snapshot
                # was asked for may be declared gone
                known = self._marks.pop(item.id, frozenset())
                outputs.extend(tracker.resync(item.live, item.at, known))
        self.events += len(items)
        return outputs

    async def _save(self, outputs: list[Output]) -> None:
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(self._retry_errors),
            wait=wait_exponential(multiplier=0.2, max=10),
            before_sleep=self._store_failed,
            reraise=True,
        ):
            with attempt:
                await self.sink.save(outputs)
        self.batches += 1
        if self.on_outputs is not None:
            self.on_outputs(outputs)
        for out in outputs:
            if isinstance(out, CallEvent):
                fields = ("callid", "type", "ext", "direction", "phone")
                name = "call_event"
            else:
                fields = ("callid", "direction", "status", "ext", "duration", "closed_by")
                name = "call_finished"
            log.info(name, extra={f: getattr(out, f) for f in fields})

    def _store_failed(self, state: object) -> None:
        self.store_failures += 1
        outcome = getattr(state, "outcome", None)
        error = outcome.exception() if outcome is not None else None
        log.error("store_unavailable_retrying", extra={"error": repr(error)})
