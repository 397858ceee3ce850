"""The channel graph of the calls in progress (SPEC section 3).

Which channels exist and which call (Linkedid) each belongs to, the halves of Local pairs,
bridges, who dialled whom, and which channel is a call's customer: the trunk channel that
called in, or the trunk channel an employee dialled out on. It answers the questions the
event grammar needs: whose customer a phone rings for (`customer_call`), who placed an
outbound call (`placer_leg`), who is connected to whom (`component`).

Plain bookkeeping: nothing here emits a CRM event or builds a record.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Collection, Iterable, Mapping

from . import model
from .channels import ChannelClassifier, Kind, local_peer_name
from .numbers import PhoneNormalizer, presented_name
from .state import CALLER, DIALLED, DOWN, RING, RINGING, SNAPSHOT, UNDECIDED, UP, Call, Channel

Event = Mapping[str, str]
_DEAD_MEMORY = 8192  # recently hung-up channels, so late events don't resurrect them
_MAX_CHAIN = 32


def int_header(value: str | None, default: int | None = None) -> int | None:
    try:
        return int(value) if value not in (None, "") else default
    except ValueError:
        return default


class Topology:
    def __init__(
        self, classifier: ChannelClassifier, numbers: PhoneNormalizer, main_number: str
    ) -> None:
        self.classifier = classifier
        self.numbers = numbers
        self.main_number = main_number
        self.channels: dict[str, Channel] = {}
        self.calls: dict[str, Call] = {}
        self.bridges: dict[str, set[Channel]] = {}
        self._dead: OrderedDict[str, None] = OrderedDict()
        self._finished: OrderedDict[str, None] = OrderedDict()
        # events are being lost (CallTracker.events_lost): calls made now are gapped
        self.losing = False

    # --------------------------------------------------------------- channels

    def finished_recently(self, callid: str) -> bool:
        return callid in self._finished

    def create(
        self, ev: Event, at: float, adopted: bool = False, prefix: str = ""
    ) -> Channel | None:
        """A channel first seen in this event (`prefix` "Dest": the dialled one)."""
        uid = ev.get(prefix + "Uniqueid")
        name = ev.get(prefix + "Channel")
        if not uid or not name or uid in self._dead:
            return None
        named = ev.get(prefix + "Linkedid")
        linkedid = named or uid  # old versions' Newchannel has no Linkedid
        if linkedid in self._finished:  # a straggler of a call already reported
            self.remember_dead(uid)
            return None
        state = int_header(ev.get(prefix + "ChannelState"), DOWN) or DOWN
        cls = self.classifier.classify(name)
        born = not prefix and ev.get("Event") == "Newchannel"  # this event made the channel
        if adopted:
            role = _adopted_role(ev, uid, linkedid, state)
        elif prefix or (named and named != uid):
            # born into another channel's call: requested by it (ast_channel_alloc takes
            # the requestor's Linkedid; a channel nobody requested starts its own)
            role = DIALLED
        else:
            role = CALLER if state in (RING, UP) else UNDECIDED
        ch = Channel(
            uid,
            name,
            cls.kind,
            cls.ext,
            at,
            state,
            role,
            ev.get(prefix + "CallerIDNum", ""),
            ev.get(prefix + "Exten", "") or ev.get("Extension", ""),
            # as the channel was made: the dialplan may rename the caller later (the
            # bridge's own contact look-up sets the CRM's name), a snapshot shows that
            ev.get("CallerIDName", "") if born else "",
        )
        self.channels[uid] = ch
        call = self.calls.get(linkedid)
        if call is None:
            call = self.calls[linkedid] = self._new_call(linkedid, at)
            call.provisional = not named
            # the call's own first channel (Linkedid is its Uniqueid) seen being created
            call.born_seen = born and named == uid and not self.losing
        elif named:
            call.provisional = False
        self._attach(ch, call)
        return ch

    def relink(self, ch: Channel, linkedid: str, at: float) -> Call | None:
        """The channel now carries another Linkedid (pickup, some transfers, or the first
        event naming the call of a channel whose Newchannel had no Linkedid): move it
        there and return the call it left, or None if it stays where it is."""
        old = ch.call
        if old is None or linkedid in self._finished:
            return None  # late news of a call already reported
        old.live.pop(ch.uid, None)
        if old.provisional and not old.seq:
            # never a call of its own: it only stood for the call not yet named
            if ch.customer_of is old:
                ch.customer_of = None
                old.customer = None
            old.legs = [leg for leg in old.legs if leg is not ch]
        new = self.calls.get(linkedid)
        if new is None:
            new = self.calls[linkedid] = self._new_call(linkedid, at)
        self._attach(ch, new)
        return old

    def _new_call(self, callid: str, at: float) -> Call:
        call = Call(callid, at)
        call.gapped = self.losing
        return call

    def drop(self, call: Call) -> None:
        """Forget a call that never had a customer (the picker's own "call")."""
        self.calls.pop(call.callid, None)

    def _attach(self, ch: Channel, call: Call) -> None:
        if ch.kind is Kind.LOCAL and ch.peer is None:
            peer_name = local_peer_name(ch.name)
            if peer_name:  # the other half of a Local pair is in the same call
                for other in call.live.values():
                    if other.name == peer_name:
                        ch.peer, other.peer = other, ch
                        break
        ch.call = call
        call.live[ch.uid] = ch
        call.legs.append(ch)
        if ch.kind is Kind.TRUNK:
            if call.first is None:
                call.first = ch
            if ch.role != UNDECIDED:
                self._place_trunk(ch, call)
        elif ch.kind is Kind.EXTENSION and call.first is None:
            call.first = ch
            call.placer = ch.ext

    def decide(self, ch: Channel, role: int) -> None:
        """What the channel is to its call is known now (SPEC section 3): a trunk
        channel that called in, or that was dialled, may be the call's customer."""
        if ch.role != UNDECIDED:
            return
        ch.role = role
        call = ch.call
        if ch.kind is Kind.TRUNK and call is not None and ch.ended is None:
            self._place_trunk(ch, call)

    def _place_trunk(self, ch: Channel, call: Call) -> None:
        """A trunk channel whose role is known: the customer of an inbound call if it
        called in, of an outbound one if it was dialled while the call had none."""
        if call.customer is None:
            if ch.role == CALLER and (call.first is ch or ch.uid == call.callid):
                # the carrier's channel started this call (a phone may have been seen first)
                call.first = ch
                self._set_customer(call, ch, model.IN)
            elif call.direction != model.IN:  # a call restored as inbound waits for its own
                self._set_customer(call, ch, model.OUT)
        elif ch.role == DIALLED and _failed_over(call):
            self._set_customer(call, ch, model.OUT)

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
            if not call.phone_name:
                call.phone_name = presented_name(ch.caller_name)
            if not call.diversion and ch.exten != "s":
                call.diversion = self.numbers.normalize(ch.exten)
            call.start = min(call.start, ch.created)
        elif not call.diversion:
            call.diversion = self.main_number

    def unlink(self, ch: Channel, at: float, cause: int | None) -> Call | None:
        """The channel hung up: out of its bridge, its pair and the live channels.
        Returns its call (still holding the channel among its legs), if any."""
        ch.ended = at
        ch.cause = cause
        if ch.bridge:
            self._out_of_bridge(ch)
        # (it stays in its dialer's `dials`: readers skip ended channels, and the lists
        # go with the call)
        if ch.peer is not None and ch.peer.peer is ch:
            ch.peer.peer = None if ch.peer.ended is not None else ch.peer.peer
        self.channels.pop(ch.uid, None)
        self.remember_dead(ch.uid)
        call = ch.call
        if call is None:
            return None
        call.live.pop(ch.uid, None)
        if ch is call.customer:
            call.customer_end = at
            call.cause = cause
        if call.offer_open and ch.ext in call.offer:
            call.offer_open = False
        return call

    def forget_channel(self, ch: Channel, at: float) -> None:
        """Drop a channel of a call closed by a fault, by plain bookkeeping only (`unlink`
        may be what failed): its later events are stragglers."""
        if ch.ended is None:
            ch.ended = at
        if ch.bridge:
            self._out_of_bridge(ch)
        self.channels.pop(ch.uid, None)
        self.remember_dead(ch.uid)
        if ch.call is not None:
            ch.call.live.pop(ch.uid, None)

    def remember_dead(self, uid: str) -> None:
        self._dead[uid] = None
        if len(self._dead) > _DEAD_MEMORY:
            self._dead.popitem(last=False)

    def forget(self, call: Call) -> None:
        """The call was reported: later events of it are stragglers."""
        self.retire(call)
        for ch in call.legs:  # break reference cycles so memory goes at once
            if ch.customer_of is call:
                ch.customer_of = None  # a moved, still live leg never speaks for it again
            if ch.dials:
                ch.dials.clear()
            if ch.ended is not None:
                ch.call = None
                ch.dialer = None
                ch.peer = None
        call.legs = []
        call.sessions = {}

    def retire(self, call: Call) -> None:
        """No longer an open call, and never again one."""
        self.calls.pop(call.callid, None)
        self._finished[call.callid] = None
        if len(self._finished) > _DEAD_MEMORY:
            self._finished.popitem(last=False)

    # ---------------------------------------------------------------- bridges

    def join_bridge(self, ch: Channel, bridge: str) -> None:
        ch.bridge = bridge
        self.bridges.setdefault(bridge, set()).add(ch)

    def enter_bridge(self, ch: Channel, bridge: str, swapped: Channel | None) -> None:
        if ch.bridge and ch.bridge != bridge:
            self._out_of_bridge(ch)
        ch.bridge = bridge
        members = self.bridges.setdefault(bridge, set())
        members.add(ch)
        if swapped is not None and swapped.bridge == bridge:
            # it takes that channel's place (attended transfer): Asterisk 22 says so in
            # the BridgeEnter and sends the other's BridgeLeave only afterwards
            members.discard(swapped)
            swapped.bridge = None

    def leave_bridge(self, ch: Channel, bridge: str | None) -> None:
        if ch.bridge == bridge:
            self._out_of_bridge(ch)

    def destroy_bridge(self, bridge: str) -> None:
        for ch in self.bridges.pop(bridge, ()):
            ch.bridge = None

    def _out_of_bridge(self, ch: Channel) -> None:
        """Out of its bridge; a bridge nobody is in is forgotten at once, so a lost
        `BridgeDestroy` leaves nothing behind."""
        bridge = ch.bridge
        if not bridge:
            return
        ch.bridge = None
        members = self.bridges.get(bridge)
        if members is not None:
            members.discard(ch)
            if not members:
                del self.bridges[bridge]

    def merge_bridges(self, source_id: str, target_id: str) -> Channel | None:
        """Everyone in the source bridge is now in the target: returns one of them."""
        source = self.bridges.pop(source_id, set())
        if not source or not target_id:
            return None
        target = self.bridges.setdefault(target_id, set())
        for ch in source:
            ch.bridge = target_id
            target.add(ch)
        return next(iter(source))

    # ---------------------------------------------------------- who is who

    def root(self, ch: Channel) -> Channel:
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

    def placer_leg(self, call: Call, customer: Channel) -> Channel:
        """The employee's leg behind an outbound customer leg.

        Usually the dial chain starts at the phone; a click-to-call through a Local channel
        (`Originate Local/1001@from-internal`) starts at the Local half that was never
        dialled, and the employee is then the call's first phone."""
        root = self.root(customer)
        first = call.first
        if (
            root.kind is not Kind.EXTENSION
            and first is not None
            and first.kind is Kind.EXTENSION
            and first.ended is None
        ):
            return first
        return root

    def customer_call(self, ch: Channel) -> Call | None:
        """The call whose customer this channel is ringing or talking for, if any."""
        root = self.root(ch)
        if root.customer_of is not None:
            return root.customer_of
        if root is ch:
            call = ch.call
            if ch.dialer == SNAPSHOT and call is not None:
                # dialled before we were listening, by someone in an inbound call: take
                # it for its customer (a consultation within that call would count too)
                if (
                    call.customer is not None
                    and call.direction == model.IN
                    and ch is not call.first
                ):
                    return call
            return None
        if root.bridge or root.peer is not None:
            # the chain starts at a channel a transfer connected with the customer since
            # (a Local half put in the customer's bridge, a consultation merged into it)
            customer, _ = self.component(root)
            if customer is not None:
                return customer.customer_of
        return None

    def phones_below(self, nodes: Collection[Channel]) -> list[Channel]:
        """Employees' phones these channels dial now, through Local pairs: they ring
        with whoever those channels are connected to."""
        found: list[Channel] = []
        todo = [node for node in nodes if node.dials]
        if not todo:
            return found
        seen = set(nodes)
        while todo:
            node = todo.pop()
            for dest in node.dials:
                if dest in seen or dest.ended is not None:
                    continue
                seen.add(dest)
                if dest.kind is Kind.EXTENSION:
                    found.append(dest)
                elif dest.kind is Kind.LOCAL:
                    todo.append(dest)
                    peer = dest.peer
                    if peer is not None and peer not in seen:
                        seen.add(peer)
                        todo.append(peer)
        return found

    def redial(self, dest: Channel, dialer: Channel) -> None:
        """`dialer` dials `dest` now (it took the place of the channel that did)."""
        old = dest.dialer
        if old is dialer:
            return
        if isinstance(old, Channel) and dest in old.dials:
            old.dials.remove(dest)
        dest.dialer = dialer
        if dest.ended is None:
            dialer.dials.append(dest)

    def component(self, start: Channel) -> tuple[Channel | None, list[Channel]]:
        """The live channels connected to `start` through bridges and Local pairs, and the
        customer's channel among them (None if no customer is connected)."""
        component: list[Channel] = []
        seen = {start}
        todo = [start]
        customer: Channel | None = None
        bridges = self.bridges
        while todo:
            ch = todo.pop()
            component.append(ch)
            if ch.customer_of is not None and ch.ended is None and customer is None:
                customer = ch
            neighbours: Iterable[Channel] = bridges.get(ch.bridge, ()) if ch.bridge else ()
            for other in (*neighbours, ch.peer):
                if other is not None and other not in seen and other.ended is None:
                    seen.add(other)
                    todo.append(other)
        return customer, component


def _adopted_role(ev: Event, uid: str, linkedid: str, state: int) -> int:
    """What a channel first seen in a channel snapshot is to its call: Asterisk marks
    the channels a Dial, Queue or Originate created as running `(Outgoing Line)`."""
    if ev.get("ApplicationData") == "(Outgoing Line)" or state == RINGING:
        return DIALLED
    if state == RING:
        return CALLER
    return CALLER if uid == linkedid else DIALLED


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
