"""The same calls as other Asterisk versions and channel drivers shape them.

Every recorded trace of both labs is rewritten by transformations that keep what
happened and change only the shape of the events, as Asterisk's source says other
versions, drivers or timings give it; every variant must give the outcome of its
original (and, through the original, the scenario's expected outcome). The
transformations, with the source they follow (branch 18 unless said):

- `born_down`: chan_sip creates an inbound channel Down and sets Ring just after
  (channels/chan_sip.c handle_request_invite: `sip_new(p, AST_STATE_DOWN, ...)`, then
  `ast_setstate(c, AST_STATE_RING)` before `ast_pbx_start`): a `Newchannel` Down and a
  `Newstate` Ring, where chan_pjsip's `Newchannel` already says Ring.
- `born_ringing`: the other way round, for the chan_sip lab: chan_pjsip, chan_iax2
  (`ast_iax2_new(..., AST_STATE_RING, ...)`) and chan_dahdi's PRI (sig_pri.c, the
  `AST_STATE_RING` of an incoming SETUP) create the caller's channel in Ring.
- `tech`: the same channels named `SIP/…`, `PJSIP/…`, `IAX2/<peer>-<callno>` (chan_iax2
  names channels `IAX2/%s-%d`), or a carrier on DAHDI: ISDN PRI (chan_dahdi.c
  dahdi_new: `DAHDI/i<span>/<number>-<seq hex>`, the caller's number inbound, the dialled
  one outbound; sig_pri creates outgoing channels Reserved) or analog lines (`DAHDI/<n>-1`).
- `no_timestamp`: no `Timestamp` header (manager.conf `timestampevents = no`, the
  default): the receipt time counts.
- `no_newchannel_linkedid`: `Newchannel` without `Linkedid` (versions before 12): the
  channel's own Uniqueid until an event names its call.
- `reinterleaved`: the calls of a trace started at other moments (each shifted by up to
  2 s): their events interleave otherwise, each call's own order kept.
- `concurrent_with`: a second scenario (ids, channel names and bridges renamed) going on
  at the same time, interleaved with the first.
- `dial_published_late`: app_dial, app_queue and dial.c publish `DialBegin` after
  `ast_call()` returned (app_dial.c dial_exec_full, main/dial.c begin_dial_channel):
  by then the dialled side (its driver's thread, a Local half's dialplan) may have
  sent its own events, a `Newstate` Ringing among them.
- `joined_*`: the bridge connects mid-call (once a Dial began, while a phone rings, or
  once the customer is answered): the trace starts with the answer to its
  `CoreShowChannels` (built from the events before: state, bridge, `Application`/
  `ApplicationData`, `Duration`), as the daemon's resync takes it; what ended before is
  not seen.
"""

from __future__ import annotations

import heapq
import json
import random
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from bridge.devtools.fake_ami import SNAPSHOT_FIELDS
from bridge.replay import crm_payloads, tracked
from bridge.tracker.model import CallEvent, CallRecord, Output
from bridge.tracker.tracker import CallTracker
from tests.support.traces import grammar_violations
from tests.unit.test_tracker_traces import LAB18, LAB22, LABS, Events, Lab

Event = dict[str, str]
Transform = Callable[[Events], Events]

# ----------------------------------------------------------------------------- shapes

_STATE_DESC = {"0": "Down", "1": "Rsrvd", "4": "Ring", "5": "Ringing", "6": "Up"}


def _channel_keys(ev: Event) -> Iterator[str]:
    """Headers naming a channel: Channel, DestChannel, TransfererChannel..."""
    return (k for k in ev if k.endswith("Channel") or k == "Newname")


def _is_local(name: str) -> bool:
    return name.startswith("Local/")


def _set_state(ev: Event, state: str, prefix: str = "") -> None:
    ev[prefix + "ChannelState"] = state
    ev[prefix + "ChannelStateDesc"] = _STATE_DESC[state]


def born_down(evs: Events) -> Events:
    out: Events = []
    for t, ev in evs:
        if (
            ev.get("Event") == "Newchannel"
            and ev.get("ChannelState") == "4"
            and not _is_local(ev.get("Channel", ""))
        ):
            down = dict(ev)
            _set_state(down, "0")
            out.append((t, down))
            out.append((t, {**ev, "Event": "Newstate"}))
        else:
            out.append((t, dict(ev)))
    return out


