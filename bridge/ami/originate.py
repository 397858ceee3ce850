"""Click-to-call: one AMI `Originate` (SPEC sections 3 and 6; the `Dialer` of the APIs).

What is sent (Asterisk's main/manager.c, action_originate), e.g.:

    Action: Originate
    Channel: PJSIP/1001                     [api] click_to_call_channel, "{tech}/{ext}"
    Context: from-internal                  [api] click_to_call_context
    Exten: 79101234567                      the customer, E.164 digits without +
    Priority: 1                             [api] click_to_call_priority
    CallerID: "79101234567" <79101234567>   the employee's phone shows whom it will call
    Timeout: 30000                          ms the employee's phones ring
    Async: true                             Asterisk answers at once ("successfully queued")
    ChannelId: 1795346586.0001234567        the first channel's Uniqueid: the call's Linkedid
    Variable: CRM_CALL_ID=1795346586.0001234567
    Variable: CRM_CLID=74957654321          only when the client asked for a caller ID

Asterisk rings the employee's phone first; when it answers, that channel runs the context
with the customer's number, i.e. the employee's phone dials the customer: the tracker
sees an ordinary outbound call (`out`, OUTGOING for the employee) whose callid is the
ChannelId given here, so the id is returned before anything rang.

To ring every device of an employee (several contacts registered to one PJSIP endpoint:
desk phone, softphone, mobile app), point `click_to_call_channel` at a Local channel
into a context that dials them all, e.g. "Local/{ext}@crm-bridge-ring-all" with

    [crm-bridge-ring-all]
    exten => _X.,1,Dial(${PJSIP_DIAL_CONTACTS(${EXTEN})})

(`PJSIP/<ext>` alone rings one contact of the endpoint). The Local pair is plumbing to
the tracker; the pre-assigned id names its first half, so it is still the call's id.

Never sent twice: panoramisk re-sends an unanswered action after a reconnect (a customer
rung twice); the ingest fails unanswered actions when the link drops instead, and an
Originate is only ever sent by this one call.
"""

from __future__ import annotations

import itertools
import re
import secrets
import time
from collections.abc import Callable
from typing import Any

import phonenumbers

from ..api.services import DialError
from ..config import ApiSettings
from ..observability.logs import get_logger
from ..tracker.numbers import PhoneNormalizer
from .ingest import AmiIngest

log = get_logger("bridge.click_to_call")

ANSWER_WITHIN = 10.0  # seconds Asterisk has to queue the Originate
_PHONE = re.compile(r"\+?[\d\s().-]{1,40}")  # how people write numbers, nothing else
_EXTENSION = re.compile(r"[A-Za-z0-9_.-]+")  # nothing a dial string reads as a separator
_counter = itertools.count()


def new_callid(now: float) -> str:
    """An id shaped like Asterisk's own (`<epoch>.<n>`) that is never one of them (its
    counter part starts with 0, Asterisk's never does) and sorts before the ids Asterisk
    gives the call's later channels in the same second."""
    return f"{int(now)}.0{next(_counter) % 1000:03d}{secrets.randbelow(10**6):06d}"


class Dialable:
    """A customer's number as Asterisk dials it (E.164 digits), or None when phonenumbers
    does not take it for a possible number."""

    def __init__(self, region: str) -> None:
        self.normalizer = PhoneNormalizer(region)

    def __call__(self, raw: str) -> str | None:
        text = raw.strip()
        if not _PHONE.fullmatch(text):
            return None
        digits = self.normalizer.normalize(text)
        try:
            parsed = phonenumbers.parse("+" + digits, None)
        except phonenumbers.NumberParseException:
            return None
        return digits if phonenumbers.is_possible_number(parsed) else None


class AmiDialer:
    """The `Dialer` of bridge.api.services, over this bridge's AMI link.

    `ami()`: the link while this bridge leads and is logged in, else None (a standby or a
    link that is down answers 503). `employee(key)`: the directory's look-up of a login or
    extension (bridge.directory_sync.DirectoryView.employee)."""

    def __init__(
        self,
        ami: Callable[[], AmiIngest | None],
        employee: Callable[[str], Any],
        api: ApiSettings,
        region: str,
        answer_within: float = ANSWER_WITHIN,
    ) -> None:
        self.ami = ami
        self.employee = employee
        self.api = api
        self.dialable = Dialable(region)
        self.answer_within = answer_within

    async def call(self, employee: str, number: str, clid: str | None = None) -> str:
        who = self.employee(employee or "")
        if who is None or not _EXTENSION.fullmatch(who.ext):
            raise DialError(400, f"unknown employee: {employee!r} is no login or extension")
        customer = self.dialable(number or "")
        if customer is None:
            raise DialError(400, f"not a phone number: {number!r}")
        caller_id = self.dialable(clid) if clid else ""
        if caller_id is None:
            raise DialError(400, f"clid is not a phone number: {clid!r}")
        ingest = self.ami()
        if ingest is None or not ingest.connected:
            raise DialError(503, "Asterisk is not reachable from this bridge (AMI down or standby)")
        callid = new_callid(time.time())
        action = self.originate(who.tech, who.ext, customer, callid, caller_id)
        reply = await self._send(ingest, action)
        if not getattr(reply, "success", False):
            message = str(reply.get("Message", "")) or "Originate refused"
            status = 400 if "extension does not exist" in message.lower() else 502
            log.warning(
                "click_to_call_refused",
                callid=callid,
                ext=who.ext,
                phone=customer,
                answer=message,
            )
            raise DialError(status, f"Asterisk refused the call: {message}")
        log.info(
            "click_to_call",
            callid=callid,
            user=who.login,
            ext=who.ext,
            phone=customer,
        )
        return callid

    def originate(
        self, tech: str, ext: str, customer: str, callid: str, caller_id: str = ""
    ) -> dict[str, Any]:
        api = self.api
        variables = [f"CRM_CALL_ID={callid}"] + ([f"CRM_CLID={caller_id}"] if caller_id else [])
        return {
            "Action": "Originate",
            "Channel": api.click_to_call_channel.format(ext=ext, tech=tech),
            "Context": api.click_to_call_context,
            "Exten": customer,
            "Priority": str(api.click_to_call_priority),
            "CallerID": f'"{customer}" <{customer}>',
            "Timeout": str(int(api.click_to_call_ring_time * 1000)),
            "Async": "true",
            "ChannelId": callid,
            "Variable": variables,
        }

    async def _send(self, ingest: AmiIngest, action: dict[str, Any]) -> Any:
        """Asterisk's first answer: panoramisk would take an async Originate's
        "successfully queued" for the start of a list and wait for the OriginateResponse,
        i.e. until the employee answers (`as_list=False` stops that)."""
        if not ingest.connected:
            raise DialError(503, "Asterisk is not reachable from this bridge (AMI down)")
        try:
            return await ingest.send_action(action, self.answer_within, as_list=False)
        except ConnectionError:
            raise DialError(
                503,
                "the AMI link dropped before Asterisk answered; the call may or may not "
                "have been placed and is not sent again",
            ) from None
        except TimeoutError:
            raise DialError(
                503, "Asterisk did not answer the Originate in time; it is not sent again"
            ) from None
