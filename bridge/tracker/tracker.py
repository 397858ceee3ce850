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
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable, Mapping

from . import model
from .channels import ChannelClassifier, Kind, local_peer_name
from .model import CallEvent, CallRecord, Leg, OpenCall, Output
from .numbers import PhoneNormalizer
from .state import DOWN, ORIGINATE, RING, RINGING, UP, Call, Channel, Session
from .status import inbound_status, outbound_status

Event = Mapping[str, str]
_DEAD_MEMORY = 8192  # recently hung-up channels, so late events don't resurrect them
_MAX_CHAIN = 32


def _int(value: str | None, default: int | None = None) -> int | None:
    try:
        return int(value) if value not in (None, "") else default
    except ValueError:
        return default


def _uid_key(uid: str) -> tuple[float, str]:
    try:
        return (float(uid), uid)
    except ValueError:
        return (float("inf"), uid)


def _parse_duration(value: str | None) -> float:
    """CoreShowChannel `Duration` is `HH:MM:SS`."""
    if not value:
        return 0.0
    try:
        parts = [int(p) for p in value.split(":")]
    except ValueError:
        return 0.0
    total = 0
    for p in parts:
        total = total * 60 + p
    return float(total)


def dialled_number(dial_string: str) -> str:
    """`79261234567@trunk`, `trunk/79261234567`, `PJSIP/79261234567@trunk` -> digits."""
    target = dial_string.split("&", 1)[0].split(",", 1)[0]
    target = target.rsplit("/", 1)[-1].split("@", 1)[0]
    return target if sum(c.isdigit() for c in target) >= 3 else ""


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
        self.channels: dict[str, Channel] = {}
        self.calls: dict[str, Call] = {}
        self.bridges: dict[str, set[Channel]] = {}
        self._dead: OrderedDict[str, None] = OrderedDict()
        self._finished: OrderedDict[str, None] = OrderedDict()
        self._out: list[Output] = []
        self.events_seen = 0
        self.events_ignored = 0
        self._handlers: dict[str, Callable[[Event, float], None]] = {
            "Newchannel": self._on_newchannel,
            "Newstate": self._on_newstate,
            "Newexten": self._on_touch,
            "VarSet": self._on_varset,
            "DialBegin": self._on_dial_begin,
            "DialState": self._on_dial_state,
            "DialEnd": self._on_dial_end,
            "BridgeEnter": self._on_bridge_enter,
            "BridgeLeave": self._on_bridge_leave,
            "BridgeDestroy": self._on_bridge_destroy,
            "BridgeMerge": self._on_bridge_merge,
            "Hangup": self._on_hangup,
            "LocalBridge": self._on_local_bridge,
            "BlindTransfer": self._on_blind_transfer,
            "AttendedTransfer": self._on_attended_transfer,
            "QueueCallerJoin": self._on_queue,
            "AgentCalled": self._on_queue,
            "Rename": self._on_rename,
            "NewConnectedLine": self._on_touch,
            "NewCallerid": self._on_touch,
        }
        self._needed = frozenset(self._handlers) - {
            "VarSet",
            "Newexten",
            "NewConnectedLine",
            "NewCallerid",
        }

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
        handler = self._handlers.get(event.get("Event", ""))
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
        out = self._out = []
        handler(event, at)
        return out

    def mark(self) -> frozenset[str]:
        """The channels known now: taken where a channel snapshot is asked for."""
        return frozenset(self.channels)

    def restore(self, calls: Iterable[OpenCall]) -> None:
        """Take back the calls a previous run left open (their events were already sent).

        The next `resync` adopts their live channels without repeating INCOMING/ACCEPTED,
        and closes those that ended while no bridge was listening.
        """
        for oc in calls:
            if oc.callid in self.calls:
                continue
            call = Call(oc.callid, oc.start)
            call.direction = oc.direction if oc.direction in (model.IN, model.OUT) else None
            call.phone, call.diversion, call.group = oc.phone, oc.diversion, oc.group
            call.answered = oc.answered
            call.seq = oc.last_seq
            call.restored = True
            for ext, last in oc.sessions.items():
                if last in (model.INCOMING, model.OUTGOING, model.ACCEPTED, model.TRANSFERRED):
                    sess = self._session(call, ext)
                    sess.open = True
                    sess.accepted = last in (model.ACCEPTED, model.TRANSFERRED)
                    if sess.accepted:
                        call.last_talker = ext
            self.calls[oc.callid] = call

    def resync(
        self, live: Iterable[Event], at: float, known: Collection[str] | None = None
    ) -> list[Output]:
        """Reconcile with `CoreShowChannel` events after a (re)connect.

        Channels we tracked (and that were `known` when the snapshot was asked for) that
        Asterisk no longer has ended while we were away: they are hung up now, which closes
        their calls. Channels we never saw are adopted; restored calls with no live channel
        are closed.
        """
        out = self._out = []
        live_by_uid = {ev["Uniqueid"]: ev for ev in live if ev.get("Uniqueid")}
        for uid, ch in list(self.channels.items()):
            if uid not in live_by_uid and (known is None or uid in known):
                self._hangup(ch, at, None, resync=True)
        adopted: list[Channel] = []
        for uid in sorted(live_by_uid, key=_uid_key):
            if uid in self.channels:
                continue
            ev = live_by_uid[uid]
            ch = self._create(ev, at - _parse_duration(ev.get("Duration")), adopted=True)
            if ch is None:
                continue
            bridge = ev.get("BridgeId") or ev.get("BridgeUniqueid")
            if bridge:
                ch.bridge = bridge
                self.bridges.setdefault(bridge, set()).add(ch)
            adopted.append(ch)
        for ch in adopted:
            call = ch.call
            if call is None:
                continue
            if ch.customer_of is call and call.direction == model.OUT and ch.dialer is None:
                first = call.first
                if first is not None and first.kind is Kind.EXTENSION:
                    ch.dialer = first
                    call.placer = first.ext
            if ch.state == UP and ch.kind is not Kind.LOCAL:
                ch.answered = ch.created
        for uid, ev in live_by_uid.items():
            ch = self.channels.get(uid)
            if ch is None or ch in adopted:
                continue
            # what changed while we were not listening; the snapshot may be older than
            # events already taken, so it only ever moves a channel forward
            bridge = ev.get("BridgeId") or ev.get("BridgeUniqueid")
            if bridge and ch.bridge is None:
                ch.bridge = bridge
                self.bridges.setdefault(bridge, set()).add(ch)
            state = _int(ev.get("ChannelState"), ch.state) or DOWN
            if state > ch.state:
                self._set_state(ch, state, at)
        for ch in list(self.channels.values()):
            if ch.ended is None and ch.state == UP and ch.bridge:
                self._connect(ch, at)
        for call in list(self.calls.values()):
            if not call.restored:
                continue
            call.restored = False
            if not call.live:
                self._finish(call, at, "resync")
                continue
            for sess in call.sessions.values():
                if sess.open and not sess.legs:  # that employee left while we were away
                    self._close(sess, at, None)
        return out

    def close_all(self, at: float) -> list[Output]:
        """Close every open call (shutdown of a replay, or a PBX restart)."""
        out = self._out = []
        for ch in list(self.channels.values()):
            self._hangup(ch, at, None, resync=True)
        return out

    @property
    def open_calls(self) -> int:
        return len(self.calls)

    # --------------------------------------------------------------- channels

    def _channel(self, ev: Event, at: float, create: bool = True) -> Channel | None:
        uid = ev.get("Uniqueid")
        if not uid:
            return None
        ch = self.channels.get(uid)
        if ch is not None:
            linkedid = ev.get("Linkedid")
            if linkedid and ch.call is not None and linkedid != ch.call.callid:
                self._move(ch, linkedid, at)
            return ch
        if not create or uid in self._dead:
            return None
        return self._create(ev, at)

    def _create(
        self, ev: Event, at: float, adopted: bool = False, prefix: str = ""
    ) -> Channel | None:
        uid = ev.get(prefix + "Uniqueid")
        name = ev.get(prefix + "Channel")
        if not uid or not name or uid in self._dead:
            return None
        linkedid = ev.get(prefix + "Linkedid") or uid
        if linkedid in self._finished:  # a straggler of a call already reported
            self._remember_dead(uid)
            return None
        state = _int(ev.get(prefix + "ChannelState"), DOWN) or DOWN
        cls = self.classifier.classify(name)
        if adopted:
            originator = uid == linkedid
        else:
            originator = state in (RING, UP) and not prefix
        ch = Channel(
            uid,
            name,
            cls.kind,
            cls.ext,
            at,
            state,
            originator,
            ev.get(prefix + "CallerIDNum", ""),
            ev.get(prefix + "Exten", "") or ev.get("Extension", ""),
        )
        self.channels[uid] = ch
        if ch.kind is Kind.LOCAL:
            peer_name = local_peer_name(name)
            if peer_name:
                for other in (
                    self.calls.get(linkedid).live.values() if linkedid in self.calls else ()
                ):
                    if other.name == peer_name:
                        ch.peer, other.peer = other, ch
                        break
        call = self.calls.get(linkedid)
        if call is None:
            call = self.calls[linkedid] = Call(linkedid, at)
        self._attach(ch, call)
        return ch

    def _attach(self, ch: Channel, call: Call) -> None:
        ch.call = call
        call.live[ch.uid] = ch
        call.legs.append(ch)
        if ch.kind is Kind.TRUNK:
            if call.first is None:
                call.first = ch
                self._set_customer(call, ch, model.IN if ch.originator else model.OUT)
            elif call.direction is None:
                if ch.uid == call.callid and ch.originator:
                    # the carrier's channel started this call; a phone was merely seen first
                    call.first = ch
                    self._set_customer(call, ch, model.IN)
                else:
                    self._set_customer(call, ch, model.OUT)
            elif self._failed_over(call):
                self._set_customer(call, ch, model.OUT)
        elif ch.kind is Kind.EXTENSION and call.first is None:
            call.first = ch
            call.placer = ch.ext

    @staticmethod
    def _failed_over(call: Call) -> bool:
        """An outbound call whose customer leg failed before answering dials again (another
        trunk, a retry): the new leg is the customer now."""
        customer = call.customer
        return (
            call.direction == model.OUT
            and customer is not None
            and customer.ended is not None
            and call.answered is None
        )

    def _set_customer(self, call: Call, ch: Channel, direction: str) -> None:
        if call.customer is not None and call.customer is not ch:
            call.customer_end = None
            call.cause = None
            call.dial_status = ""
        call.direction = direction
        call.customer = ch
        ch.customer_of = call
        if direction == model.IN:
            if not call.phone:
                call.phone = self.numbers.normalize(ch.caller_num)
            if not call.diversion and ch.exten != "s":
                call.diversion = self.numbers.normalize(ch.exten)
            call.start = min(call.start, ch.created)
        elif not call.diversion:
            call.diversion = self.main_number

    def _move(self, ch: Channel, linkedid: str, at: float) -> None:
        """A channel now carries another Linkedid (pickup, some transfers)."""
        old = ch.call
        assert old is not None
        if linkedid in self._finished:
            return  # late news of a call already reported: the channel stays where it is
        old.live.pop(ch.uid, None)
        new = self.calls.get(linkedid)
        if new is None:
            new = self.calls[linkedid] = Call(linkedid, at)
        self._attach(ch, new)
        for sess in list(ch.sessions):
            if sess.call is old:
                self._leave_session(sess, ch, at)  # the call left them
        if not old.live:
            if old.customer is not None:
                self._finish(old, at)
            else:
                del self.calls[old.callid]  # a placeholder (the picker's own "call")
        if ch.state == UP and ch.ended is None:
            self._connect(ch, at)

    # --------------------------------------------------------------- handlers

    def _on_touch(self, ev: Event, at: float) -> None:
        self._channel(ev, at, create=False)

    def _on_varset(self, ev: Event, at: float) -> None:
        ch = self._channel(ev, at, create=False)
        if ch is not None and ev.get("Variable") == "MIXMONITOR_FILENAME" and ch.call:
            ch.call.recording = ev.get("Value", "") or ch.call.recording

    def _on_newchannel(self, ev: Event, at: float) -> None:
        self._channel(ev, at)

    def _on_newstate(self, ev: Event, at: float) -> None:
        ch = self._channel(ev, at)
        if ch is not None:
            self._set_state(ch, _int(ev.get("ChannelState"), ch.state) or DOWN, at)

    def _on_dial_begin(self, ev: Event, at: float) -> None:
        dest = self.channels.get(ev.get("DestUniqueid", "")) or self._create(ev, at, prefix="Dest")
        if dest is None:
            return
        caller = self._channel(ev, at) if ev.get("Uniqueid") else None
        dest.dialer = caller if caller is not None else ORIGINATE
        call = dest.call
        if call is None:
            return
        if caller is not None and not call.group:
            group = self.groups.get(caller.exten) or self.groups.get(ev.get("Exten", ""))
            if group:
                call.group = group
        if dest.kind is Kind.EXTENSION:
            target = self._customer_call(dest)
            if target is not None and target.offer_open and dest.ext not in target.offer:
                target.offer.append(dest.ext)
        elif dest.kind is Kind.TRUNK and dest.customer_of is call and call.direction == model.OUT:
            number = dialled_number(ev.get("DialString", "")) or ev.get("DestExten", "")
            if (not number or number == "s") and caller is not None:
                number = caller.exten
            call.phone = self.numbers.normalize(number)
            root = self._placer_leg(call, dest)
            if root.kind is Kind.EXTENSION:
                call.placer = root.ext
                sess = self._session(call, root.ext)
                if not sess.open:
                    self._open(sess, root, model.OUTGOING, at)
                sess.legs.add(root)
                if sess not in root.sessions:
                    root.sessions.append(sess)

    def _on_dial_state(self, ev: Event, at: float) -> None:
        if ev.get("DialStatus") == "RINGING":
            dest = self.channels.get(ev.get("DestUniqueid", ""))
            if dest is not None and dest.state < RINGING:
                self._set_state(dest, RINGING, at)

    def _on_dial_end(self, ev: Event, at: float) -> None:
        dest = self.channels.get(ev.get("DestUniqueid", ""))
        if dest is None:
            return
        status = ev.get("DialStatus", "")
        dest.dial_status = status
        call = dest.call
        if call is not None and dest.customer_of is call:
            call.dial_status = status
        if status == "ANSWER" and dest.state != UP:
            self._set_state(dest, UP, at)

    def _on_bridge_enter(self, ev: Event, at: float) -> None:
        ch = self._channel(ev, at)
        bridge = ev.get("BridgeUniqueid")
        if ch is None or not bridge:
            return
        if ch.bridge and ch.bridge != bridge:
            self.bridges.get(ch.bridge, set()).discard(ch)
        ch.bridge = bridge
        members = self.bridges.setdefault(bridge, set())
        members.add(ch)
        swapped = self.channels.get(ev.get("SwapUniqueid", ""))
        if swapped is not None and swapped.bridge == bridge:
            # it takes that channel's place (attended transfer): Asterisk 22 says so in
            # this event and sends the other's BridgeLeave only afterwards
            members.discard(swapped)
            swapped.bridge = None
        self._connect(ch, at)

    def _on_bridge_leave(self, ev: Event, at: float) -> None:
        ch = self._channel(ev, at, create=False)
        if ch is not None and ch.bridge == ev.get("BridgeUniqueid"):
            self.bridges.get(ch.bridge or "", set()).discard(ch)
            ch.bridge = None

    def _on_bridge_destroy(self, ev: Event, at: float) -> None:
        for ch in self.bridges.pop(ev.get("BridgeUniqueid", ""), ()):
            ch.bridge = None

    def _on_bridge_merge(self, ev: Event, at: float) -> None:
        """Everyone in the `From` bridge is now in the `To` bridge (attended transfers)."""
        source = self.bridges.pop(ev.get("FromBridgeUniqueid", ""), set())
        target_id = ev.get("ToBridgeUniqueid", "")
        if not source or not target_id:
            return
        target = self.bridges.setdefault(target_id, set())
        for ch in source:
            ch.bridge = target_id
            target.add(ch)
        self._connect(next(iter(source)), at)

    def _on_hangup(self, ev: Event, at: float) -> None:
        uid = ev.get("Uniqueid", "")
        ch = self.channels.get(uid)
        if ch is None:
            if uid:
                self._remember_dead(uid)
            return
        self._channel(ev, at, create=False)
        self._hangup(ch, at, _int(ev.get("Cause")))

    def _on_local_bridge(self, ev: Event, at: float) -> None:
        one = self.channels.get(ev.get("LocalOneUniqueid", ""))
        two = self.channels.get(ev.get("LocalTwoUniqueid", ""))
        if one is not None and two is not None:
            one.peer, two.peer = two, one

    def _on_blind_transfer(self, ev: Event, at: float) -> None:
        if ev.get("Result", "Success") != "Success":
            return
        transferer = self.channels.get(ev.get("TransfererUniqueid", ""))
        if transferer is not None:
            self._transferred(transferer, at, "")

    def _on_attended_transfer(self, ev: Event, at: float) -> None:
        if ev.get("Result", "Success") != "Success":
            return
        orig = self.channels.get(ev.get("OrigTransfererUniqueid", ""))
        second = self.channels.get(ev.get("SecondTransfererUniqueid", ""))
        orig_call = ev.get("OrigTransfererLinkedid", "")
        second_call = ev.get("SecondTransfererLinkedid", "")
        for ch, other in ((orig, second_call), (second, orig_call)):
            if ch is None:
                continue
            own = ch.call.callid if ch.call is not None else ""
            self._transferred(ch, at, other if other and other != own else "")

    def _on_queue(self, ev: Event, at: float) -> None:
        ch = self._channel(ev, at, create=False)
        queue = ev.get("Queue", "")
        if ch is not None and ch.call is not None and queue and not ch.call.group:
            ch.call.group = self.groups.get(queue, queue)

    def _on_rename(self, ev: Event, at: float) -> None:
        ch = self.channels.get(ev.get("Uniqueid", ""))
        if ch is not None and ev.get("Newname"):
            ch.name = ev["Newname"]

    # ----------------------------------------------------------- call logic

    def _set_state(self, ch: Channel, state: int, at: float) -> None:
        prev, ch.state = ch.state, state
        if state == prev:
            return
        if state == RINGING and ch.kind is Kind.EXTENSION:
            call = self._customer_call(ch)
            if call is not None:
                call.last_rung = ch.ext
                sess = self._session(call, ch.ext)
                sess.legs.add(ch)
                if sess not in ch.sessions:
                    ch.sessions.append(sess)
                if not sess.open:
                    kind = model.INCOMING
                    if call.direction == model.OUT and call.placer in ("", ch.ext):
                        # the customer was called first (a reverse click-to-call): the
                        # employee rung now is the one placing the call
                        call.placer = ch.ext
                        kind = model.OUTGOING
                    self._open(sess, ch, kind, at)
        elif state == UP:
            if ch.answered is None:
                ch.answered = at
            if ch.kind is Kind.EXTENSION:
                call = self._customer_call(ch)
                if call is not None:
                    self._accept(call, ch, at)
                else:
                    self._connect(ch, at)
            elif ch.kind is Kind.TRUNK:
                self._trunk_answered(ch, at)

    def _trunk_answered(self, ch: Channel, at: float) -> None:
        call = ch.call
        if call is None:
            return
        if ch.customer_of is call:
            if call.direction == model.OUT:
                root = self._placer_leg(call, ch)
                if root.kind is Kind.EXTENSION:
                    self._accept(call, root, at)
                # else: the customer was called first; the call is answered when an
                # employee talks with them (see _connect)
            return
        target = self._customer_call(ch)
        if target is not None and target.answered is None:
            target.answered = at  # answered by an outside number (follow-me to a mobile)

    def _root(self, ch: Channel) -> Channel:
        """Follow who-dialled-whom, through Local pairs, to where the chain started."""
        node = ch
        for _ in range(_MAX_CHAIN):
            dialer = node.dialer
            if isinstance(dialer, Channel):
                node = dialer
            elif (
                dialer is None
                and node.kind is Kind.LOCAL
                and node.peer is not None
                and (node.name.endswith(";2"))
            ):
                node = node.peer
            else:
                return node
        return node

    def _placer_leg(self, call: Call, customer: Channel) -> Channel:
        """The employee's leg behind an outbound customer leg.

        Usually the dial chain starts at the phone; a click-to-call through a Local channel
        (`Originate Local/1001@from-internal`) starts at the Local half that was never
        dialled, and the employee is then the call's first phone."""
        root = self._root(customer)
        first = call.first
        if (
            root.kind is not Kind.EXTENSION
            and first is not None
            and first.kind is Kind.EXTENSION
            and first.ended is None
        ):
            return first
        return root

    def _customer_call(self, ch: Channel) -> Call | None:
        """The call whose customer this channel is ringing or talking for, if any."""
        root = self._root(ch)
        if root.customer_of is not None:
            return root.customer_of
        if root is ch and ch.dialer is None and not ch.originator and ch.call is not None:
            call = ch.call  # dialled, but we missed the DialBegin: assume the customer
            if call.customer is not None and call.direction == model.IN and ch is not call.first:
                return call
        return None

    def _connect(self, start: Channel, at: float) -> None:
        """Whoever is up and connected to a customer now talks with that customer."""
        component: list[Channel] = []
        seen = {start}
        todo = [start]
        customer: Channel | None = None
        while todo:
            ch = todo.pop()
            component.append(ch)
            if ch.customer_of is not None and ch.ended is None and customer is None:
                customer = ch
            neighbours: Iterable[Channel] = self.bridges.get(ch.bridge, ()) if ch.bridge else ()
            for other in (*neighbours, ch.peer):
                if other is not None and other not in seen and other.ended is None:
                    seen.add(other)
                    todo.append(other)
        if customer is None:
            return
        call = customer.customer_of
        assert call is not None
        for ch in component:
            if ch.state != UP:
                continue
            if ch.kind is Kind.EXTENSION:
                self._accept(call, ch, at)
            elif ch.kind is Kind.TRUNK and ch is not customer and call.answered is None:
                call.answered = at

    def _accept(self, call: Call, ch: Channel, at: float) -> None:
        sess = self._session(call, ch.ext)
        sess.legs.add(ch)
        if sess not in ch.sessions:
            ch.sessions.append(sess)
        if sess.accepted and sess.open:
            return
        if not sess.open:
            first = (
                model.OUTGOING
                if call.direction == model.OUT and ch.ext == call.placer
                else (model.INCOMING)
            )
            self._open(sess, ch, first, at)
        sess.accepted = True
        call.last_talker = ch.ext
        if call.answered is None:
            call.answered = at
        self._emit(call, model.ACCEPTED, ch.ext, at, ch)

    def _transferred(self, ch: Channel, at: float, second_callid: str) -> None:
        for sess in ch.sessions:
            if sess.open and sess.accepted and not sess.transferred:
                sess.transferred = True
                self._emit(sess.call, model.TRANSFERRED, sess.ext, at, ch, second_callid)

    def _hangup(self, ch: Channel, at: float, cause: int | None, resync: bool = False) -> None:
        if ch.ended is not None:
            return
        ch.ended = at
        ch.cause = cause
        if ch.bridge:
            self.bridges.get(ch.bridge, set()).discard(ch)
            ch.bridge = None
        if ch.peer is not None and ch.peer.peer is ch:
            ch.peer.peer = None if ch.peer.ended is not None else ch.peer.peer
        for sess in ch.sessions:
            if sess.open:
                self._leave_session(sess, ch, at)
        ch.sessions = []
        self.channels.pop(ch.uid, None)
        self._remember_dead(ch.uid)
        call = ch.call
        if call is None:
            return
        call.live.pop(ch.uid, None)
        if ch is call.customer:
            call.customer_end = at
            call.cause = cause
        if call.offer_open and ch.ext in call.offer:
            call.offer_open = False
        if not call.live:
            self._finish(call, at, "resync" if resync else "hangup")

    def _leave_session(self, sess: Session, ch: Channel, at: float) -> None:
        sess.legs.discard(ch)
        if sess.open and not sess.legs:
            self._close(sess, at, ch)

    def _remember_dead(self, uid: str) -> None:
        self._dead[uid] = None
        if len(self._dead) > _DEAD_MEMORY:
            self._dead.popitem(last=False)

    # ------------------------------------------------------------- sessions

    def _session(self, call: Call, ext: str) -> Session:
        sess = call.sessions.get(ext)
        if sess is None:
            sess = call.sessions[ext] = Session(call, ext)
        return sess

    def _open(self, sess: Session, ch: Channel, kind: str, at: float) -> None:
        sess.open = True
        sess.accepted = False
        sess.transferred = False
        self._emit(sess.call, kind, sess.ext, at, ch)

    def _close(self, sess: Session, at: float, ch: Channel | None) -> None:
        sess.open = False
        kind = model.COMPLETED if sess.accepted else model.CANCELLED
        sess.accepted = False
        self._emit(sess.call, kind, sess.ext, at, ch)

    def _emit(
        self, call: Call, kind: str, ext: str, at: float, ch: Channel | None, second: str = ""
    ) -> None:
        call.seq += 1
        self._out.append(
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

    # ---------------------------------------------------------------- finish

    def _finish(self, call: Call, at: float, closed_by: str = "hangup") -> None:
        for sess in call.sessions.values():
            if sess.open:
                self._close(sess, at, None)
        self.calls.pop(call.callid, None)
        self._finished[call.callid] = None
        if len(self._finished) > _DEAD_MEMORY:
            self._finished.popitem(last=False)
        direction = call.direction or model.INTERNAL
        answered = call.answered
        if direction == model.IN:
            status = inbound_status(answered is not None)
            if call.last_talker:
                ext = call.last_talker
            elif answered is not None:
                ext = call.last_rung
            else:
                ext = call.offer[0] if len(call.offer) == 1 else ""
        elif direction == model.OUT:
            status = outbound_status(answered is not None, call.dial_status, call.cause)
            ext = call.last_talker or call.placer
        else:
            status = inbound_status(answered is not None)
            ext = call.placer
        end = call.customer_end if call.customer_end is not None else at
        duration = max(0, round(end - answered)) if answered is not None else 0
        wait = max(0, round((answered if answered is not None else end) - call.start))
        self._out.append(
            CallRecord(
                callid=call.callid,
                direction=direction,
                status=status,
                phone=call.phone,
                diversion=call.diversion,
                ext=ext,
                user=self.users.get(ext, ext) if ext else "",
                group=call.group,
                start=call.start,
                answered=answered,
                end=end,
                duration=duration,
                wait=wait,
                recording=call.recording,
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
        )
        for ch in call.legs:  # break reference cycles so memory goes at once
            if ch.customer_of is call:
                ch.customer_of = None  # a moved, still live leg never speaks for it again
            if ch.ended is not None:
                ch.call = None
                ch.dialer = None
                ch.peer = None
        call.legs = []
        call.sessions = {}