def born_ringing(evs: Events) -> Events:
    """A `Newchannel` Down whose channel next changes state to Ring: one `Newchannel` in
    Ring (and the events in between, chan_sip's VarSets of SIPCALLID..., in Ring too)."""
    out: Events = []
    pending: dict[str, list[int]] = {}  # uid -> indexes in out since its Newchannel Down
    for t, ev in evs:
        uid = ev.get("Uniqueid", "")
        since = pending.get(uid) if uid else None
        if since is not None:
            if ev.get("Event") == "Newstate" and ev.get("ChannelState") == "4":
                for i in pending.pop(uid):
                    _set_state(out[i][1], "4")
                continue
            if ev.get("ChannelState") != "0":
                del pending[uid]
            else:
                since.append(len(out))
        out.append((t, dict(ev)))
        if (
            ev.get("Event") == "Newchannel"
            and ev.get("ChannelState") == "0"
            and not _is_local(ev.get("Channel", ""))
        ):
            pending[uid] = [len(out) - 1]
    return out


def _renamed(evs: Events, rename: Callable[[str], str]) -> Events:
    out: Events = []
    for t, ev in evs:
        new = dict(ev)
        for key in list(_channel_keys(ev)):
            new[key] = rename(ev[key])
        out.append((t, new))
    return out


def tech(name: str) -> Transform:
    """Phones and carrier on SIP, PJSIP or IAX2 (`IAX2/<peer>-<callno>`)."""

    def rename(value: str) -> str:
        m = re.match(r"(?:PJSIP|SIP)/([^-/]+)-([0-9a-f]+)$", value)
        if m is None:
            return value
        if name == "IAX2":
            return f"IAX2/{m[1]}-{int(m[2], 16) + 1}"
        return f"{name}/{m[1]}-{m[2]}"

    def transform(evs: Events) -> Events:
        return _renamed(evs, rename)

    transform.__name__ = f"tech_{name}"
    return transform


def _trunk_channels(evs: Events) -> dict[str, dict[str, str]]:
    """The carrier's channels (by name): whether each called in, and its number."""
    found: dict[str, dict[str, str]] = {}
    callers: set[str] = set()
    for _, ev in evs:
        name = ev.get("Channel", "")
        if "/trunk-" in name and name not in found and ev.get("Event") == "Newchannel":
            found[name] = {"number": re.sub(r"\D", "", ev.get("CallerIDNum", ""))}
        if ev.get("Event") in ("Newchannel", "Newstate") and ev.get("ChannelState") == "4":
            callers.add(name)
        dest = ev.get("DestChannel", "")
        if ev.get("Event") == "DialBegin" and "/trunk-" in dest:
            entry = found.setdefault(dest, {})
            dialled = re.sub(r"\D", "", ev.get("DialString", "").split("@")[0])
            entry["number"] = dialled or entry.get("number", "")
    for name, entry in found.items():
        entry["caller"] = "yes" if name in callers else ""
    return found


def dahdi(analog: bool) -> Transform:
    """The carrier on DAHDI: PRI (`DAHDI/i1/<number>-<seq>`, outgoing channels born
    Reserved) or analog lines (`DAHDI/<line>-1`); the phones keep their names."""

    def transform(evs: Events) -> Events:
        trunks = _trunk_channels(evs)
        names: dict[str, str] = {}
        for seq, (name, entry) in enumerate(trunks.items(), 1):
            if analog:
                names[name] = f"DAHDI/{(seq - 1) % 24 + 1}-1"
            else:
                names[name] = f"DAHDI/i1/{entry.get('number') or 's'}-{seq:x}"
        out = _renamed(evs, lambda v: names.get(v, v))
        if not analog:
            for _, ev in out:
                if (
                    ev.get("Event") == "Newchannel"
                    and ev.get("Channel", "").startswith("DAHDI/")
                    and ev.get("ChannelState") == "0"
                ):
                    _set_state(ev, "1")
        return out

    transform.__name__ = "dahdi_analog" if analog else "dahdi_pri"
    return transform


