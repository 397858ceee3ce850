"""The CRM ``contact`` look-up: cache first, a hard deadline, a circuit breaker.

A ringing call waits for this, so the rules are about time, not completeness:
- a cached answer returns at once; when it is older than ``refresh_after`` (a tenth of
  the TTL by default) a background request refreshes it, one in flight per number, so a
  renamed customer shows up on the next call without every call costing a CRM request;
- otherwise one request goes out and the call waits for it until ``contact_timeout``
  after the AGI connection opened; the request itself may run twice that long and still
  land in the cache for the next call;
- after ``breaker_failures`` failures in a row no request goes out for ``breaker_reset``
  seconds, then one trial request decides.
Failures never raise to the caller: it gets NO_CONTACT and a ``source`` saying why.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Literal

import aiohttp

from ..config import CrmSettings
from ..observability.logs import get_logger
from .answer import NO_CONTACT, Contact, read_contact_answer
from .breaker import CircuitBreaker
from .cache import TtlCache
from .wire import CrmHttpError, post_command

__all__ = ["ContactClient", "Lookup", "Source"]

log = get_logger("bridge.agi.contact")

Source = Literal["cache", "crm", "timeout", "error", "breaker", "disabled"]
Key = tuple[str, str]
ANSWER_PREVIEW = 60  # bytes of a rejected answer quoted in its log line


class _Unavailable(Exception):
    """The CRM did not answer usefully (already logged and counted)."""


@dataclass(frozen=True, slots=True)
class Lookup:
    """A look-up's outcome: the contact (maybe NO_CONTACT) and where it came from."""

    contact: Contact
    source: Source


class ContactClient:
    """One per primary CRM; shares the daemon's aiohttp session."""

    def __init__(
        self,
        crm: CrmSettings,
        session: aiohttp.ClientSession,
        *,
        cache_ttl: float,
        breaker: CircuitBreaker,
        refresh_after: float | None = None,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.crm = crm
        self.session = session
        self.breaker = breaker
        self.cache: TtlCache[Key, Contact] = TtlCache(cache_ttl, max_entries, clock)
        self.refresh_after = cache_ttl / 10 if refresh_after is None else refresh_after
        # The request may outlive the call's wait (twice the deadline): a late answer still
        # fills the cache for the next call, and the give-ups of a burst of ringing calls do
        # not coincide with the failures of their requests.
        self._limits = aiohttp.ClientTimeout(
            total=2 * crm.contact_timeout, connect=min(crm.connect_timeout, crm.contact_timeout)
        )
        self._inflight: dict[Key, asyncio.Task[Contact]] = {}
        self.counts: dict[str, int] = {
            "lookups": 0,
            "cache_hits": 0,
            "crm_requests": 0,
            "crm_failures": 0,
            "timeouts": 0,
            "breaker_skips": 0,
            "refreshes": 0,
            "rejected_answers": 0,
        }

    def _key(self, phone: str, diversion: str) -> Key:
        # vpbx-legacy does not send the DID, so its answers cannot depend on it.
        return (phone, "" if self.crm.profile == "vpbx-legacy" else diversion)

    async def _fetch(self, key: Key, phone: str, diversion: str, callid: str) -> Contact:
        fields: dict[str, object] = {
            "cmd": "contact",
            "phone": phone,
            "callid": callid,
            "diversion": diversion,
        }
        self.counts["crm_requests"] += 1
        started = time.perf_counter()
        try:
            body = await post_command(self.session, self.crm, fields, self._limits)
        except asyncio.CancelledError:
            self.breaker.record_failure()
            raise
        except (aiohttp.ClientError, TimeoutError, CrmHttpError, OSError) as exc:
            self.counts["crm_failures"] += 1
            self.breaker.record_failure()
            log.warning(
                "crm_contact_failed",
                callid=callid,
                phone=phone,
                breaker=self.breaker.state,
                error=str(exc) or type(exc).__name__,
                ms=round((time.perf_counter() - started) * 1000, 1),
            )
            raise _Unavailable from exc
        self.breaker.record_success()
        answer = read_contact_answer(body)
        if answer.rejected:
            self.counts["rejected_answers"] += 1
            log.warning(
                "crm_contact_answer_rejected",
                callid=callid,
                phone=phone,
                reason=answer.rejected,
                bytes=len(body),
                start=body[:ANSWER_PREVIEW].decode("utf-8", errors="replace"),
            )
        # A rejected answer is cached as "no contact" too: the CRM is up, asking it again
        # on every ring would only get the same answer.
        self.cache.put(key, answer.contact)
        return answer.contact

    def _start(self, key: Key, phone: str, diversion: str, callid: str) -> asyncio.Task[Contact]:
        """The request for ``key`` in flight, or a new one (the caller asked the breaker)."""
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.create_task(self._fetch(key, phone, diversion, callid))
            self._inflight[key] = task
            task.add_done_callback(partial(self._finished, key))
        return task

    def _finished(self, key: Key, task: asyncio.Task[Contact]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]
        if not task.cancelled():
            task.exception()  # retrieved: a background refresh's failure is already logged

    def begin(self, phone: str, diversion: str, callid: str) -> Lookup | asyncio.Task[Contact]:
        """The outcome if it is known without waiting (cache, breaker), else the request.

        A stale cache hit also starts a background refresh. Split from :meth:`finish` so the
        route answers a cached call without creating a single task of its own.
        """
        self.counts["lookups"] += 1
        if not self.crm.url or not phone:
            return Lookup(NO_CONTACT, "disabled")
        key = self._key(phone, diversion)
        found = self.cache.get_with_age(key)
        if found is not None:
            cached, age = found
            self.counts["cache_hits"] += 1
            if age >= self.refresh_after and key not in self._inflight and self.breaker.allow():
                self.counts["refreshes"] += 1
                self._start(key, phone, diversion, callid)
            return Lookup(cached, "cache")
        if key not in self._inflight and not self.breaker.allow():
            self.counts["breaker_skips"] += 1
            return Lookup(NO_CONTACT, "breaker")
        return self._start(key, phone, diversion, callid)

    async def finish(self, request: asyncio.Task[Contact], within: float) -> Lookup:
        """Wait at most ``within`` seconds for a request :meth:`begin` started (it outlives us)."""
        try:
            async with asyncio.timeout(max(within, 0.0)):
                contact = await asyncio.shield(request)
        except TimeoutError:
            self.counts["timeouts"] += 1
            return Lookup(NO_CONTACT, "timeout")
        except _Unavailable:
            return Lookup(NO_CONTACT, "error")
        return Lookup(contact, "crm")

    async def lookup(self, phone: str, diversion: str, callid: str, within: float) -> Lookup:
        """The contact for a ringing call, within ``within`` seconds whatever the CRM does."""
        started = self.begin(phone, diversion, callid)
        return started if isinstance(started, Lookup) else await self.finish(started, within)

    async def close(self) -> None:
        """Cancel requests still in flight (shutdown)."""
        tasks = list(self._inflight.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def stats(self) -> dict[str, float]:
        return {
            **{key: float(value) for key, value in self.counts.items()},
            "cache_entries": float(len(self.cache)),
            "inflight": float(len(self._inflight)),
            "breaker_open": 0.0 if self.breaker.state == "closed" else 1.0,
            "breaker_opened": float(self.breaker.opened),
        }
