"""The call tracker: AMI events in, CRM events and finished calls out.

Pure code: no I/O, no asyncio, no wall clock. Time comes from each event's `Timestamp`
header, or from the receipt time the caller passes when Asterisk sends none.

How it sees a call (SPEC sections 3-4), by Asterisk's semantics rather than one
version's event shapes:
- a call is a Linkedid (a channel's own Uniqueid until an event names its call, for old
  versions' Linkedid-less Newchannel); it ends when its last channel hangs up;
- channels are trunk (the carrier), extension (an employee's phone) or plumbing
  (Local pairs and the like, never a party of their own);
- a channel that no Dial or Originate created and that reaches Ring called in, whatever
  its Newchannel said (chan_sip creates it Down, chan_pjsip in Ring); one a DialBegin
  names, one born with another channel's Linkedid, or one that reaches Ringing was
  dialled;
- the *customer* is the trunk channel that called in, or the trunk channel an employee
  dialled out on;
- an employee's phone rings "with the customer" when the chain of dials that created
  it (through Local pairs) starts at the customer, or at a channel a transfer connected
  with the customer since; a consultation call from a colleague does not count until then;
- an employee talks with the customer when their channel is up and connected to the
  customer's through bridges and Local pairs: that covers queues, pickups, attended
  transfers and calls adopted after a reconnect alike, and "answered" means exactly that
  (an outside number that picks up and declines never was).

Where that lives: `topology` (channels, Local pairs, bridges, dial chains, customers),
`grammar` (each employee's event sequence), `record` (the finished call), `handlers`
(what each AMI event does to them), `faults` (one bad call closed, the others go on).
This class only wires them and keeps the public API.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import ParamSpec, TypeVar

from . import model
from .channels import ChannelClassifier
from .faults import close_faulty
from .grammar import Grammar
from .handlers import EventHandlers
from .model import OpenCall, Output, TrackerFault
from .numbers import PhoneNormalizer
from .state import UP, Call, Channel
from .topology import Event, Topology

_T = TypeVar("_T")
_P = ParamSpec("_P")
_FAULT_MEMORY = 1024  # faults kept until taken; older ones are dropped (faults_total counts)
_RESYNC, _CLOSE_ALL = "resync", "close_all"  # TrackerFault.event of their steps


def _uid_key(uid: str) -> tuple[float, str]:
    try:
        return (float(uid), uid)
    except ValueError:
        return (float("inf"), uid)


def _ids(ch: Channel) -> dict[str, str]:
    """A channel's ids, as an event naming it would carry them (for fault isolation)."""
    return {"Uniqueid": ch.uid, "Linkedid": ch.call.callid if ch.call is not None else ""}