def no_timestamp(evs: Events) -> Events:
    return [(t, {k: v for k, v in ev.items() if k != "Timestamp"}) for t, ev in evs]


def no_newchannel_linkedid(evs: Events) -> Events:
    return [
        (t, {k: v for k, v in ev.items() if not (k == "Linkedid" and ev["Event"] == "Newchannel")})
        for t, ev in evs
    ]


# ------------------------------------------------------------------- interleavings


def _ids(ev: Event) -> list[str]:
    return [
        v
        for k, v in ev.items()
        if v and (k.endswith(("Uniqueid", "Linkedid", "UniqueID", "LinkedID")))
    ]


def calls_of(evs: Events) -> list[int]:
    """Each event's call (a cluster of ids that events tie together); events naming no
    channel (device states, queue members) go with the event before them."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for _, ev in evs:
        ids = _ids(ev)
        for other in ids[1:]:
            parent[find(other)] = find(ids[0])
    roots: dict[str, int] = {}
    result: list[int] = []
    last = -1
    for _, ev in evs:
        ids = _ids(ev)
        if ids:
            last = roots.setdefault(find(ids[0]), len(roots))
        result.append(max(last, 0))
    return result


def _time(t: float, ev: Event) -> float:
    return float(ev["Timestamp"]) if "Timestamp" in ev else t


def _shifted(t: float, ev: Event, by: float) -> tuple[float, Event]:
    new = dict(ev)
    if "Timestamp" in new:
        new["Timestamp"] = f"{float(new['Timestamp']) + by:.6f}"
    return t + by, new


def _merge(streams: list[Events], rng: random.Random) -> Events:
    """Merge per-call streams by time, each stream's order kept, ties broken at random."""
    heap: list[tuple[float, float, int, int]] = []
    for i, stream in enumerate(streams):
        if stream:
            heapq.heappush(heap, (_time(*stream[0]), rng.random(), i, 0))
    out: Events = []
    while heap:
        _, _, i, j = heapq.heappop(heap)
        out.append(streams[i][j])
        if j + 1 < len(streams[i]):
            heapq.heappush(heap, (_time(*streams[i][j + 1]), rng.random(), i, j + 1))
    return out


def reinterleaved(seed: int, spread: float = 2.0) -> Transform:
    def transform(evs: Events) -> Events:
        rng = random.Random(seed)
        calls = calls_of(evs)
        streams: list[Events] = [[] for _ in range(max(calls, default=0) + 1)]
        offsets = [rng.uniform(-spread, spread) for _ in streams]
        for (t, ev), call in zip(evs, calls, strict=True):
            streams[call].append(_shifted(t, ev, offsets[call]))
        return _merge(streams, rng)

    transform.__name__ = f"reinterleaved_{seed}"
    return transform


RENAMED_SEQ = 50_000  # added to the partner's Uniqueid sequence numbers
RENAMED_TAIL = 0x8000  # added to the partner's channel name numbers


def renamed_id(value: str) -> str:
    m = re.fullmatch(r"(\d+)\.(\d+)", value)
    if m:
        return f"{m[1]}.{int(m[2]) + RENAMED_SEQ}"
    return value[:-4] + "beef" if len(value) > 4 else value + "-beef"


def _renamed_channel(value: str) -> str:
    def bump(m: re.Match[str]) -> str:
        return f"-{int(m[1], 16) + RENAMED_TAIL:08x}{m[2] or ''}"

    return re.sub(r"-([0-9a-f]{8})(;[12])?$", bump, value)


def partner_of(evs: Events) -> Events:
    """The same events as another call of the same PBX: other ids, names, bridges."""
    out: Events = []
    for t, ev in evs:
        new = dict(ev)
        for key, value in ev.items():
            if value and key.endswith(("Uniqueid", "Linkedid", "UniqueID", "LinkedID")):
                new[key] = renamed_id(value)
        for key in list(_channel_keys(ev)):
            new[key] = _renamed_channel(ev[key])
        out.append((t, new))
    return out


