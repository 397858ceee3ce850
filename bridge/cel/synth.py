"""One call's CEL rows as the AMI events Asterisk published for the same moments.

main/cel.c and main/manager_channels.c are two subscribers to the same stasis channel,
bridge and dial messages: a CEL row and an AMI event describe one change of one channel
snapshot. So the call tracker, which is right on real AMI traffic, can follow a call from
its CEL once each row is said as its event:

- CHAN_START: Newchannel (Ring for the call's first channel, Down for one born into a
  call), then for a requested channel DialBegin from its dialer and, for a phone that
  rang, Newstate Ringing;
- ANSWER: Newstate Up; for a dialled channel DialEnd ANSWER first;
- HANGUP: for a dialled channel not answered, DialEnd with its status; Hangup with the
  `hangupcause` of `extra`;
- BRIDGE_ENTER / BRIDGE_EXIT: BridgeEnter / BridgeLeave (`bridge_id` of `extra`);
- BLINDTRANSFER: BlindTransfer (transferer, transferee of `extra`);
- ATTENDEDTRANSFER: AttendedTransfer, and BridgeMerge when the rows after it show one
  bridge's channels in the other;
- APP_START Queue, any row running Queue: QueueCallerJoin (the queue: the first argument);
- APP_START MixMonitor; a `userfield` naming a sound file: VarSet MIXMONITOR_FILENAME;
- a row whose channel name changed (masquerade, pickup): Rename.

Every event carries the row's Linkedid (the tracker moves a channel whose Linkedid
changed, as after a pickup) and its EventTime as `Timestamp`.

What CEL does not say, inferred here (none of it changes a history, only events that a
backfill never sends as pop-ups):
- who dialled a channel: a Local `;2` half whose extension is that phone's; else the
  channel of the call running Dial/Queue/FollowMe whose argument names it; else a Local
  `;2` half that dialled nothing yet; else the channel running a dialling application;
  else the call's first channel;
- whether a phone rang: it did unless its hang-up cause says it could not (busy,
  unreachable, congestion, refused...);
- a dialled channel's DialStatus: ANSWER if it answered, else its dialer's `dialstatus`
  (main/cel.c keeps the first failure of a Dial) when it dialled that channel alone, else
  what its hang-up cause means (26 answered elsewhere: CANCEL).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from ..tracker.channels import device_of
from .rows import (
    ANSWER,
    APP_START,
    ATTENDEDTRANSFER,
    BLINDTRANSFER,
    BRIDGE_ENTER,
    BRIDGE_EXIT,
    CHAN_END,
    CHAN_START,
    HANGUP,
    CelRow,
)

Event = dict[str, str]

DIALLING_APPS = frozenset({"dial", "queue", "followme", "retrydial", "page"})
OUTGOING_LINE = "(Outgoing Line)"
SOUND_FILES = (".wav", ".wav49", ".gsm", ".mp3", ".ogg", ".opus", ".sln", ".g722", ".ulaw")
# Hang-up causes of a phone that never rang (Q.850): unallocated, no route, busy,
# unreachable, refused, out of order, invalid number, congestion, incompatible...
NOT_RUNG = frozenset({1, 2, 3, 17, 18, 20, 21, 22, 27, 28, 34, 38, 41, 42, 44, 57, 58, 88})
_BY_CAUSE = {
    17: "BUSY",
    26: "CANCEL",
    16: "CANCEL",
    127: "CANCEL",
    0: "NOANSWER",
    19: "NOANSWER",
    1: "NOANSWER",
    3: "NOANSWER",
    28: "NOANSWER",
    34: "CONGESTION",
    38: "CONGESTION",
    42: "CONGESTION",
}


@dataclass(eq=False)
class _Chan:
    """What the rows of one channel say, read ahead of the events."""

    uid: str
    rows: list[int] = field(default_factory=list)  # indexes into the call's rows
    requested: bool = False  # a Dial, Queue or Originate created it
    answered: bool = False
    cause: int | None = None
    dialstatus: str = ""
    dialer: str | None = None  # Uniqueid
    dials: list[str] = field(default_factory=list)
    name: str = ""
    ended: bool = False


def _int(value: object) -> int | None:
    try:
        return int(str(value))
    except ValueError:
        return None


def _resource(name: str) -> str:
    """`PJSIP/1001-00000001` -> `1001`; `Local/1002@queue-members-00000000;2` -> `1002`;
    `SIP/trunk-0000000a` -> `trunk`."""
    _, _, rest = device_of(name).partition("/")
    return rest.split("@", 1)[0]


def _tokens(data: str) -> set[str]:
    """The words of a dial string: `PJSIP/1001&PJSIP/1002,20,t` -> {PJSIP, 1001, ...}."""
    for sep in "&/@,:":
        data = data.replace(sep, " ")
    return set(data.split())


def _first_arg(data: str) -> str:
    return data.split(",", 1)[0].strip()


class CallSynth:
    """The AMI events of one call's rows (`events()`), in the rows' order."""

    def __init__(self, rows: Sequence[CelRow]) -> None:
        self.rows = list(rows)
        self.chans: dict[str, _Chan] = {}
        self._read_ahead()

    # ------------------------------------------------------------ read ahead

    def _read_ahead(self) -> None:
        for i, row in enumerate(self.rows):
            ch = self.chans.get(row.uniqueid)
            if ch is None:
                ch = self.chans[row.uniqueid] = _Chan(row.uniqueid, name=row.channame)
            ch.rows.append(i)
            if row.appdata == OUTGOING_LINE:
                ch.requested = True
            if row.eventtype == ANSWER:
                ch.answered = True
            elif row.eventtype == HANGUP:
                extra = row.extras()
                ch.cause = _int(extra.get("hangupcause", ""))
                ch.dialstatus = str(extra.get("dialstatus") or "")
        for ch in self.chans.values():
            first = self.rows[ch.rows[0]]
            born_into_call = first.uniqueid != first.linkedid
            if born_into_call and not first.channame.endswith(";2"):
                ch.requested = True
            if first.channame.endswith(";2") and not any(
                self.rows[i].appdata == OUTGOING_LINE for i in ch.rows
            ):
                ch.requested = False  # the half of a Local pair that runs the dialplan
        for ch in self.chans.values():
            if ch.requested:
                first_index = ch.rows[0]
                ch.dialer = self._dialer(ch, first_index)
                if ch.dialer is not None:
                    self.chans[ch.dialer].dials.append(ch.uid)

    def _live_at(self, index: int, exclude: str) -> list[_Chan]:
        """The channels up when row `index` was written (created before, not hung up)."""
        return [
            ch
            for ch in self.chans.values()
            if ch.uid != exclude
            and ch.rows[0] < index
            and not any(self.rows[i].eventtype in (HANGUP, CHAN_END) for i in ch.rows if i < index)
        ]

    def _app_at(self, ch: _Chan, index: int) -> tuple[str, str]:
        """What `ch` ran when row `index` was written: the first row of it after that
        moment names its application if it still ran it, else its last APP_START."""
        after = [i for i in ch.rows if i > index]
        if after:
            row = self.rows[after[0]]
            if row.appname.lower() in DIALLING_APPS:
                return row.appname, row.appdata
        before = [i for i in ch.rows if i < index and self.rows[i].eventtype == APP_START]
        if before:
            row = self.rows[before[-1]]
            return row.appname, row.appdata
        return "", ""

    def _dialer(self, dest: _Chan, index: int) -> str | None:
        row = self.rows[index]
        resource = _resource(row.channame)
        live = self._live_at(index, dest.uid)
        if not live:
            return None
        newest_first = sorted(live, key=lambda c: c.rows[0], reverse=True)
        locals_two = [c for c in newest_first if self.rows[c.rows[0]].channame.endswith(";2")]
        for c in locals_two:
            if resource and _resource(self.rows[c.rows[0]].channame) == resource:
                return c.uid
        dialling = []
        for c in newest_first:
            app, data = self._app_at(c, index)
            if app.lower() in DIALLING_APPS:
                if resource and resource in _tokens(data):
                    return c.uid
                dialling.append(c)
        for c in locals_two:
            if not c.dials:
                return c.uid
        if dialling:
            return dialling[0].uid
        first = row.linkedid
        if any(c.uid == first for c in live):
            return first
        return min(live, key=lambda c: c.rows[0]).uid

    # ---------------------------------------------------------------- events

    def events(self) -> Iterator[Event]:
        names: dict[str, str] = {}
        started: set[str] = set()
        queued: set[str] = set()
        recordings: set[str] = set()
        bridges: dict[str, str] = {}  # Uniqueid -> bridge it is in
        for i, row in enumerate(self.rows):
            uid = row.uniqueid
            ch = self.chans[uid]
            if uid not in started:
                started.add(uid)
                names[uid] = row.channame
                yield from self._start(ch, i, row)
                if row.eventtype == CHAN_START:
                    continue
            elif row.channame and names.get(uid) != row.channame:
                yield self._event(row, "Rename", Channel=names[uid], Newname=row.channame)
                names[uid] = row.channame
            if row.appname.lower() == "queue" and uid not in queued:
                queued.add(uid)
                yield self._event(row, "QueueCallerJoin", Queue=_first_arg(row.appdata))
            recording = self._recording(row)
            if recording and recording not in recordings:
                recordings.add(recording)
                yield self._event(row, "VarSet", Variable="MIXMONITOR_FILENAME", Value=recording)
            kind = row.eventtype
            if kind == ANSWER:
                if ch.dialer is not None:
                    yield self._dial_end(i, row, ch, "ANSWER")
                yield self._event(row, "Newstate", ChannelState="6", ChannelStateDesc="Up")
            elif kind == HANGUP:
                if ch.dialer is not None and not ch.answered:
                    yield self._dial_end(i, row, ch, self._dial_status(ch))
                cause = "" if ch.cause is None else str(ch.cause)
                yield self._event(row, "Hangup", Cause=cause)
                ch.ended = True
            elif kind == BRIDGE_ENTER:
                bridge = str(row.extras().get("bridge_id") or "")
                bridges[uid] = bridge
                yield self._event(row, "BridgeEnter", BridgeUniqueid=bridge)
            elif kind == BRIDGE_EXIT:
                bridge = str(row.extras().get("bridge_id") or "")
                bridges.pop(uid, None)
                yield self._event(row, "BridgeLeave", BridgeUniqueid=bridge)
            elif kind == BLINDTRANSFER:
                extra = row.extras()
                yield self._event(
                    row,
                    "BlindTransfer",
                    Result="Success",
                    TransfererUniqueid=uid,
                    TransfererLinkedid=row.linkedid,
                    TransfereeUniqueid=str(extra.get("transferee_channel_uniqueid") or ""),
                    Extension=str(extra.get("extension") or ""),
                    Context=str(extra.get("context") or ""),
                )
            elif kind == ATTENDEDTRANSFER:
                yield from self._attended(i, row, bridges)

    def _start(self, ch: _Chan, index: int, row: CelRow) -> Iterator[Event]:
        """A channel's first row: its Newchannel, then its DialBegin (and Ringing)."""
        first_of_call = row.uniqueid == row.linkedid and not ch.requested
        state = "4" if first_of_call else "0"
        yield self._event(
            row,
            "Newchannel",
            ChannelState=state,
            ChannelStateDesc="Ring" if first_of_call else "Down",
        )
        if not ch.requested:
            return
        dialer = self.chans.get(ch.dialer or "")
        begin = self._event(row, "DialBegin", **self._dest(row))
        for key in ("Channel", "Uniqueid", "Linkedid", "CallerIDNum", "Exten", "Context"):
            begin.pop(key, None)
        if dialer is not None:
            lead = self._row_at(dialer, index)
            app, data = self._app_at(dialer, index)
            begin.update(
                Channel=lead.channame,
                Uniqueid=dialer.uid,
                Linkedid=lead.linkedid,
                CallerIDNum=lead.cid_num,
                Exten=self._exten_at(dialer, index),
                Context=lead.context,
                DialString=_first_arg(data) if app.lower() == "dial" else _resource(row.channame),
            )
        yield begin
        if ch.answered or (ch.cause is not None and ch.cause in NOT_RUNG):
            return
        if not row.channame.startswith("Local/"):
            yield self._event(row, "Newstate", ChannelState="5", ChannelStateDesc="Ringing")

    def _attended(self, index: int, row: CelRow, bridges: dict[str, str]) -> Iterator[Event]:
        extra = row.extras()
        second = str(extra.get("channel2_uniqueid") or "")
        second_chan = self.chans.get(second)
        second_lid = ""
        if second_chan is not None:
            before = [i for i in second_chan.rows if i <= index] or second_chan.rows[:1]
            second_lid = self.rows[before[-1]].linkedid
        bridge1 = str(extra.get("bridge1_id") or "")
        bridge2 = str(extra.get("bridge2_id") or "")
        yield self._event(
            row,
            "AttendedTransfer",
            Result="Success",
            OrigTransfererUniqueid=row.uniqueid,
            OrigTransfererLinkedid=row.linkedid,
            SecondTransfererUniqueid=second,
            SecondTransfererLinkedid=second_lid,
            TransfereeUniqueid=str(extra.get("transferee_channel_uniqueid") or ""),
            TransferTargetUniqueid=str(extra.get("transfer_target_channel_uniqueid") or ""),
            DestType="Bridge" if bridge2 else "App",
        )
        if not (bridge1 and bridge2):
            return
        # No CEL row tells a bridge merge (bridge.c moves the channels silently): the rows
        # after the transfer show one bridge's channels leaving the other.
        for i in range(index + 1, len(self.rows)):
            later = self.rows[i]
            if later.eventtype != BRIDGE_EXIT:
                continue
            now_in = str(later.extras().get("bridge_id") or "")
            was_in = bridges.get(later.uniqueid, "")
            if was_in and now_in and was_in != now_in and {was_in, now_in} == {bridge1, bridge2}:
                for uid, bridge in bridges.items():
                    if bridge == was_in:
                        bridges[uid] = now_in
                yield self._event(
                    row, "BridgeMerge", FromBridgeUniqueid=was_in, ToBridgeUniqueid=now_in
                )
                return

    # --------------------------------------------------------------- helpers

    def _event(self, row: CelRow, name: str, **headers: str) -> Event:
        event = {
            "Event": name,
            "Channel": row.channame,
            "Uniqueid": row.uniqueid,
            "Linkedid": row.linkedid,
            "CallerIDNum": row.cid_num,
            "CallerIDName": row.cid_name,
            "Exten": row.exten,
            "Context": row.context,
            "Timestamp": f"{row.eventtime:.6f}",
        }
        event.update(headers)
        return event

    def _dest(self, row: CelRow) -> Event:
        return {
            "DestChannel": row.channame,
            "DestUniqueid": row.uniqueid,
            "DestLinkedid": row.linkedid,
            "DestCallerIDNum": row.cid_num,
            "DestExten": row.exten,
            "DestContext": row.context,
            "DestChannelState": "0",
        }

    def _dial_end(self, index: int, row: CelRow, ch: _Chan, status: str) -> Event:
        event = self._event(row, "DialEnd", DialStatus=status, **self._dest(row))
        dialer = self.chans[ch.dialer or ""]
        event.update(Uniqueid=dialer.uid, Channel=self._row_at(dialer, index).channame)
        event.pop("Linkedid", None)
        return event

    def _dial_status(self, ch: _Chan) -> str:
        dialer = self.chans.get(ch.dialer or "")
        if dialer is not None and dialer.dialstatus and len(dialer.dials) == 1:
            return dialer.dialstatus
        if ch.cause in (18, 20, 27, 41):
            return "CHANUNAVAIL"
        return _BY_CAUSE.get(ch.cause if ch.cause is not None else -1, "NOANSWER")

    def _row_at(self, ch: _Chan, index: int) -> CelRow:
        """The channel's last row written before row `index` (its first if none)."""
        found = ch.rows[0]
        for i in ch.rows:
            if i > index:
                break
            found = i
        return self.rows[found]

    def _exten_at(self, ch: _Chan, index: int) -> str:
        exten = ""
        for i in ch.rows:
            if i > index:
                break
            exten = self.rows[i].exten or exten
        return exten

    @staticmethod
    def _recording(row: CelRow) -> str:
        if row.eventtype == APP_START and row.appname.lower() == "mixmonitor":
            return _first_arg(row.appdata)
        field_ = row.userfield.strip()
        if field_ and field_.lower().endswith(SOUND_FILES):
            return field_
        return ""
