"""Each employee's CRM events within a customer's call (SPEC section 4).

Per call and employee: `(INCOMING | OUTGOING) then (CANCELLED | ACCEPTED [TRANSFERRED]
COMPLETED)`, repeated if the employee is reached again. A `Session` is where one employee
stands in that sequence; every step here emits the matching `CallEvent` into the output
list it is given, so a sequence is only ever moved by emitting its next event.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from . import model
from .model import CallEvent, Output
from .state import Call, Channel, Session

if TYPE_CHECKING:
    from .settle import Story

_REOPENED = (model.INCOMING, model.OUTGOING, model.ACCEPTED, model.TRANSFERRED)
_ACCEPTED = (model.ACCEPTED, model.TRANSFERRED)


class Grammar:
    def __init__(self, users: Mapping[str, str]) -> None:
        self.users = users  # extension -> directory login

    def session(self, call: Call, ext: str) -> Session:
        sess = call.sessions.get(ext)
        if sess is None:
            sess = call.sessions[ext] = Session(call, ext)
        return sess

    def resume(self, call: Call, ext: str, last: str) -> None:
        """Take back a sequence a previous run left open after its `last` event."""
        if last not in _REOPENED:
            return
        sess = self.session(call, ext)
        sess.open = True
        sess.accepted = sess.talking = last in _ACCEPTED
        sess.transferred = last == model.TRANSFERRED
        if sess.accepted:
            call.last_talker = ext

    def ring(self, call: Call, ch: Channel, at: float, out: list[Output]) -> None:
        """The employee's phone rings with the customer of `call`."""
        call.last_rung = ch.ext
        sess = self._join(call, ch)
        if not sess.open:
            kind = model.INCOMING
            if call.direction == model.OUT and call.placer in ("", ch.ext):
                # the customer was called first (a reverse click-to-call): the
                # employee rung now is the one placing the call
                call.placer = ch.ext
                kind = model.OUTGOING
            self._open(sess, ch, kind, at, out)

    def dial_out(self, call: Call, placer: Channel, at: float, out: list[Output]) -> None:
        """The employee's phone dials the customer."""
        call.placer = placer.ext
        sess = self.session(call, placer.ext)
        if not sess.open:
            self._open(sess, placer, model.OUTGOING, at, out)
        sess.legs.add(placer)
        if sess not in placer.sessions:
            placer.sessions.append(sess)

    def accept(
        self, call: Call, ch: Channel, at: float, out: list[Output], talking: bool = True
    ) -> None:
        """The employee answered the customer of `call` (or joined them later); `talking`:
        they are connected with the customer now, which is what makes a call answered
        and its employee the one who talked last (SPEC section 4). A phone that answers
        and loses a queue's race to another member never talks with the customer."""
        sess = self._join(call, ch)
        if not (sess.accepted and sess.open):
            if not sess.open:
                first = (
                    model.OUTGOING
                    if call.direction == model.OUT and ch.ext == call.placer
                    else model.INCOMING
                )
                self._open(sess, ch, first, at, out)
            self._emit(call, model.ACCEPTED, ch.ext, at, ch, out)
            sess.accepted = True
            sess.accepted_at = at
        if talking and not sess.talking:
            sess.talking = True
            call.last_talker = ch.ext
            if call.answered is None:
                # the conversation counts from the phone's answer, as Asterisk's CDR
                # and a carrier count it, not from the bridge a moment later
                call.answered = sess.accepted_at

    def transferred(self, ch: Channel, at: float, second_callid: str, out: list[Output]) -> None:
        """The employee on `ch` transferred the call(s) they talk in."""
        for sess in ch.sessions:
            if sess.open and sess.accepted and not sess.transferred:
                self._emit(sess.call, model.TRANSFERRED, sess.ext, at, ch, out, second_callid)
                sess.transferred = True

    def leave(self, ch: Channel, at: float, out: list[Output]) -> None:
        """The channel hung up: the sequences it carried alone are over."""
        for sess in ch.sessions:
            if sess.open:
                self.leave_session(sess, ch, at, out)
        ch.sessions = []

    def leave_session(self, sess: Session, ch: Channel, at: float, out: list[Output]) -> None:
        """The call left this channel (hang-up, or the channel moved to another call)."""
        sess.legs.discard(ch)
        if sess.open and not sess.legs:
            self.close(sess, at, ch, out)

    def close(self, sess: Session, at: float, ch: Channel | None, out: list[Output]) -> None:
        kind = model.COMPLETED if sess.accepted else model.CANCELLED
        self._emit(sess.call, kind, sess.ext, at, ch, out)
        sess.open = False
        sess.accepted = False
        sess.talking = False

    def settle(self, sess: Session, story: Story | None, end: float, out: list[Output]) -> None:
        """Close a sequence the way Asterisk's own account of the call tells it (the
        bridge was away): answered then, transferred then, left then."""
        call = sess.call
        if story is not None and story.accepted is not None and not sess.accepted:
            self._emit(call, model.ACCEPTED, sess.ext, story.accepted, None, out)
            sess.accepted = True
        if story is not None and story.transferred is not None:
            if sess.accepted and not sess.transferred:
                second = story.second_callid
                self._emit(call, model.TRANSFERRED, sess.ext, story.transferred, None, out, second)
                sess.transferred = True
        closed = story.closed if story is not None and story.closed is not None else end
        self.close(sess, closed, None, out)

    def close_all(self, call: Call, at: float, out: list[Output]) -> None:
        """The call ends: every sequence still open is closed."""
        for sess in call.sessions.values():
            if sess.open:
                self.close(sess, at, None, out)

    def _join(self, call: Call, ch: Channel) -> Session:
        sess = self.session(call, ch.ext)
        sess.legs.add(ch)
        if sess not in ch.sessions:
            ch.sessions.append(sess)
        return sess

    def _open(self, sess: Session, ch: Channel, kind: str, at: float, out: list[Output]) -> None:
        self._emit(sess.call, kind, sess.ext, at, ch, out)
        sess.open = True
        sess.accepted = False
        sess.talking = False
        sess.transferred = False

    def _emit(
        self,
        call: Call,
        kind: str,
        ext: str,
        at: float,
        ch: Channel | None,
        out: list[Output],
        second: str = "",
    ) -> None:
        call.seq += 1
        out.append(
            CallEvent(
                callid=call.callid,
                seq=call.seq,
                type=kind,
                at=at,
                direction=call.direction or model.INTERNAL,
                phone=call.phone,
                diversion=call.diversion,
                ext=ext,
                user=self.users.get(ext, ext),
                group=call.group,
                second_callid=second,
                channel=ch.name if ch else "",
            )
        )