def concurrent_with(partner: Events, seed: int) -> Transform:
    """`partner` (renamed) starts while the trace's first call is going on."""

    def transform(evs: Events) -> Events:
        rng = random.Random(seed)
        calls = [(t, ev) for t, ev in evs if _ids(ev)]
        others = [(t, ev) for t, ev in partner_of(partner) if _ids(ev)]
        if not calls or not others:
            return evs
        start, end = _time(*calls[0]), _time(*calls[-1])
        target = start + rng.uniform(0, max(0.0, end - start) / 2)
        ts_delta = target - _time(*others[0])
        t_delta = calls[0][0] + (target - start) - others[0][0]
        moved: Events = []
        for t, ev in others:
            new = dict(ev)
            if "Timestamp" in new:
                new["Timestamp"] = f"{float(new['Timestamp']) + ts_delta:.6f}"
            moved.append((t + t_delta, new))
        return _merge([list(evs), moved], rng)

    transform.__name__ = f"concurrent_{seed}"
    return transform


def dial_published_late(evs: Events) -> Events:
    """Each `DialBegin` published after the dialled side's first events: those of the
    dialled channel, its Local half and what that half dials, up to the first phone or
    trunk of that side ringing (the 180 came before the dialler's thread published)."""
    dialer_of = {
        ev["DestUniqueid"]: ev.get("Uniqueid", "")
        for _, ev in evs
        if ev.get("Event") == "DialBegin" and ev.get("DestUniqueid")
    }
    halves: dict[str, str] = {}
    peer: dict[str, str] = {}
    for _, ev in evs:
        name, uid = ev.get("Channel", ""), ev.get("Uniqueid", "")
        if ev.get("Event") == "Newchannel" and name.startswith("Local/") and name[-2:-1] == ";":
            twin = halves.get(name[:-1] + ("2" if name.endswith("1") else "1"))
            if twin:
                peer[uid], peer[twin] = twin, uid
            halves[name] = uid

    def side(dest: str) -> set[str]:
        found, todo = set(), [dest]
        while todo:
            uid = todo.pop()
            if uid in found:
                continue
            found.add(uid)
            todo += [p for p in (peer.get(uid),) if p]
            todo += [d for d, dialer in dialer_of.items() if dialer == uid]
        return found

    out = [(t, dict(ev)) for t, ev in evs]
    i = 0
    while i < len(out):
        t, ev = out[i]
        if ev.get("Event") != "DialBegin" or not ev.get("Uniqueid") or not ev.get("DestUniqueid"):
            i += 1
            continue
        members = side(ev["DestUniqueid"])
        ahead: list[int] = []
        for j in range(i + 1, len(out)):
            other = out[j][1]
            if other.get("Uniqueid") not in members:
                continue
            if other.get("Event") not in _AHEAD:
                break
            ahead.append(j)
            if (
                other.get("Event") == "Newstate"
                and other.get("ChannelState") == "5"
                and not _is_local(other.get("Channel", ""))
            ):
                break
        moved = []
        for j in ahead:
            mt, mev = out[j]
            if "Timestamp" in mev and "Timestamp" in ev:
                mev["Timestamp"] = ev["Timestamp"]
            moved.append((t, mev))
        for j in reversed(ahead):
            del out[j]
        out[i:i] = moved
        i += len(moved) + 1
    return out


_AHEAD = {
    "Newchannel",
    "Newstate",
    "Newexten",
    "VarSet",
    "NewConnectedLine",
    "NewCallerid",
    "DialBegin",
    "DialState",
    "LocalBridge",
}


# ----------------------------------------------------------------- joining mid-call


@dataclass
class _Shown:
    ev: Event
    created: float
    bridge: str = ""
    app: str = ""
    data: str = ""


