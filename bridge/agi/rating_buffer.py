"""Ratings held in memory while PostgreSQL is away, written once it is back.

FastAGI keeps answering during a database outage (SPEC 5: the dialplan never waits on
the bridge's troubles), so a survey's digit given then must not be lost either.
:class:`BufferedRatingSink` wraps the durable sink: a submission that fails because the
database is unavailable (``DB_UNAVAILABLE``) is kept in a bounded queue and a background
task writes the queue, in order, with growing pauses, until it is empty. While the queue
is not empty new ratings join its end, so they are written in the order they came.

Written once: a write that failed may still have committed (the connection died during
COMMIT); writing it again is harmless because the outbox keys a rating on its call and
value (``rating:<n>``) and the call row update is idempotent.

Unverified ratings (nobody could tell whether the bridge knows the call: the database
was down) always go through the queue; before one is written, ``known`` is asked again:
True writes it, False drops it (``unknown_call``), None waits like an outage. Without a
``known`` it is handed on unverified, and the wrapped sink checks.

Bounded: at ``capacity`` the oldest waiting rating is dropped (``dropped``, logged), so
a long outage costs at most ``capacity`` small records of memory.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass

from ..backoff import Backoff
from ..observability.logs import get_logger
from ..store.errors import DB_UNAVAILABLE
from .ports import KnownCall, RatingSink

__all__ = ["BufferedRatingSink"]

log = get_logger("bridge.agi.rating_buffer")


@dataclass(slots=True)
class _Rating:
    callid: str
    rating: int
    phone: str
    ext: str
    verified: bool


class BufferedRatingSink:
    """A RatingSink around ``sink``; ``stats()`` has ``buffered``, ``flushed``, ``dropped``...

    ``attempt_timeout`` bounds one write (a database that hangs is an outage too);
    ``retry_first``/``retry_max`` are the pauses between tries while it is away.
    Call :meth:`close` at shutdown, after the AGI server stopped submitting.
    """

    def __init__(
        self,
        sink: RatingSink,
        known: KnownCall | None = None,
        *,
        capacity: int = 10_000,
        attempt_timeout: float = 5.0,
        retry_first: float = 0.1,
        retry_max: float = 5.0,
        unavailable: tuple[type[BaseException], ...] = DB_UNAVAILABLE,
    ) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.sink = sink
        self.known = known
        self.capacity = capacity
        self.attempt_timeout = attempt_timeout
        self.retry_first = retry_first
        self.retry_max = retry_max
        self.unavailable = unavailable
        self._queue: deque[_Rating] = deque()
        self._writing: _Rating | None = None  # the head, while the flusher writes it
        self._flusher: asyncio.Task[None] | None = None
        self.counts: dict[str, int] = dict.fromkeys(
            ("buffered", "flushed", "dropped", "unknown_call", "failed", "retries"), 0
        )

    def __len__(self) -> int:
        return len(self._queue)

    def stats(self) -> dict[str, float]:
        """Counters, and ``pending``: ratings waiting now (a gauge)."""
        return {**{k: float(v) for k, v in self.counts.items()}, "pending": float(len(self))}

    async def submit_rating(
        self, callid: str, rating: int, phone: str = "", ext: str = "", *, verified: bool = True
    ) -> None:
        """Write now if nothing waits and the database answers; else queue. Never raises
        for an outage (other errors of the wrapped sink propagate: they are bugs)."""
        item = _Rating(callid, rating, phone, ext, verified)
        if verified and not self._queue:
            try:
                async with asyncio.timeout(self.attempt_timeout):
                    await self.sink.submit_rating(callid, rating, phone, ext, verified=True)
                return
            except self.unavailable as exc:
                self._put(item, _describe(exc))
                return
        self._put(item)

    def _put(self, item: _Rating, error: str | None = None) -> None:
        if len(self._queue) >= self.capacity:
            self._drop_oldest()
        self._queue.append(item)
        self.counts["buffered"] += 1
        log.info(
            "rating_buffered",
            callid=item.callid,
            rating=item.rating,
            verified=item.verified,
            pending=len(self._queue),
            error=error,
        )
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name="rating-buffer")

    def _drop_oldest(self) -> None:
        # Not the one being written: it may already be in the database.
        index = 1 if self._queue[0] is self._writing and len(self._queue) > 1 else 0
        lost = self._queue[index]
        del self._queue[index]
        self.counts["dropped"] += 1
        log.error(
            "rating_buffer_full_dropped",
            callid=lost.callid,
            rating=lost.rating,
            capacity=self.capacity,
        )

    async def _flush(self) -> None:
        backoff = Backoff(self.retry_first, self.retry_max)
        while self._queue:
            item = self._queue[0]
            self._writing = item
            try:
                outcome = await self._write(item)
            finally:
                self._writing = None
            if outcome == "retry":
                self.counts["retries"] += 1
                await backoff.sleep()
                continue
            backoff.reset()
            if self._queue and self._queue[0] is item:
                self._queue.popleft()
            if outcome == "written":
                self.counts["flushed"] += 1
                log.info("rating_buffer_written", callid=item.callid, rating=item.rating)
        log.info("rating_buffer_flushed", flushed=self.counts["flushed"])

    async def _write(self, item: _Rating) -> str:
        """One try at the head: "written", "gone" (dropped, counted) or "retry"."""
        bound = log.bind(callid=item.callid, rating=item.rating)
        try:
            async with asyncio.timeout(self.attempt_timeout):
                if not item.verified and self.known is not None:
                    verdict = await self.known(item.callid)
                    if verdict is None:
                        return "retry"
                    if verdict is False:
                        self.counts["unknown_call"] += 1
                        bound.warning("rating_buffer_unknown_call")
                        return "gone"
                    item.verified = True
                await self.sink.submit_rating(
                    item.callid, item.rating, item.phone, item.ext, verified=item.verified
                )
        except self.unavailable:
            return "retry"
        except Exception:
            self.counts["failed"] += 1
            bound.exception("rating_buffer_write_failed")
            return "gone"
        return "written"

    async def close(self, grace: float = 2.0) -> None:
        """Give the queue ``grace`` seconds to drain, then stop; what is left is logged lost."""
        flusher = self._flusher
        if flusher is not None:
            await asyncio.wait({flusher}, timeout=grace)
            flusher.cancel()
            await asyncio.gather(flusher, return_exceptions=True)
        if self._queue:
            log.error(
                "rating_buffer_lost",
                count=len(self._queue),
                callids=[item.callid for item in list(self._queue)[:20]],
            )
            self._queue.clear()


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
