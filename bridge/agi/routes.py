"""The dialplan's look-ups: ``agi://127.0.0.1:4573/contact`` and ``.../rating``.

Both read what Asterisk already sent (the ``agi_*`` environment and the arguments of
``AGI(url,arg1,arg2)``) and ask the channel only for what the environment lacks: the
call id is ``CHANNEL(linkedid)``, which the environment does not carry; the sample
dialplan passes it as an argument, saving that round trip on every ringing call.
Commands go one at a time: res_agi reads the socket through stdio and polls the fd, so a
second pipelined command could sit unread in its buffer until the next audio frame.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Coroutine
from functools import partial
from typing import Any

from structlog.typing import FilteringBoundLogger

from ..tracker.numbers import PhoneNormalizer
from .call_ids import is_call_id
from .contact import ContactClient, Lookup
from .directory import Directory
from .ports import KnownCall, RatingSink
from .session import AgiSession

__all__ = ["ContactRoute", "RatingRoute", "call_id", "caller_number"]

Spawn = Callable[[Coroutine[Any, Any, None]], "asyncio.Task[None]"]

_UNKNOWN = {"", "unknown", "anonymous", "<unknown>"}
# `PJSIP/101-0000002a`, `SIP/101-0a1b`, `Local/101@from-internal-00000001;1`, `101`
_CHANNEL_EXT = re.compile(r"(?:[A-Za-z0-9_]+/)?(?P<ext>[^/@;&-]+)")


def caller_number(session: AgiSession, normalizer: PhoneNormalizer) -> str:
    """The customer's number, E.164 digits (empty for anonymous callers)."""
    raw = session.env.get("agi_callerid", "").strip()
    return "" if raw.lower() in _UNKNOWN else normalizer.normalize(raw)


async def call_id(session: AgiSession, given: str = "") -> str:
    """The call id (SPEC 3): an explicit argument, else the channel's linkedid.

    Falls back to ``agi_uniqueid``: for the first channel of a call the two are equal.
    """
    callid = given.strip()
    if not callid:
        linkedid = await session.get_variable("CHANNEL(linkedid)")
        callid = (linkedid or "").strip() or session.env.get("agi_uniqueid", "")
    session.callid = callid
    return callid


def _arg(session: AgiSession, index: int) -> str:
    return session.args[index].strip() if len(session.args) > index else ""