def _duration(seconds: float) -> str:
    s = max(0, int(seconds))
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def snapshot(evs: Events) -> list[Event]:
    """The `CoreShowChannel` lines Asterisk would answer after these events
    (main/manager.c action_coreshowchannels: the channel's snapshot, its application,
    `Duration` since creation, `BridgeId`)."""
    live: dict[str, _Shown] = {}
    now = 0.0
    for t, ev in evs:
        now = _time(t, ev)
        name = ev.get("Event")
        uid = ev.get("Uniqueid", "")
        if name == "Hangup":
            live.pop(uid, None)
            continue
        if name == "Newchannel" and uid:
            live[uid] = _Shown({}, now)
        shown = live.get(uid)
        if shown is not None and ev.get("Channel"):
            shown.ev.update(
                {k: v for k, v in ev.items() if k in _SHOWN_HEADERS and not k.startswith("Dest")}
            )
            if name == "BridgeEnter":
                shown.bridge = ev.get("BridgeUniqueid", "")
            elif name == "BridgeLeave" and shown.bridge == ev.get("BridgeUniqueid"):
                shown.bridge = ""
            elif name == "Newexten":
                shown.app, shown.data = ev.get("Application", ""), ev.get("AppData", "")
        dest = live.get(ev.get("DestUniqueid", ""))
        if dest is not None:
            dest.ev.update(
                {
                    k[4:]: v
                    for k, v in ev.items()
                    if k.startswith("Dest") and k[4:] in _SHOWN_HEADERS
                }
            )
            if name == "DialBegin":
                dest.app, dest.data = "AppDial", "(Outgoing Line)"
        if name == "BridgeDestroy":
            for other in live.values():
                if other.bridge == ev.get("BridgeUniqueid"):
                    other.bridge = ""
    return [
        {
            "Event": "CoreShowChannel",
            "ActionID": "resync-1",
            **shown.ev,
            "Application": shown.app,
            "ApplicationData": shown.data,
            "Duration": _duration(now - shown.created),
            "BridgeId": shown.bridge,
        }
        for shown in live.values()
        if shown.ev.get("Channel")
    ]


_SHOWN_HEADERS = set(SNAPSHOT_FIELDS)  # what CoreShowChannel carries of a snapshot


def _dialling(evs: Events) -> int | None:
    """Right after the first Dial (or Queue, FollowMe, Originate) begins."""
    for i, (_, ev) in enumerate(evs):
        if ev.get("Event") == "DialBegin":
            return i + 1
    return None


def _ringing(evs: Events) -> int | None:
    """Right after the first phone or trunk channel starts ringing."""
    for i, (_, ev) in enumerate(evs):
        if ev.get("Event") == "Newstate" and ev.get("ChannelState") == "5":
            return i + 1
    return None


def _talking(evs: Events) -> int | None:
    """Right after the customer is first bridged with someone: a bridge holding a trunk
    channel gets its second channel."""
    members: dict[str, set[str]] = {}
    for i, (_, ev) in enumerate(evs):
        if ev.get("Event") == "BridgeEnter":
            inside = members.setdefault(ev.get("BridgeUniqueid", ""), set())
            inside.add(ev.get("Channel", ""))
            if len(inside) >= 2 and any("/trunk-" in name for name in inside):
                return i + 1
        elif ev.get("Event") == "BridgeLeave":
            members.get(ev.get("BridgeUniqueid", ""), set()).discard(ev.get("Channel", ""))
    return None


def joined(point: str) -> Transform:
    """The bridge connects right after the moment `point` names: the events before
    are replaced by the snapshot Asterisk would send then."""
    find = {"dialling": _dialling, "ringing": _ringing, "talking": _talking}[point]

    def transform(evs: Events) -> Events:
        cut = find(evs)
        if cut is None:
            return evs
        t = evs[cut - 1][0]
        lines = snapshot(evs[:cut])
        complete = {"Event": "CoreShowChannelsComplete", "ActionID": "resync-1"}
        complete["ListItems"] = str(len(lines))
        return [(t, line) for line in lines] + [(t, complete)] + evs[cut:]

    transform.__name__ = f"joined_{point}"
    return transform


def join_index(evs: Events) -> int:
    """Where a joined variant's own events start (after its snapshot); their first one's
    time is the join's on the trace's clock."""
    for i, (_, ev) in enumerate(evs):
        if ev.get("Event") == "CoreShowChannelsComplete":
            return i + 1
    return 0


# ----------------------------------------------------------------- the variants


@dataclass(frozen=True, eq=False)  # hashed by identity: the module's own instances
class Variant:
    name: str
    transforms: tuple[Transform, ...]
    pbx: dict[str, Any] = field(default_factory=dict)  # [pbx] overrides
    labs: tuple[str, ...] = ("asterisk22", "asterisk18")
    joined: bool = False

    def apply(self, evs: Events) -> Events:
        for transform in self.transforms:
            evs = transform(evs)
        return evs


