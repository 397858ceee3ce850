"""What each AMI event means for the calls: the dispatch table of the tracker.

Every handler takes the event, its time and the output list of this `feed`; it changes
the channel graph (`Topology`) and moves employees' event sequences (`Grammar`) at the
moments that matter: a phone rings, a channel answers, channels get connected, a channel
hangs up or moves to another call, the call's last channel is gone (`record`).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping

from . import model
from .channels import Kind
from .grammar import Grammar
from .model import Output
from .record import build_record
from .state import (
    CALLER,
    DIALLED,
    DOWN,
    ORIGINATE,
    RING,
    RINGING,
    SNAPSHOT,
    UNDECIDED,
    UP,
    Call,
    Channel,
)
from .topology import Event, Topology, int_header

Handler = Callable[[Event, float, list[Output]], None]


def dialled_number(dial_string: str) -> str:
    """`79261234567@trunk`, `trunk/79261234567`, `PJSIP/79261234567@trunk` -> digits."""
    target = dial_string.split("&", 1)[0].split(",", 1)[0]
    target = target.rsplit("/", 1)[-1].split("@", 1)[0]
    return target if sum(c.isdigit() for c in target) >= 3 else ""


class EventHandlers:
    def __init__(
        self,
        topology: Topology,
        grammar: Grammar,
        users: Mapping[str, str],
        groups: Mapping[str, str],
    ) -> None:
        self.topology = topology
        self.grammar = grammar
        self.users = users
        self.groups = groups
        self.channels = topology.channels  # the same dict, looked up on every event
        # where a call up across a gap goes when it ends (CallTracker: it waits for the
        # CEL's account); None: finished at once
        self.hold: Callable[[Call, float, list[Output]], None] | None = None

    def table(self) -> dict[str, Handler]:
        return {
            "Newchannel": self.on_newchannel,
            "Newstate": self.on_newstate,
            "Newexten": self.on_touch,
            "VarSet": self.on_varset,
            "DialBegin": self.on_dial_begin,
            "DialState": self.on_dial_state,
            "DialEnd": self.on_dial_end,
            "BridgeEnter": self.on_bridge_enter,
            "BridgeLeave": self.on_bridge_leave,
            "BridgeDestroy": self.on_bridge_destroy,
            "BridgeMerge": self.on_bridge_merge,
            "Hangup": self.on_hangup,
            "LocalBridge": self.on_local_bridge,
            "BlindTransfer": self.on_blind_transfer,
            "AttendedTransfer": self.on_attended_transfer,
            "QueueCallerJoin": self.on_queue,
            "AgentCalled": self.on_queue,
            "Rename": self.on_rename,
            "NewConnectedLine": self.on_touch,
            "NewCallerid": self.on_touch,
        }

    # ------------------------------------------------------------- handlers

    def on_touch(self, ev: Event, at: float, out: list[Output]) -> None:
        self.channel(ev, at, out, create=False)

    def on_varset(self, ev: Event, at: float, out: list[Output]) -> None:
        ch = self.channel(ev, at, out, create=False)
        if ch is not None and ev.get("Variable") == "MIXMONITOR_FILENAME" and ch.call:
            ch.call.recording = ev.get("Value", "") or ch.call.recording

    def on_newchannel(self, ev: Event, at: float, out: list[Output]) -> None:
        self.channel(ev, at, out)

    def on_newstate(self, ev: Event, at: float, out: list[Output]) -> None:
        ch = self.channel(ev, at, out)
        if ch is not None:
            self.set_state(ch, int_header(ev.get("ChannelState"), ch.state) or DOWN, at, out)

    def on_dial_begin(self, ev: Event, at: float, out: list[Output]) -> None:
        topology = self.topology
        dest = self.channels.get(ev.get("DestUniqueid", "")) or topology.create(
            ev, at, prefix="Dest"
        )
        if dest is None:
            return
        caller = self.channel(ev, at, out) if ev.get("Uniqueid") else None
        call = dest.call
        if call is not None and (
            call.provisional or ev.get("DestLinkedid", call.callid) != call.callid
        ):
            self._named_call(dest, ev.get("DestLinkedid", ""), caller, at, out)
        if caller is None:
            dest.dialer = ORIGINATE
        elif dest.dialer is None:
            dest.dialer = caller
            caller.dials.append(dest)
        else:
            topology.redial(dest, caller)
        if dest.role == UNDECIDED:
            topology.decide(dest, DIALLED)
        call = dest.call
        if call is None:
            return
        if caller is not None and not call.group:
            group = self.groups.get(caller.exten) or self.groups.get(ev.get("Exten", ""))
            if group:
                call.group = group
        if dest.kind is Kind.EXTENSION:
            target = topology.customer_call(dest)
            if target is not None:
                if target.offer_open and dest.ext not in target.offer:
                    target.offer.append(dest.ext)
                if dest.state == RINGING:  # it rang before Asterisk said who dialled it
                    self._rings(target, dest, at, out)
        elif dest.kind is Kind.TRUNK and dest.customer_of is call and call.direction == model.OUT:
            number = dialled_number(ev.get("DialString", "")) or ev.get("DestExten", "")
            if (not number or number == "s") and caller is not None:
                number = caller.exten
            call.phone = topology.numbers.normalize(number)
            placer = topology.placer_leg(call, dest)
            if placer.kind is Kind.EXTENSION:
                self.grammar.dial_out(call, placer, at, out)
        elif dest.kind is Kind.LOCAL and dest.peer is not None:
            # the Local half's own dialplan may have rung phones before this DialBegin
            # (Asterisk publishes it after ast_call() started that dialplan)
            self.ring_below((dest, dest.peer), at, out)

    def _named_call(
        self, dest: Channel, linkedid: str, caller: Channel | None, at: float, out: list[Output]
    ) -> None:
        """A dialled channel first seen without its Linkedid belongs to its dialer's call."""
        call = dest.call
        if call is None:
            return
        if not linkedid and call.provisional and caller is not None and caller.call is not None:
            linkedid = caller.call.callid
        if linkedid and linkedid != call.callid:
            self.move(dest, linkedid, at, out)

    def on_dial_state(self, ev: Event, at: float, out: list[Output]) -> None:
        dest = self.channels.get(ev.get("DestUniqueid", ""))
        if dest is None:
            return
        self._dialled(dest, ev, at, out)
        if ev.get("DialStatus") == "RINGING" and dest.state < RINGING:
            self.set_state(dest, RINGING, at, out)

    def on_dial_end(self, ev: Event, at: float, out: list[Output]) -> None:
        dest = self.channels.get(ev.get("DestUniqueid", ""))
        if dest is None:
            return
        self._dialled(dest, ev, at, out)
        status = ev.get("DialStatus", "")
        dest.dial_status = status
        call = dest.call
        if call is not None and dest.customer_of is call:
            call.dial_status = status
        if status == "ANSWER" and dest.state != UP:
            self.set_state(dest, UP, at, out)

    def _dialled(self, dest: Channel, ev: Event, at: float, out: list[Output]) -> None:
        """A DialState or DialEnd says `dest` was dialled, and by whom now: after a
        transfer to a target still ringing, the transferee took the place of the
        channel that started the Dial."""
        if dest.role == UNDECIDED:
            self.topology.decide(dest, DIALLED)
        dialer = dest.dialer
        if isinstance(dialer, Channel) and dialer.uid != ev.get("Uniqueid", dialer.uid):
            caller = self.channels.get(ev["Uniqueid"])
            if caller is not None and caller.ended is None:
                self.topology.redial(dest, caller)
                self.ring_below((caller,), at, out)

    def on_bridge_enter(self, ev: Event, at: float, out: list[Output]) -> None:
        ch = self.channel(ev, at, out)
        bridge = ev.get("BridgeUniqueid")
        if ch is None or not bridge:
            return
        swapped = self.channels.get(ev.get("SwapUniqueid", ""))
        self.topology.enter_bridge(ch, bridge, swapped)
        self.connect(ch, at, out)

    def on_bridge_leave(self, ev: Event, at: float, out: list[Output]) -> None:
        ch = self.channel(ev, at, out, create=False)
        if ch is not None:
            self.topology.leave_bridge(ch, ev.get("BridgeUniqueid"))

    def on_bridge_destroy(self, ev: Event, at: float, out: list[Output]) -> None:
        self.topology.destroy_bridge(ev.get("BridgeUniqueid", ""))

    def on_bridge_merge(self, ev: Event, at: float, out: list[Output]) -> None:
        """Everyone in the `From` bridge is now in the `To` bridge (attended transfers)."""
        moved = self.topology.merge_bridges(
            ev.get("FromBridgeUniqueid", ""), ev.get("ToBridgeUniqueid", "")
        )
        if moved is not None:
            self.connect(moved, at, out)

    def on_hangup(self, ev: Event, at: float, out: list[Output]) -> None:
        uid = ev.get("Uniqueid", "")
        ch = self.channels.get(uid)
        if ch is None:
            if uid:
                self.topology.remember_dead(uid)
            return
        self.channel(ev, at, out, create=False)
        self.hangup(ch, at, int_header(ev.get("Cause")), out)

    def on_local_bridge(self, ev: Event, at: float, out: list[Output]) -> None:
        one = self.channels.get(ev.get("LocalOneUniqueid", ""))
        two = self.channels.get(ev.get("LocalTwoUniqueid", ""))
        if one is not None and two is not None:
            one.peer, two.peer = two, one

    def on_blind_transfer(self, ev: Event, at: float, out: list[Output]) -> None:
        if ev.get("Result", "Success") != "Success":
            return
        transferer = self.channels.get(ev.get("TransfererUniqueid", ""))
        if transferer is not None:
            self.grammar.transferred(transferer, at, "", out)

    def on_attended_transfer(self, ev: Event, at: float, out: list[Output]) -> None:
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
            self.grammar.transferred(ch, at, other if other and other != own else "", out)
        if ev.get("DestType") == "App":
            self._took_place(ev, second, at, out)

    def _took_place(self, ev: Event, second: Channel | None, at: float, out: list[Output]) -> None:
        """An attended transfer to a target not answered yet (a blonde transfer): the
        transferee takes the second transferer's place in the application it runs
        (bridge.c ast_bridge_transfer_attended -> bridge_channel_internal_queue_
        attended_transfer -> ast_channel_move), so whatever that Dial is ringing now
        rings with the transferee's customer. The second transferer's old self is hung
        up from the transferee's thread, so its Hangup may come before this event."""
        transferee = self.channels.get(ev.get("TransfereeUniqueid", ""))
        if transferee is None:
            return
        if second is not None:
            dests = list(second.dials)
        else:
            uid = ev.get("SecondTransfererUniqueid", "")
            call = self.topology.calls.get(ev.get("SecondTransfererLinkedid", ""))
            live = call.live.values() if call is not None and uid else ()
            dests = [ch for ch in live if isinstance(ch.dialer, Channel) and ch.dialer.uid == uid]
        if second is transferee or not dests:
            return
        for dest in dests:
            self.topology.redial(dest, transferee)
        self.ring_below((transferee,), at, out)

    def on_queue(self, ev: Event, at: float, out: list[Output]) -> None:
        ch = self.channel(ev, at, out, create=False)
        queue = ev.get("Queue", "")
        if ch is not None and ch.call is not None and queue and not ch.call.group:
            ch.call.group = self.groups.get(queue, queue)

    def on_rename(self, ev: Event, at: float, out: list[Output]) -> None:
        ch = self.channels.get(ev.get("Uniqueid", ""))
        if ch is not None and ev.get("Newname"):
            ch.name = ev["Newname"]

    # -------------------------------------------------------------- moments

    def channel(
        self, ev: Event, at: float, out: list[Output], create: bool = True
    ) -> Channel | None:
        """The event's channel (created if new and `create`), moved to the event's
        Linkedid if that changed."""
        uid = ev.get("Uniqueid")
        if not uid:
            return None
        ch = self.channels.get(uid)
        if ch is not None:
            linkedid = ev.get("Linkedid")
            if linkedid and ch.call is not None and linkedid != ch.call.callid:
                self.move(ch, linkedid, at, out)
            return ch
        return self.topology.create(ev, at) if create else None

    def move(self, ch: Channel, linkedid: str, at: float, out: list[Output]) -> None:
        """A channel now carries another Linkedid (pickup, some transfers)."""
        old = self.topology.relink(ch, linkedid, at)
        if old is None:
            return
        for sess in list(ch.sessions):
            if sess.call is old:
                self.grammar.leave_session(sess, ch, at, out)  # the call left them
        if not old.live:
            if old.customer is not None:
                self.finish(old, at, out)
            else:
                self.topology.drop(old)  # the picker's own "call", a provisional one
        if ch.state == UP and ch.ended is None:
            self.connect(ch, at, out)

    def set_state(self, ch: Channel, state: int, at: float, out: list[Output]) -> None:
        prev, ch.state = ch.state, state
        if state == prev:
            return
        if ch.role == UNDECIDED:
            self.topology.decide(ch, _role_from_state(ch, state))
        if state == RINGING and ch.kind is Kind.EXTENSION:
            call = self.topology.customer_call(ch)
            if call is not None:
                self.grammar.ring(call, ch, at, out)
        elif state == UP:
            if ch.answered is None:
                ch.answered = at
            if ch.kind is Kind.EXTENSION:
                call = self.topology.customer_call(ch)
                if call is not None:
                    # answered; talking once connected with the customer (see connect)
                    self.grammar.accept(call, ch, at, out, talking=call.direction == model.OUT)
                    if ch.bridge:
                        self.connect(ch, at, out)
                else:
                    self.connect(ch, at, out)
            elif ch.kind is Kind.TRUNK:
                self._trunk_answered(ch, at, out)

    def _trunk_answered(self, ch: Channel, at: float, out: list[Output]) -> None:
        call = ch.call
        if call is None or ch.customer_of is not call or call.direction != model.OUT:
            # an outside number an inbound call was forwarded to has answered only once
            # it is connected with the customer (see connect): a follow-me's call
            # acceptance prompt is played to it before, and it may decline
            return
        root = self.topology.placer_leg(call, ch)
        if root.kind is Kind.EXTENSION:
            self.grammar.accept(call, root, at, out)
        # else: the customer was called first; the call is answered when an
        # employee talks with them (see connect)

    def connect(self, start: Channel, at: float, out: list[Output]) -> None:
        """Whoever is up and connected to a customer now talks with that customer, and
        phones ringing for a channel now connected to the customer ring with them."""
        customer, component = self.topology.component(start)
        if customer is None:
            return
        call = customer.customer_of
        if call is None:
            return
        dialling = False
        for ch in component:
            if ch.dials:
                dialling = True
            if ch.state != UP:
                continue
            if ch.kind is Kind.EXTENSION:
                self.grammar.accept(call, ch, at, out)
            elif ch.kind is Kind.TRUNK and ch is not customer and call.answered is None:
                call.answered = at
        if dialling:
            self.ring_below(component, at, out, ringing_only=True)

    def ring_below(
        self, nodes: Collection[Channel], at: float, out: list[Output], ringing_only: bool = False
    ) -> None:
        """Phones these channels dial (through Local pairs) that are offered to a
        customer and not in that customer's call yet: ringing ones get INCOMING now
        (`ringing_only`: only those are looked at, when the offer is known already)."""
        for phone in self.topology.phones_below(nodes):
            ringing = phone.state == RINGING
            if ringing_only and not ringing:
                continue
            call = self.topology.customer_call(phone)
            if call is None:
                continue
            if call.offer_open and phone.ext not in call.offer:
                call.offer.append(phone.ext)
            if ringing:
                self._rings(call, phone, at, out)

    def _rings(self, call: Call, phone: Channel, at: float, out: list[Output]) -> None:
        """The phone rings with the customer of `call`, if it was not said already."""
        sess = call.sessions.get(phone.ext)
        if sess is None or not sess.open or phone not in sess.legs:
            self.grammar.ring(call, phone, at, out)

    def hangup(
        self,
        ch: Channel,
        at: float,
        cause: int | None,
        out: list[Output],
        closed_by: str = "hangup",
    ) -> None:
        if ch.ended is not None:
            return
        call = self.topology.unlink(ch, at, cause)
        if ch.sessions:
            self.grammar.leave(ch, at, out)
        if call is not None and not call.live:
            self.finish(call, at, out, closed_by)

    def finish(self, call: Call, at: float, out: list[Output], closed_by: str = "hangup") -> None:
        """The call's last channel is gone: close every sequence, report, forget."""
        if call.gapped and closed_by == "hangup" and self.hold is not None:
            self.hold(call, at, out)
            return
        call.gapped = False
        self.grammar.close_all(call, at, out)
        out.append(build_record(call, at, closed_by, self.users))
        self.topology.forget(call)

    # ------------------------------------------- a channel snapshot (resync)

    def adopt(self, ev: Event, at: float) -> Channel | None:
        """A `CoreShowChannel` of a channel never seen: take it as it is now."""
        ch = self.topology.create(ev, at - _snapshot_age(ev.get("Duration")), adopted=True)
        if ch is None:
            return None
        bridge = ev.get("BridgeId") or ev.get("BridgeUniqueid")
        if bridge:
            self.topology.join_bridge(ch, bridge)
        if ch.role == DIALLED and ch.kind is not Kind.LOCAL:
            ch.dialer = SNAPSHOT  # by someone, before we were listening
        call = ch.call
        if ev.get("Application") == "Queue" and call is not None and not call.group:
            queue = ev.get("ApplicationData", "").split(",", 1)[0]
            if queue:
                call.group = self.groups.get(queue, queue)
        return ch

    def settle_adopted(self, ch: Channel) -> None:
        """What an adopted channel's call can tell about it once all are adopted."""
        call = ch.call
        if call is None:
            return
        customer = call.customer
        if (
            ch.customer_of is call
            and call.direction == model.OUT
            and not isinstance(ch.dialer, Channel)
        ):
            first = call.first
            if first is not None and first.kind is Kind.EXTENSION:
                self.topology.redial(ch, first)
                call.placer = first.ext
                if not call.phone:  # the number the employee dialled: their dialplan's
                    call.phone = self.topology.numbers.normalize(dialled_number(first.exten))
        elif (
            ch.kind is Kind.LOCAL
            and ch.name.endswith(";1")
            and ch.role == DIALLED
            and ch.dialer is None
            and customer is not None
            and call.direction == model.IN
        ):
            # a queue member or a ring group's Local half the customer's Dial or Queue
            # created: what its other half dials later rings with the customer
            self.topology.redial(ch, customer)
        if ch.state == UP and ch.kind is not Kind.LOCAL:
            ch.answered = ch.created

    def rejoin(self, ch: Channel) -> None:
        """An adopted phone of an employee whose sequence a restored call left open (the
        bridge restarted meanwhile) carries that sequence on: it is not closed and opened
        again."""
        if ch.kind is not Kind.EXTENSION or ch.ended is not None:
            return
        for call in (self.topology.customer_call(ch), ch.call):
            if call is None:
                continue
            sess = call.sessions.get(ch.ext)
            if sess is not None and sess.open and not sess.legs:
                sess.legs.add(ch)
                if sess not in ch.sessions:
                    ch.sessions.append(sess)
                return

    def estimate_answer(self, call: Call, until: float) -> None:
        """A call answered while the bridge was away: AMI shows that it is, not since
        when. The earliest it can have been answered is when the channel that answered
        was created (the employee's phone; for an outbound call the customer's leg), and
        not before the bridge last saw the call (`until`): the bridge takes that rather
        than the moment it looked, which would count the conversation so far as wait;
        Asterisk's own log corrects it (CallTracker.amend)."""
        customer = call.customer
        if customer is None:
            return
        if call.direction == model.OUT:
            times = [customer.created]
        else:
            _, component = self.topology.component(customer)
            times = [
                ch.created
                for ch in component
                if ch is not customer and ch.state == UP and ch.kind is not Kind.LOCAL
            ]
        if times and call.answered is not None:
            call.answered = max(call.start, until, min(min(times), call.answered))
            call.answer_guessed = True

    def report_adopted(self, ch: Channel, at: float, out: list[Output]) -> None:
        """An adopted channel ringing an employee, or dialling the customer, is reported
        from now on: what happened before the snapshot was not seen."""
        call = ch.call
        if call is None or ch.ended is not None or ch.state == UP:
            return
        topology = self.topology
        if ch.kind is Kind.EXTENSION and ch.role == DIALLED:
            target = topology.customer_call(ch)
            if target is None:
                return
            if target.offer_open and ch.ext not in target.offer:
                target.offer.append(ch.ext)
            if ch.state == RINGING:
                self.grammar.ring(target, ch, at, out)
        elif ch.kind is Kind.TRUNK and ch.customer_of is call and call.direction == model.OUT:
            placer = topology.placer_leg(call, ch)
            if placer.kind is Kind.EXTENSION:
                self.grammar.dial_out(call, placer, at, out)

    def catch_up(self, ch: Channel, ev: Event, at: float, out: list[Output]) -> None:
        """What changed on a known channel while we were not listening; the snapshot may
        be older than events already taken, so it only ever moves a channel forward."""
        bridge = ev.get("BridgeId") or ev.get("BridgeUniqueid")
        if bridge and ch.bridge is None:
            self.topology.join_bridge(ch, bridge)
        state = int_header(ev.get("ChannelState"), ch.state) or DOWN
        if state > ch.state:
            self.set_state(ch, state, at, out)

    def close_restored(self, call: Call, at: float, out: list[Output]) -> None:
        """A call taken back from a previous run, after the snapshot: closed if no channel
        of it lives, else the employees who left it while we were away are."""
        call.restored = False
        if not call.live:
            self.finish(call, at, out, "resync")
            return
        for sess in call.sessions.values():
            if sess.open and not sess.legs:
                self.grammar.close(sess, at, None, out)


def _role_from_state(ch: Channel, state: int) -> int:
    """Ring: the line rings us, it called in (unless a Dial made it); Ringing: the far
    end is being rung. Up with neither seen (events lost): the first channel of its
    call is taken to have called in."""
    if state == RING and ch.dialer is None:
        return CALLER
    if state == RINGING:
        return DIALLED
    if state == UP:
        call = ch.call
        return (
            CALLER if ch.dialer is None and call is not None and call.callid == ch.uid else DIALLED
        )
    return UNDECIDED


_OLDEST_CHANNEL = 366 * 86400  # seconds: a longer `Duration` is garbage, not a channel


def _snapshot_age(value: str | None) -> float:
    """CoreShowChannel `Duration` is `HH:MM:SS`; anything else (or a channel said to be
    up for more than a year, or for negative time) counts as just seen."""
    if not value:
        return 0.0
    try:
        parts = [int(p) for p in value.split(":")]
    except ValueError:
        return 0.0
    total = 0
    for p in parts:
        if p < 0:
            return 0.0
        total = total * 60 + p
    return float(total) if total <= _OLDEST_CHANNEL else 0.0
