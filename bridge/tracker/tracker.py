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
from dataclasses import dataclass
from typing import ParamSpec, TypeVar

from . import model
from .channels import ChannelClassifier
from .faults import close_faulty, close_parked_faulty
from .grammar import Grammar
from .handlers import EventHandlers
from .ids import uid_order
from .model import CallEvent, CallFacts, CallRecord, OpenCall, Output, TrackerFault
from .numbers import PhoneNormalizer
from .record import RESYNC, facts_of, parked_output
from .settle import BACKFILL, settle_call
from .stamps import stamp_of
from .state import UP, Call, Channel
from .topology import Event, Topology

_T = TypeVar("_T")
_P = ParamSpec("_P")
_FAULT_MEMORY = 1024  # faults kept until taken; older ones are dropped (faults_total counts)
_RESYNC, _CLOSE_ALL = "resync", "close_all"  # TrackerFault.event of their steps


@dataclass(slots=True)
class Parked:
    call: Call
    until: float  # the last moment the bridge knew it alive, or its end if seen
    seen_end: bool  # whether the bridge saw it end (it was up across a gap)


def _take_facts(call: Call, facts: CallFacts) -> None:
    if facts.start:
        call.start = facts.start
    if facts.answered is not None:
        call.answered = facts.answered
    call.offer, call.offer_open = list(facts.offer), facts.offer_open
    call.last_talker, call.last_rung = facts.last_talker, facts.last_rung
    call.placer, call.recording = facts.placer, facts.recording
    call.dial_status, call.cause = facts.dial_status, facts.cause
    call.phone_name = call.phone_name or facts.phone_name


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
        self._config = (list(trunks), list(extensions), region, main_number)
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
        self.last_at = 0.0  # the time of the newest event taken (Asterisk's clock)
        # calls whose end is to be told by Asterisk's own account of them (`settle`, from
        # the CEL) or, failing that, by `close_parked` (see `resync`)
        self._parked: dict[str, Parked] = {}
        self._handlers.hold = self._hold

    def sibling(self) -> CallTracker:
        """A fresh tracker configured as this one, naming employees and groups from the
        same maps (a directory update reaches both): for calls rebuilt from the CEL."""
        twin = CallTracker(*self._config)
        twin.users, twin.groups = self.users, self.groups
        twin._grammar.users = self.users
        handlers = twin._handlers
        handlers.users, handlers.groups = self.users, self.groups
        return twin

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

    def follows(self, callid: str) -> bool:
        """Whether `callid` is open here: live, or parked until its end is known."""
        return callid in self._topology.calls or callid in self._parked

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
        at = stamp_of(event.get("Timestamp"), received_at)
        if at > self.last_at:
            self.last_at = at
        out: list[Output] = []
        try:
            handler(event, at, out)
        except Exception as exc:
            self._isolate(name, event, at, exc, out)
        if out:
            self._stamp_facts(out)
        return out

    def _stamp_facts(self, out: list[Output]) -> list[Output]:
        """Each event carries its call's facts as they are now (stored for a restart)."""
        calls = self._topology.calls
        for o in out:
            if type(o) is CallEvent:
                call = calls.get(o.callid)
                if call is not None:
                    o.facts = facts_of(call)
        return out

    def take_faults(self) -> list[TrackerFault]:
        """The faults since the last call, oldest first, for the caller to log."""
        faults = list(self._faults)
        self._faults.clear()
        return faults

    def mark(self) -> frozenset[str]:
        """The channels known now: taken where a channel snapshot is asked for. The calls
        up now may have lived through a gap; those born from here on are seen whole."""
        for call in self._topology.calls.values():
            call.born_seen = False
        self._topology.losing = False  # (a new loss is said again)
        return frozenset(self._topology.channels)

    def events_lost(self, *, park: bool) -> None:
        """Some of Asterisk's events are being dropped from here on (a full buffer), until
        the mark of the resync the loss asks for: no call up now or born meanwhile is seen
        whole. With `park`, each one's end waits for the CEL's account of the gap (see
        `resync`), instead of being reported from what the bridge saw."""
        for call in self._topology.calls.values():
            call.born_seen = False
            call.gapped = call.gapped or park
        self._topology.losing = park

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
            if oc.facts is not None:
                _take_facts(call, oc.facts)
            call.seq = oc.last_seq
            call.restored = True
            for ext, last in oc.sessions.items():
                self._grammar.resume(call, ext, last)
            self._topology.calls[oc.callid] = call

    def resync(
        self,
        live: Iterable[Event],
        at: float,
        known: Collection[str] | None = None,
        *,
        seen_until: float | None = None,
        park: bool = False,
    ) -> list[Output]:
        """Reconcile with `CoreShowChannel` events after a (re)connect; `at` is Asterisk's
        time of the snapshot, `seen_until` the last moment the bridge knew Asterisk's
        state before the gap (its last event or Ping reply; `at` if not given).

        Channels we tracked (and that were `known` when the snapshot was asked for) that
        Asterisk no longer has ended while we were away, at some moment the bridge did not
        see: they are hung up as of `seen_until`. With `park`, a call none of whose
        channels lives any more is not closed with what the bridge saw: it waits, open,
        for Asterisk's own account of its end (`settle`, from the Channel Event Log) or
        for `close_parked`. Channels we never saw are adopted (a call's start is its
        first channel's creation, from `Duration`); restored calls with no live channel
        are closed (or parked). A step failing for one call closes that call only.
        """
        out: list[Output] = []
        until = at if seen_until is None else min(seen_until, at)
        handlers, channels, calls = self._handlers, self._topology.channels, self._topology.calls
        live_by_uid = {ev["Uniqueid"]: ev for ev in live if ev.get("Uniqueid")}
        before = set(calls)
        unanswered = {callid for callid, call in calls.items() if call.answered is None}
        gone = [
            ch
            for uid, ch in channels.items()
            if uid not in live_by_uid and (known is None or uid in known)
        ]
        if park:
            gone = self._park_ended(gone, until, out)
        for ch in gone:  # (never before it was made: a call may be younger than the gap)
            end = max(until, ch.created)
            self._step(_RESYNC, _ids(ch), at, out, handlers.hangup, ch, end, None, out, RESYNC)
        adopted: list[Channel] = []
        for uid in sorted(live_by_uid, key=uid_order):
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
        for ch in adopted:  # a restored employee's phone goes on with its sequence
            self._step(_RESYNC, _ids(ch), at, out, handlers.rejoin, ch)
        for ch in list(channels.values()):
            if ch.ended is None and ch.state == UP and ch.bridge:
                self._step(_RESYNC, _ids(ch), at, out, handlers.connect, ch, at, out)
        for ch in adopted:
            self._step(_RESYNC, _ids(ch), at, out, handlers.report_adopted, ch, at, out)
        for callid, call in list(calls.items()):
            if call.answered == at and (callid in unanswered or callid not in before):
                # answered while we were away: when exactly, AMI cannot tell
                ids = {"Linkedid": callid}
                self._step(_RESYNC, ids, at, out, handlers.estimate_answer, call, until)
        for call in list(calls.values()):
            if call.restored and calls.get(call.callid) is call:
                ids = {"Linkedid": call.callid}
                if park and not call.live:
                    self._park(call, until, out)
                    continue
                self._step(_RESYNC, ids, until, out, handlers.close_restored, call, until, out)
        if park:  # what happened to them meanwhile, the CEL will tell when they end
            for call in calls.values():
                if not call.born_seen:
                    call.gapped = True
        return self._stamp_facts(out)

    # ----------------------------------------------------------- parked calls

    def _park_ended(self, gone: list[Channel], until: float, out: list[Output]) -> list[Channel]:
        """Park the calls all of whose channels are among `gone`; the other gone
        channels are returned (their calls go on)."""
        gone_ids = {ch.uid for ch in gone}
        ended: dict[str, Call] = {}
        for ch in gone:
            call = ch.call
            if call is not None and call.callid not in ended:
                if all(uid in gone_ids for uid in call.live):
                    ended[call.callid] = call
        for call in ended.values():
            self._park(call, until, out)
        return [ch for ch in gone if ch.call is None or ch.call.callid not in ended]

    def _park(self, call: Call, until: float, out: list[Output]) -> None:
        topology = self._topology
        for ch in list(call.live.values()):
            topology.forget_channel(ch, until)
        call.restored = call.gapped = False
        topology.retire(call)  # later events of it are stragglers
        self._parked[call.callid] = Parked(call, until, seen_end=False)
        out.append(parked_output(call))

    def _hold(self, call: Call, at: float, out: list[Output]) -> None:
        """A call the bridge did not follow whole (it was up across a gap) ended: its
        history waits for the CEL's account, which saw all of it (`settle`)."""
        call.gapped = False
        self._topology.retire(call)
        self._parked[call.callid] = Parked(call, at, seen_end=True)
        out.append(parked_output(call))

    def waiting_for_cel(self) -> dict[str, float]:
        """Calls the CEL has something to tell of, with their start: parked ones, and
        live ones up across a gap."""
        found = {callid: p.call.start for callid, p in self._parked.items()}
        for callid, call in self._topology.calls.items():
            if call.gapped:
                found[callid] = call.start
        return found

    def parked(self) -> list[str]:
        """Calls that ended while the bridge was away, waiting for `settle`."""
        return list(self._parked)

    def settle(self, callid: str, record: CallRecord, events: Iterable[CallEvent]) -> list[Output]:
        """Close a parked call with Asterisk's own account of it (a record and the events
        rebuilt from its Channel Event Log): each employee's open sequence is closed as
        the account says (ACCEPTED then COMPLETED for one who answered while the bridge
        was away, CANCELLED for one who did not), and the history is the account's
        (`closed_by = "backfill"`). Nothing for a call that is not parked."""
        parked = self._parked.pop(callid, None)
        if parked is None:
            return []
        call, until = parked.call, parked.until
        out: list[Output] = []
        try:
            settle_call(self._grammar, call, until, record, list(events), out)
        except Exception as exc:
            self._isolate(BACKFILL, {"Linkedid": callid}, until, exc, out, parked=call)
        self._topology.forget(call)
        return out

    def close_parked(self, callid: str) -> list[Output]:
        """Close a parked call with what the bridge saw (no account of it came): a call
        that ended while the bridge was away ends at the last moment the bridge knew it
        alive (`closed_by = "resync"`); one it saw end, then."""
        parked = self._parked.pop(callid, None)
        if parked is None:
            return []
        closed_by = "hangup" if parked.seen_end else RESYNC
        call, until = parked.call, parked.until
        out: list[Output] = []
        try:
            self._handlers.finish(call, until, out, closed_by)
        except Exception as exc:
            self._isolate(_RESYNC, {"Linkedid": callid}, until, exc, out, parked=call)
        return self._stamp_facts(out)

    def amend(self, callid: str, facts: CallFacts, phone: str = "") -> None:
        """What Asterisk's own log tells of a live call the bridge took over after a gap
        (its real start, when it was answered, whom it was offered to first, who talked
        with the customer while the bridge was away): what the bridge did not see."""
        call = self._topology.calls.get(callid)
        if call is None or not call.gapped:  # one seen whole has nothing to learn
            return
        call.phone = call.phone or phone
        call.phone_name = facts.phone_name or call.phone_name  # as the channel was made
        call.last_talker = call.last_talker or facts.last_talker
        if facts.start and facts.start < call.start:
            call.start = facts.start
        if facts.answered is not None and (call.answered is None or call.answer_guessed):
            call.answered = facts.answered
            call.answer_guessed = False
        if not call.offer and facts.offer:
            call.offer, call.offer_open = list(facts.offer), facts.offer_open
        call.last_rung = call.last_rung or facts.last_rung
        call.placer = call.placer or facts.placer
        call.recording = call.recording or facts.recording

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
        self,
        name: str,
        event: Mapping[str, str],
        at: float,
        exc: Exception,
        out: list[Output],
        parked: Call | None = None,
    ) -> None:
        """Close what the failed step concerned: the calls `event` names, or the `parked`
        call it was settling (no longer in the topology)."""
        error = repr(exc)
        try:
            if parked is None:
                closed = close_faulty(self._handlers, event, at, out)
            else:
                closed = close_parked_faulty(self._handlers, parked, at, out)
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