def _variants() -> list[Variant]:
    variants = [
        Variant("chan_sip_birth", (born_down,), labs=("asterisk22",)),
        Variant("pjsip_birth", (born_ringing,), labs=("asterisk18",)),
        Variant("no_timestamp", (no_timestamp,)),
        Variant("no_newchannel_linkedid", (no_newchannel_linkedid,)),
        Variant("dial_published_late", (dial_published_late,)),
        Variant("reinterleaved_1", (reinterleaved(1),)),
        Variant("reinterleaved_2", (reinterleaved(2),)),
        Variant("joined_dialling", (joined("dialling"),), joined=True),
        Variant("joined_ringing", (joined("ringing"),), joined=True),
        Variant("joined_talking", (joined("talking"),), joined=True),
    ]
    for lab, techs in (("asterisk22", ("SIP", "IAX2")), ("asterisk18", ("PJSIP", "IAX2"))):
        for name in techs:
            variants.append(
                Variant(
                    f"{name.lower()}_names",
                    (tech(name),),
                    {"trunks": [f"{name}/trunk-*"], "extensions": [f"{name}/*"]},
                    (lab,),
                )
            )
    for analog in (False, True):
        variants.append(
            Variant(
                "dahdi_analog_trunk" if analog else "dahdi_pri_trunk",
                (dahdi(analog),),
                {"trunks": ["DAHDI/*"]},
            )
        )
    # the oldest shape of all: chan_sip births, no Timestamp, Newchannel without Linkedid
    variants.append(
        Variant(
            "asterisk_old_sip",
            (born_down, tech("SIP"), no_timestamp, no_newchannel_linkedid),
            {"trunks": ["SIP/trunk-*"], "extensions": ["SIP/*"]},
            ("asterisk22",),
        )
    )
    variants.append(
        Variant(
            "asterisk_old_sip",
            (no_timestamp, no_newchannel_linkedid, dial_published_late),
            labs=("asterisk18",),
        )
    )
    return variants


VARIANTS = _variants()


def _partner(lab: Lab, name: str) -> str:
    names = lab.scenarios()
    return names[(names.index(name) + 1) % len(names)] if name in names else names[0]


def cases() -> list[Any]:
    params = []
    for lab in LABS:
        for name in lab.traces():
            for variant in VARIANTS:
                if lab.name in variant.labs:
                    params.append(
                        pytest.param(lab, name, variant, id=f"{lab}-{name}-{variant.name}")
                    )
    return params


# ----------------------------------------------------------------- outcomes


@dataclass
class Outcome:
    """What the CRM learns of each call: its record and each employee's events."""

    records: dict[str, CallRecord]
    events: dict[str, dict[str, list[CallEvent]]]


def outcome_of(outputs: Iterable[Output]) -> Outcome:
    records: dict[str, CallRecord] = {}
    events: dict[str, dict[str, list[CallEvent]]] = {}
    for o in outputs:
        if isinstance(o, CallRecord):
            records[o.callid] = o
        else:
            assert isinstance(o, CallEvent), o  # no call is parked here
            events.setdefault(o.callid, {}).setdefault(o.ext, []).append(o)
    return Outcome(records, events)


def run_steps(tracker: CallTracker, evs: Events) -> list[tuple[int, list[Output]]]:
    """Outputs per event (by index in `evs`), a snapshot taken as replay takes it."""
    return list(enumerate(tracked(evs, tracker)))


def _types(events: list[CallEvent]) -> list[str]:
    return [e.type for e in events]


def _seen_after(events: list[CallEvent], since: float) -> list[str]:
    """An employee's events, less the sequences that were over before `since`."""
    kept: list[str] = []
    segment: list[CallEvent] = []
    for e in events:
        segment.append(e)
        if e.type in ("CANCELLED", "COMPLETED"):
            if segment[-1].at >= since:
                kept += _types(segment)
            segment = []
    return kept + _types(segment)