class CallTracker:
    def __init__(
        self,
        trunks: list[str],
        extensions: list[str],
        region: str = "RU",
        main_number: str = "",
        users: Mapping[str, str] | None = None,
        groups: Mapping[str, str] | None = None,
    ) -> None:
        self.classifier = ChannelClassifier(trunks, extensions)
        self.numbers = PhoneNormalizer(region)
        self.main_number = self.numbers.normalize(main_number) if main_number else ""
        self.users = dict(users or {})
        self.groups = dict(groups or {})
        self._topology = Topology(self.classifier, self.numbers, self.main_number)
        self._grammar = Grammar(self.users)
        self._handlers = EventHandlers(self._topology, self._grammar, self.users, self.groups)
        self._dispatch = self._handlers.table()
        self._needed = frozenset(self._dispatch) - {
            "VarSet",
            "Newexten",
            "NewConnectedLine",
            "NewCallerid",
        }
        self._faults: deque[TrackerFault] = deque(maxlen=_FAULT_MEMORY)
        self.faults_total = 0
        self.events_seen = 0
        self.events_ignored = 0

    # ------------------------------------------------------------------ state

    @property
    def channels(self) -> dict[str, Channel]:
        """Live channels by Uniqueid."""
        return self._topology.channels

    @property
    def calls(self) -> dict[str, Call]:
        """Open calls by callid (Linkedid)."""
        return self._topology.calls

    @property
    def bridges(self) -> dict[str, set[Channel]]:
        return self._topology.bridges

    @property
    def open_calls(self) -> int:
        return len(self._topology.calls)

    def knows(self, callid: str) -> bool:
        """Whether `callid` is a call followed now or finished recently (a rating of it
        may still come)."""
        return callid in self._topology.calls or self._topology.finished_recently(callid)

    # ------------------------------------------------------------------ input

    def wants(self, name: str, text: str) -> bool:
        """Whether an event (by name, or its raw text) can change anything here.

        The AMI reader asks before parsing: VarSet (but the recording's file name),
        Newexten, DeviceStateChange, Cdr, RTCP... are most of the traffic and change no
        call. Events that merely show a channel's Linkedid again are left out too: the
        events that matter show it as well."""
        if name in self._needed:
            return True
        return name == "VarSet" and "MIXMONITOR_FILENAME" in text

    def feed(self, event: Event, received_at: float = 0.0) -> list[Output]:
        """Take one AMI event; return what it caused, in order.

        Never raises because of one call: if handling the event fails, the calls it
        concerns are closed (see `take_faults`) and the others are untouched."""
        self.events_seen += 1
        name = event.get("Event", "")
        handler = self._dispatch.get(name)
        if handler is None:
            self.events_ignored += 1
            return []
        stamp = event.get("Timestamp")
        at = received_at
        if stamp:
            try:
                at = float(stamp)
            except ValueError:
                pass
        out: list[Output] = []
        try:
            handler(event, at, out)
        except Exception as exc:
            self._isolate(name, event, at, exc, out)
        return out

    def take_faults(self) -> list[TrackerFault]:
        """The faults since the last call, oldest first, for the caller to log."""
        faults = list(self._faults)
        self._faults.clear()
        return faults

    def mark(self) -> frozenset[str]:
        """The channels known now: taken where a channel snapshot is asked for."""
        return frozenset(self._topology.channels)

    def restore(self, calls: Iterable[OpenCall]) -> None:
        """Take back the calls a previous run left open (their events were already sent).

        The next `resync` adopts their live channels without repeating INCOMING/ACCEPTED,
        and closes those that ended while no bridge was listening.
        """
        for oc in calls:
            if oc.callid in self._topology.calls:
                continue
            call = Call(oc.callid, oc.start)
            call.direction = oc.direction if oc.direction in (model.IN, model.OUT) else None
            call.phone, call.diversion, call.group = oc.phone, oc.diversion, oc.group
            call.answered = oc.answered
            call.seq = oc.last_seq
            call.restored = True
            for ext, last in oc.sessions.items():
                self._grammar.resume(call, ext, last)
            self._topology.calls[oc.callid] = call

    def resync(
        self, live: Iterable[Event], at: float, known: Collection[str] | None = None
    ) -> list[Output]:
        """Reconcile with `CoreShowChannel` events after a (re)connect.

        Channels we tracked (and that were `known` when the snapshot was asked for) that
        Asterisk no longer has ended while we were away: they are hung up now, which closes
        their calls. Channels we never saw are adopted; restored calls with no live channel
        are closed. A step failing for one call closes that call only.
        """
        out: list[Output] = []
        handlers, channels = self._handlers, self._topology.channels
        live_by_uid = {ev["Uniqueid"]: ev for ev in live if ev.get("Uniqueid")}
        for uid, ch in list(channels.items()):
            if uid not in live_by_uid and (known is None or uid in known):
                self._step(_RESYNC, _ids(ch), at, out, handlers.hangup, ch, at, None, out, "resync")
        adopted: list[Channel] = []
        for uid in sorted(live_by_uid, key=_uid_key):
            if uid in channels:
                continue
            ev = live_by_uid[uid]
            new = self._step(_RESYNC, ev, at, out, handlers.adopt, ev, at)
            if new is not None:
                adopted.append(new)
        for ch in adopted:
            if ch.ended is None:
                self._step(_RESYNC, _ids(ch), at, out, handlers.settle_adopted, ch)
        for uid, ev in live_by_uid.items():
            known_ch = channels.get(uid)
            if known_ch is not None and known_ch not in adopted:
                self._step(_RESYNC, ev, at, out, handlers.catch_up, known_ch, ev, at, out)
        for ch in list(channels.values()):
            if ch.ended is None and ch.state == UP and ch.bridge:
                self._step(_RESYNC, _ids(ch), at, out, handlers.connect, ch, at, out)
        for ch in adopted:
            self._step(_RESYNC, _ids(ch), at, out, handlers.report_adopted, ch, at, out)
        calls = self._topology.calls
        for call in list(calls.values()):
            if call.restored and calls.get(call.callid) is call:
                ids = {"Linkedid": call.callid}
                self._step(_RESYNC, ids, at, out, handlers.close_restored, call, at, out)
        return out

    def close_all(self, at: float) -> list[Output]:
        """Close every open call (shutdown of a replay, or a PBX restart)."""
        out: list[Output] = []
        handlers = self._handlers
        for ch in list(self._topology.channels.values()):
            self._step(_CLOSE_ALL, _ids(ch), at, out, handlers.hangup, ch, at, None, out, "resync")
        return out

    # ----------------------------------------------------------------- faults

    def _step(
        self,
        name: str,
        event: Mapping[str, str],
        at: float,
        out: list[Output],
        step: Callable[_P, _T],
        *args: _P.args,
        **kwargs: _P.kwargs,
    ) -> _T | None:
        """One step of a resync or close_all, isolated like an event naming `event`'s ids."""
        try:
            return step(*args, **kwargs)
        except Exception as exc:
            self._isolate(name, event, at, exc, out)
            return None

    def _isolate(
        self, name: str, event: Mapping[str, str], at: float, exc: Exception, out: list[Output]
    ) -> None:
        error = repr(exc)
        try:
            closed = close_faulty(self._handlers, event, at, out)
        except Exception as again:  # the isolation itself failed: say so, go on
            closed = ()
            error = f"{error}; while closing the call: {again!r}"
        linkedid = event.get("Linkedid", "")
        callid = linkedid if linkedid in closed or not closed else closed[0]
        self.faults_total += 1
        self._faults.append(
            TrackerFault(
                callid=callid,
                event=name,
                error=error,
                uniqueid=event.get("Uniqueid", ""),
                at=at,
                closed=closed,
            )
        )
