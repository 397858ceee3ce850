"""The call tracker: AMI events in, CRM events and finished calls out.

Pure code: no I/O, no asyncio, no wall clock. Time comes from each event's `Timestamp`
header, or from the receipt time the caller passes when Asterisk sends none.

How it sees a call (SPEC sections 3-4):
- a call is a Linkedid; it ends when its last channel hangs up;
- channels are trunk (the carrier), extension (an employee's phone) or plumbing
  (Local pairs and the like, never a party of their own);
- the *customer* is the trunk channel that called in, or the trunk channel an employee
  dialled out on;
- an employee's phone rings "with the customer" when the chain of dials that created
  it (through Local pairs) starts at the customer; a consultation call from a colleague
  does not count;
- an employee talks with the customer when their channel is up and connected to the
  customer's through bridges and Local pairs: that covers queues, pickups, attended
  transfers and calls adopted after a reconnect alike.

Where that lives: `topology` (channels, Local pairs, bridges, dial chains, customers),
`grammar` (each employee's event sequence), `record` (the finished call), `handlers`
(what each AMI event does to them). This class only wires them and keeps the public API.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping

from . import model
from .channels import ChannelClassifier
from .grammar import Grammar
from .handlers import EventHandlers
from .model import OpenCall, Output
from .numbers import PhoneNormalizer
from .state import UP, Call, Channel
from .topology import Event, Topology


def _uid_key(uid: str) -> tuple[float, str]:
    try:
        return (float(uid), uid)
    except ValueError:
        return (float("inf"), uid)


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
        """Take one AMI event; return what it caused, in order."""
        self.events_seen += 1
        handler = self._dispatch.get(event.get("Event", ""))
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
        handler(event, at, out)
        return out

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
        are closed.
        """
        out: list[Output] = []
        handlers, channels = self._handlers, self._topology.channels
        live_by_uid = {ev["Uniqueid"]: ev for ev in live if ev.get("Uniqueid")}
        for uid, ch in list(channels.items()):
            if uid not in live_by_uid and (known is None or uid in known):
                handlers.hangup(ch, at, None, out, "resync")
        adopted: list[Channel] = []
        for uid in sorted(live_by_uid, key=_uid_key):
            if uid in channels:
                continue
            ev = live_by_uid[uid]
            new = handlers.adopt(ev, at)
            if new is not None:
                adopted.append(new)
        for ch in adopted:
            handlers.settle_adopted(ch)
        for uid, ev in live_by_uid.items():
            known_ch = channels.get(uid)
            if known_ch is not None and known_ch not in adopted:
                handlers.catch_up(known_ch, ev, at, out)
        for ch in list(channels.values()):
            if ch.ended is None and ch.state == UP and ch.bridge:
                handlers.connect(ch, at, out)
        for call in list(self._topology.calls.values()):
            if call.restored:
                handlers.close_restored(call, at, out)
        return out

    def close_all(self, at: float) -> list[Output]:
        """Close every open call (shutdown of a replay, or a PBX restart)."""
        out: list[Output] = []
        handlers = self._handlers
        for ch in list(self._topology.channels.values()):
            handlers.hangup(ch, at, None, out, "resync")
        return out