def differences(
    want: Outcome,
    got: Outcome,
    rename: Callable[[str], str] = lambda x: x,
    joined_at: float | None = None,
) -> list[str]:
    """How `got` differs from `want`, call by call. A joined variant sees only the calls
    still up at the join, and each employee's events from there on."""
    problems: list[str] = []
    expected_ids = {rename(c): r for c, r in want.records.items()}
    was = {rename(c): c for c in want.records}
    if joined_at is not None:
        expected_ids = {c: r for c, r in expected_ids.items() if r.end >= joined_at}
    if set(expected_ids) != set(got.records):
        problems.append(f"calls {sorted(got.records)}, expected {sorted(expected_ids)}")
    for callid, exp in expected_ids.items():
        rec = got.records.get(callid)
        if rec is None:
            continue
        for key in ("direction", "status", "ext", "user", "phone", "diversion", "group"):
            if getattr(rec, key) != getattr(exp, key):
                problems.append(f"{callid}: {key} {getattr(rec, key)!r}, not {getattr(exp, key)!r}")
        slack = 1
        if joined_at is None and abs(rec.duration - exp.duration) > slack:
            problems.append(f"{callid}: duration {rec.duration}, not {exp.duration}")
        if joined_at is not None and rec.duration > exp.duration + slack:
            problems.append(f"{callid}: duration {rec.duration}, more than {exp.duration}")
        want_events = {
            ext: (_types(evs) if joined_at is None else _seen_after(evs, joined_at))
            for ext, evs in want.events.get(was[callid], {}).items()
        }
        want_events = {ext: types for ext, types in want_events.items() if types}
        got_events = {ext: _types(evs) for ext, evs in got.events.get(callid, {}).items()}
        if got_events != want_events:
            problems.append(f"{callid}: events {got_events}, expected {want_events}")
        for ext, types in got_events.items():
            problems += [f"{callid} {ext}: {p}" for p in grammar_violations(types)]
    return problems


@cache
def original(lab: Lab, name: str) -> Outcome:
    tracker = lab.tracker()
    return outcome_of(o for _, outs in run_steps(tracker, lab.events(name)) for o in outs)


@cache
def variant_run(lab: Lab, name: str, variant: Variant) -> tuple[Events, list[Output], list[str]]:
    """The variant's events, what the tracker makes of them, how that differs from the
    original's outcome."""
    evs = variant.apply(lab.events(name))
    tracker = lab.tracker(**variant.pbx)
    outputs = [o for _, outs in run_steps(tracker, evs) for o in outs]
    start = join_index(evs)
    joined_at = _time(*evs[start]) if 0 < start < len(evs) else None
    problems = differences(original(lab, name), outcome_of(outputs), joined_at=joined_at)
    problems += [f"fault: {f}" for f in tracker.take_faults()]
    if tracker.open_calls or tracker.channels or tracker.bridges:
        problems.append("state left after the trace")
    return evs, outputs, problems


# ----------------------------------------------------------------------- tests


@pytest.mark.parametrize(("lab", "name", "variant"), cases())
def test_variant_gives_the_outcome_of_the_original(lab: Lab, name: str, variant: Variant) -> None:
    assert variant_run(lab, name, variant)[2] == []


@pytest.mark.parametrize(("lab", "name"), [(lab, n) for lab in LABS for n in lab.scenarios()])
def test_variant_gives_the_expected_outcome(lab: Lab, name: str) -> None:
    """Through its original: every variant of a scenario also matches expected.json
    (a joined one for the calls and employees it can see)."""
    for variant in VARIANTS:
        if lab.name not in variant.labs or variant.joined:
            continue
        _, outputs, _ = variant_run(lab, name, variant)
        payloads = list(crm_payloads(outputs))
        if variant.name in ("no_timestamp", "asterisk_old_sip"):
            # the receipt time counts: durations may round one second apart
            problems = [p for p in lab.problems(name, payloads) if "duration" not in p]
        else:
            problems = lab.problems(name, payloads)
        assert problems == [], (variant.name, problems)


