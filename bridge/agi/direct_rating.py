"""A RatingSink that POSTs ``rating`` straight to the primary CRM.

For a daemon without the outbox (and for tests): a few quick retries on what is worth
retrying (timeouts, connection errors, 429/5xx), then the rating is logged as lost. The
outbox-backed sink is the durable one; this one must never be mistaken for it.
``vpbx-legacy`` receivers get no ``rating`` command at all (SPEC section 4). Having no
database, it cannot check a call it is handed unverified: such ratings are not sent.
"""

from __future__ import annotations

import asyncio

import aiohttp

from ..config import Settings
from ..crm.profiles import sends
from ..observability.logs import get_logger
from .directory import Directory
from .wire import CrmHttpError, post_command

__all__ = ["DirectRatingSink"]

log = get_logger("bridge.agi.rating")

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class DirectRatingSink:
    """Satisfies :class:`bridge.agi.ports.RatingSink`."""

    def __init__(
        self,
        settings: Settings,
        session: aiohttp.ClientSession | None = None,
        *,
        attempts: int = 3,
        backoff: float = 0.5,
    ) -> None:
        self.crm = settings.crm
        self.directory = Directory(settings.pbx.users, region=settings.pbx.region)
        self._session = session
        self._own_session = session is None
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self._limits = aiohttp.ClientTimeout(
            total=self.crm.timeout, connect=self.crm.connect_timeout
        )
        self.counts: dict[str, int] = {"sent": 0, "skipped": 0, "failed": 0, "unverified": 0}

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:  # created lazily: needs a running loop
            self._session = aiohttp.ClientSession()
        return self._session

    async def submit_rating(
        self, callid: str, rating: int, phone: str = "", ext: str = "", *, verified: bool = True
    ) -> None:
        """Send now, retrying briefly; never raises for a CRM problem (it is logged)."""
        bound = log.bind(callid=callid, rating=rating)
        if not verified:
            self.counts["unverified"] += 1
            bound.warning("rating_not_sent", reason="call not verified")
            return
        if not self.crm.url or not sends(self.crm.profile, "rating"):
            self.counts["skipped"] += 1
            reason = "no [crm] url" if not self.crm.url else f"profile {self.crm.profile}"
            bound.info("rating_not_sent", reason=reason)
            return
        fields: dict[str, object] = {
            "cmd": "rating",
            "callid": callid,
            "rating": rating,
            "phone": phone,
            "user": self.directory.login(ext) if ext else "",
            "ext": ext,
        }
        error = ""
        for attempt in range(1, self.attempts + 1):
            try:
                await post_command(self._client(), self.crm, fields, self._limits)
            except CrmHttpError as exc:
                error = str(exc)
                if exc.status not in RETRY_STATUSES:
                    break
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                error = str(exc) or type(exc).__name__
            else:
                self.counts["sent"] += 1
                bound.info("rating_sent", attempts=attempt)
                return
            if attempt < self.attempts:
                await asyncio.sleep(self.backoff * attempt)
        self.counts["failed"] += 1
        bound.error("rating_lost", error=error, attempts=self.attempts)

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None