class ContactRoute:
    """``AGI(agi://127.0.0.1:4573/contact[,DID[,CALLID]])``: name and responsible from the CRM.

    Sets ``CALLERID(name)`` and ``CRM_CONTACT_NAME`` when the CRM names the caller, and
    ``CRM_RESPONSIBLE`` when the responsible resolves to a known extension. On a timeout,
    an error or an open breaker nothing is set and the route returns by the deadline.
    """

    def __init__(
        self,
        client: ContactClient,
        directory: Directory,
        normalizer: PhoneNormalizer,
        timeout: float,
    ) -> None:
        self.client = client
        self.directory = directory
        self.normalizer = normalizer
        self.timeout = timeout
        # Every outcome from the start, so /metrics shows zeros rather than missing series.
        self.counts: dict[str, int] = dict.fromkeys(
            ("cache", "crm", "timeout", "error", "breaker", "disabled", "anonymous", "hangup"), 0
        )

    def _did(self, session: AgiSession) -> str:
        """The company number called: argument 1, else the dialed number, else the exten."""
        for raw in (
            _arg(session, 0),
            session.env.get("agi_dnid", ""),
            session.env.get("agi_extension", ""),
        ):
            raw = raw.strip()
            if raw.lower() not in _UNKNOWN and raw != "s" and any(c.isdigit() for c in raw):
                return self.normalizer.normalize(raw)
        return ""

    async def _lookup_unless_hangup(
        self, session: AgiSession, phone: str, did: str, callid: str
    ) -> Lookup | None:
        """The look-up, or None when Asterisk hung up first (no point waiting then)."""
        begun = self.client.begin(phone, did, callid)
        if isinstance(begun, Lookup):  # cache, breaker: no waiting, no tasks
            return begun
        remaining = session.started + self.timeout - asyncio.get_running_loop().time()
        lookup = asyncio.create_task(self.client.finish(begun, remaining))
        hangup = asyncio.create_task(session.wait_hangup())
        try:
            await asyncio.wait({lookup, hangup}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (lookup, hangup):
                if not task.done():
                    task.cancel()
            await asyncio.gather(lookup, hangup, return_exceptions=True)
        if not hangup.cancelled() and (error := hangup.exception()) is not None:
            raise error  # garbage from the peer while it should be quiet
        if lookup.cancelled():
            return None
        return lookup.result()

    async def __call__(self, session: AgiSession, log: FilteringBoundLogger) -> None:
        started = time.perf_counter()
        phone = caller_number(session, self.normalizer)
        did = self._did(session)
        callid = await call_id(session, _arg(session, 1))
        # The call's log line is written once the socket is closed: the dialplan waits for
        # the answer, not for a JSON rendering and a write to journald.
        report = partial(log.info, "agi_contact", callid=callid, phone=phone, diversion=did)
        if not phone:
            self._count("anonymous")
            session.after_close(partial(report, source="anonymous"))
            return
        result = None
        if not session.hung_up:  # else nobody is left to show a name to
            result = await self._lookup_unless_hangup(session, phone, did, callid)
        if result is None:
            self._count("hangup")
            ms = round((time.perf_counter() - started) * 1000, 1)
            session.after_close(partial(report, source="hangup", ms=ms))
            return
        contact = result.contact
        ext = self.directory.resolve(contact.responsible)
        assignments: list[tuple[str, str]] = []
        if contact.found:
            assignments += [("CALLERID(name)", contact.name), ("CRM_CONTACT_NAME", contact.name)]
        if ext:
            assignments.append(("CRM_RESPONSIBLE", ext))
        for name, value in assignments:
            if session.hung_up:
                break
            await session.set_variable(name, value)
        self._count(result.source)
        session.after_close(
            partial(
                report,
                source=result.source,
                found=contact.found,
                responsible=contact.responsible or None,
                ext=ext,
                ms=round((time.perf_counter() - started) * 1000, 1),
            )
        )

    def _count(self, source: str) -> None:
        self.counts[source] = self.counts.get(source, 0) + 1


class RatingRoute:
    """``AGI(agi://127.0.0.1:4573/rating,DIGIT[,EXT or CHANNEL[,CALLID]])``: a survey's digit.

    The digit comes from argument 1 or the channel variable ``CRM_RATING``; only 1-9
    counts. The call id must have the shape of an Asterisk uniqueid and belong to a call
    the bridge knows (``known``, asked for at most ``known_wait`` seconds): a call it
    does not know gets nothing stored and nothing sent. When ``known`` cannot tell (the
    database is down, or there is no ``known``) the rating goes to the sink unverified,
    and the sink checks before it writes. The sink gets ``rating_wait`` seconds before
    the channel is let go; the submission then finishes in the background (``spawn``
    keeps it alive).
    """

    def __init__(
        self,
        sink: RatingSink,
        directory: Directory,
        normalizer: PhoneNormalizer,
        spawn: Spawn,
        rating_wait: float = 1.0,
        *,
        known: KnownCall | None = None,
        known_wait: float = 0.5,
    ) -> None:
        self.sink = sink
        self.directory = directory
        self.normalizer = normalizer
        self.spawn = spawn
        self.rating_wait = rating_wait
        self.known = known
        self.known_wait = known_wait
        self.counts: dict[str, int] = dict.fromkeys(
            (
                "received",
                "invalid",
                "invalid_callid",
                "unknown_call",
                "unverified",
                "submitted",
                "errors",
            ),
            0,
        )

    def _ext(self, raw: str) -> str:
        """An extension from ``101`` or a channel name; only a known or numeric one."""
        match = _CHANNEL_EXT.match(raw.strip())
        ext = match["ext"] if match else ""
        return ext if ext.isdigit() or self.directory.resolve(ext) == ext else ""

    async def _is_known(self, log: FilteringBoundLogger, callid: str) -> bool | None:
        """The ``known`` verdict, None when there is none or it takes too long."""
        if self.known is None:
            return None
        try:
            async with asyncio.timeout(self.known_wait):
                return await self.known(callid)
        except TimeoutError:
            log.warning("agi_rating_call_check_slow", seconds=self.known_wait)
        except Exception:
            log.exception("agi_rating_call_check_failed")
        return None

    async def _submit(
        self,
        log: FilteringBoundLogger,
        callid: str,
        rating: int,
        phone: str,
        ext: str,
        verified: bool,
    ) -> None:
        try:
            await self.sink.submit_rating(
                callid=callid, rating=rating, phone=phone, ext=ext, verified=verified
            )
        except Exception:
            self.counts["errors"] += 1
            log.exception("rating_sink_failed")
        else:
            self.counts["submitted"] += 1

    async def __call__(self, session: AgiSession, log: FilteringBoundLogger) -> None:
        self.counts["received"] += 1
        digit = _arg(session, 0)
        if not digit:
            digit = (await session.get_variable("CRM_RATING") or "").strip()
        callid = await call_id(session, _arg(session, 2))
        if not is_call_id(callid):
            session.callid = ""  # not for log lines either
            self.counts["invalid_callid"] += 1
            log.warning("agi_rating_ignored", reason="not an Asterisk call id", value=callid[:40])
            return
        phone = caller_number(session, self.normalizer)
        ext = self._ext(_arg(session, 1))
        log = log.bind(callid=callid)
        if len(digit) != 1 or digit not in "123456789":
            self.counts["invalid"] += 1
            log.warning("agi_rating_ignored", value=digit[:20], reason="not a digit 1-9")
            return
        known = await self._is_known(log, callid)
        if known is False:
            self.counts["unknown_call"] += 1
            log.warning("agi_rating_ignored", rating=int(digit), reason="unknown call")
            return
        if known is None:
            self.counts["unverified"] += 1
        task = self.spawn(self._submit(log, callid, int(digit), phone, ext, known is True))
        await asyncio.wait({task}, timeout=self.rating_wait)
        session.after_close(
            partial(
                log.info,
                "agi_rating",
                rating=int(digit),
                phone=phone,
                ext=ext or None,
                verified=known is True,
                done=task.done(),
            )
        )
