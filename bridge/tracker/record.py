"""The `history` of a finished call (SPEC section 4): status, employee, duration, wait,
legs, from what the call's bookkeeping knows when its last channel is gone."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from . import model
from .model import CallFacts, CallParked, CallRecord, Leg
from .state import Call, Kind
from .status import MISSED, inbound_status, outbound_status

RESYNC = "resync"


def facts_of(call: Call) -> CallFacts:
    """What a restarted bridge needs to go on with `call` (see `CallTracker.restore`)."""
    return CallFacts(
        start=call.start,
        answered=call.answered,
        offer=tuple(call.offer),
        offer_open=call.offer_open,
        last_talker=call.last_talker,
        last_rung=call.last_rung,
        placer=call.placer,
        recording=call.recording,
        dial_status=call.dial_status,
        cause=call.cause,
        phone_name=call.phone_name,
    )


def parked_output(call: Call) -> CallParked:
    """The open call a parked one is stored as, until its account comes."""
    return CallParked(
        callid=call.callid,
        direction=call.direction or model.INTERNAL,
        phone=call.phone,
        diversion=call.diversion,
        group=call.group,
        facts=facts_of(call),
    )


def _inbound(call: Call) -> tuple[str, str]:
    """Answered: who talked with the customer last (or the phone rung last, when an outside
    number it was forwarded to answered); unanswered: who it was offered to first."""
    answered = call.answered is not None
    if call.last_talker:
        ext = call.last_talker
    elif answered:
        ext = call.last_rung
    else:
        ext = call.offer[0] if len(call.offer) == 1 else ""
    return inbound_status(answered), ext


def _outbound(call: Call) -> tuple[str, str]:
    status = outbound_status(call.answered is not None, call.dial_status, call.cause)
    return status, call.last_talker or call.placer


def _outbound_unseen(call: Call) -> tuple[str, str]:
    """An outbound call whose end the bridge did not see: no dial status or cause means
    its outcome is unknown, and not that the employee gave up (`Cancel`): the customer's
    side did not answer while the bridge was looking."""
    status, ext = _outbound(call)
    if call.answered is None and not call.dial_status and call.cause is None:
        status = MISSED
    return status, ext


def _internal(call: Call) -> tuple[str, str]:
    return inbound_status(_internal_answer(call) is not None), call.placer


def _internal_answer(call: Call) -> float | None:
    """Between employees there is no customer to be connected with: an internal call is
    answered when a phone other than the caller's answers it."""
    if call.answered is not None:
        return call.answered
    return min(
        (
            ch.answered
            for ch in call.legs
            if ch.kind is Kind.EXTENSION and ch.answered is not None and ch.ext != call.placer
        ),
        default=None,
    )


_STATUS_AND_EXT: dict[str, Callable[[Call], tuple[str, str]]] = {
    model.IN: _inbound,
    model.OUT: _outbound,
    model.INTERNAL: _internal,
}


def build_record(call: Call, at: float, closed_by: str, users: Mapping[str, str]) -> CallRecord:
    """The record of `call`, ended at `at` (unless its customer hung up before)."""
    direction = call.direction or model.INTERNAL
    if closed_by == RESYNC and direction == model.OUT:
        status, ext = _outbound_unseen(call)
    else:
        status, ext = _STATUS_AND_EXT[direction](call)
    answered = _internal_answer(call) if direction == model.INTERNAL else call.answered
    end = max(call.customer_end if call.customer_end is not None else at, call.start)
    duration = max(0, round(end - answered)) if answered is not None else 0
    wait = max(0, round((answered if answered is not None else end) - call.start))
    return CallRecord(
        callid=call.callid,
        direction=direction,
        status=status,
        phone=call.phone,
        diversion=call.diversion,
        ext=ext,
        user=users.get(ext, ext) if ext else "",
        group=call.group,
        start=call.start,
        answered=answered,
        end=end,
        duration=duration,
        wait=wait,
        recording=call.recording,
        phone_name=call.phone_name,
        closed_by=closed_by,
        legs=[
            Leg(
                uniqueid=ch.uid,
                channel=ch.name,
                kind=ch.kind.value,
                ext=ch.ext,
                started=ch.created,
                answered=ch.answered,
                ended=ch.ended,
                cause=ch.cause,
                dial_status=ch.dial_status,
            )
            for ch in call.legs
        ],
    )


def bare_record(call: Call, at: float, closed_by: str, users: Mapping[str, str]) -> CallRecord:
    """What can be said of a call whose full record could not be built (a tracker fault):
    plain facts, no legs, and the status an inbound call would have."""
    answered = call.answered
    ext = call.last_talker or call.placer
    return CallRecord(
        callid=call.callid,
        direction=call.direction or model.INTERNAL,
        status=inbound_status(answered is not None),
        phone=call.phone,
        diversion=call.diversion,
        ext=ext,
        user=users.get(ext, ext),
        group=call.group,
        start=call.start,
        answered=answered,
        end=at,
        duration=max(0, round(at - answered)) if answered is not None else 0,
        wait=max(0, round((answered if answered is not None else at) - call.start)),
        recording=call.recording,
        phone_name=call.phone_name,
        closed_by=closed_by,
    )