@pytest.mark.parametrize(("lab", "name"), [(lab, n) for lab in LABS for n in lab.scenarios()])
@pytest.mark.parametrize("seed", [1, 2])
def test_concurrent_with_another_scenario(lab: Lab, name: str, seed: int) -> None:
    """Two scenarios at once on one PBX, their events interleaved: each call as alone."""
    partner = _partner(lab, name)
    evs = concurrent_with(lab.events(partner), seed)(lab.events(name))
    tracker = lab.tracker()
    outputs = [o for _, outs in run_steps(tracker, evs) for o in outs]
    got = outcome_of(outputs)
    mine = {c: r for c, r in got.records.items() if c in original(lab, name).records}
    theirs = {c: r for c, r in got.records.items() if c not in mine}
    assert differences(original(lab, name), Outcome(mine, got.events)) == []
    assert differences(original(lab, partner), Outcome(theirs, got.events), renamed_id) == []
    assert tracker.take_faults() == []
    assert tracker.open_calls == 0 and not tracker.channels and not tracker.bridges


# ------------------------------------------------------------------ the corpus itself


def test_the_corpus_changes_the_shapes_it_says() -> None:
    """Each transformation really produces the shape it claims (else its test is void)."""
    evs = LAB22.events("in_answered")
    births = [ev for _, ev in born_down(evs) if ev["Event"] == "Newchannel"]
    assert births[0]["ChannelState"] == "0"
    recorded = [ev for _, ev in LAB18.events("in_answered")]
    first = next(i for i, ev in enumerate(recorded) if ev["Event"] == "Newchannel")
    uid = recorded[first]["Uniqueid"]
    mine = [ev for ev in recorded if ev.get("Uniqueid") == uid and ev["Event"] != "VarSet"]
    assert [ev["Event"] for ev in mine[:2]] == ["Newchannel", "Newstate"]
    reborn = [ev for _, ev in born_ringing(LAB18.events("in_answered"))]
    mine = [ev for ev in reborn if ev.get("Uniqueid") == uid and ev["Event"] != "VarSet"]
    assert mine[0]["ChannelState"] == "4" and mine[1]["Event"] != "Newstate"
    assert any("IAX2/trunk-" in ev.get("Channel", "") for _, ev in tech("IAX2")(evs))
    pri = {ev["Channel"] for _, ev in dahdi(False)(evs) if ev.get("Event") == "Newchannel"}
    assert "DAHDI/i1/79101234567-1" in pri
    out = dahdi(False)(LAB22.events("out_answered"))
    assert any(
        ev.get("Channel") == "DAHDI/i1/79261234567-1" and ev["ChannelState"] == "1"
        for _, ev in out
        if ev["Event"] == "Newchannel"
    )
    assert all("Timestamp" not in ev for _, ev in no_timestamp(evs))
    assert all(
        "Linkedid" not in ev for _, ev in no_newchannel_linkedid(evs) if ev["Event"] == "Newchannel"
    )
    load = LAB22.events("load_mixed")
    assert len(set(calls_of(load))) >= 200
    assert [ev for _, ev in reinterleaved(1)(load)] != [ev for _, ev in load]
    late = [ev["Event"] for _, ev in dial_published_late(evs)]
    assert late.index("DialBegin") > late.index("Newstate"), "Ringing before its DialBegin"
    lines = [ev for _, ev in joined("talking")(evs) if ev["Event"] == "CoreShowChannel"]
    assert {ev["ChannelState"] for ev in lines} == {"6"} and len(
        {ev["BridgeId"] for ev in lines}
    ) == 1


def test_corpus_size() -> None:
    """How many variants the corpus holds (said in the README)."""
    assert len(cases()) == 588  # said in the README, with the 80 two-scenario mixes
    assert 2 * sum(len(lab.scenarios()) for lab in LABS) == 80


# ------------------------------------------------------- writing a variant down


def write_trace(path: Path, evs: Events) -> None:
    """A trace file in the recorded format (`crm-bridge replay` reads it)."""
    with path.open("w") as fh:
        for t, ev in evs:
            raw = "".join(f"{k}: {v}\r\n" for k, v in ev.items())
            fh.write(json.dumps({"t": t, "raw": raw}) + "\n")


def write_config(path: Path, lab: Lab, variant: Variant) -> None:
    """The `[pbx]` config the variant is replayed with."""
    pbx = {**lab.pbx, **variant.pbx}
    lines = ["[pbx]"] + [f"{k} = {json.dumps(v)}" for k, v in pbx.items()]
    path.write_text("\n".join(lines) + "\n")
