"""What the call tracker reports: CRM events, finished call records, and calls parked
until Asterisk's own account of their end comes.

Plain data, no behaviour: the CRM protocol, the store and the replay CLI all read these.
"""

from __future__ import annotations

from dataclasses import dataclass, field

INCOMING = "INCOMING"
OUTGOING = "OUTGOING"
ACCEPTED = "ACCEPTED"
CANCELLED = "CANCELLED"
COMPLETED = "COMPLETED"
TRANSFERRED = "TRANSFERRED"

IN = "in"
OUT = "out"
INTERNAL = "internal"


@dataclass(slots=True)
class CallFacts:
    """What the tracker knows of a call in progress beyond its events: stored with each
    event, so a bridge restarted mid-call goes on with the call's real start, answer,
    employees and outcome so far (`OpenCall`)."""

    start: float
    answered: float | None = None
    offer: tuple[str, ...] = ()  # employees the call was offered to first
    offer_open: bool = True
    last_talker: str = ""
    last_rung: str = ""
    placer: str = ""
    recording: str = ""
    dial_status: str = ""  # of the customer leg (outbound)
    cause: int | None = None  # of the customer leg's hang-up
    phone_name: str = ""  # the name the carrier presented with the customer's number

    def as_json(self) -> dict[str, object]:
        return {
            "start": self.start,
            "answered": self.answered,
            "offer": list(self.offer),
            "offer_open": self.offer_open,
            "last_talker": self.last_talker,
            "last_rung": self.last_rung,
            "placer": self.placer,
            "recording": self.recording,
            "dial_status": self.dial_status,
            "cause": self.cause,
            "phone_name": self.phone_name,
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> CallFacts:
        def text(key: str) -> str:
            value = data.get(key)
            return value if isinstance(value, str) else ""

        def number(key: str) -> float | None:
            value = data.get(key)
            return float(value) if isinstance(value, (int, float)) else None

        offer = data.get("offer")
        cause = data.get("cause")
        return cls(
            start=number("start") or 0.0,
            answered=number("answered"),
            offer=tuple(str(x) for x in offer) if isinstance(offer, list) else (),
            offer_open=data.get("offer_open") is not False,
            last_talker=text("last_talker"),
            last_rung=text("last_rung"),
            placer=text("placer"),
            recording=text("recording"),
            dial_status=text("dial_status"),
            cause=cause if isinstance(cause, int) else None,
            phone_name=text("phone_name"),
        )


@dataclass(slots=True)
class CallEvent:
    """One CRM `event` for one employee (SPEC section 4)."""

    callid: str
    seq: int  # position among this call's events: with callid, the idempotency key
    type: str
    at: float  # Unix time, from the AMI event
    direction: str
    phone: str
    diversion: str
    ext: str
    user: str
    group: str = ""
    second_callid: str = ""
    channel: str = ""  # the employee's channel, for the logs
    facts: CallFacts | None = None  # the call's facts after this event (for a restart)

    @property
    def call_start(self) -> float:
        """When the call started (its first channel, from the facts the tracker stamps on
        every event), not when this employee's phone rang; `at` for an unstamped event."""
        return self.facts.start if self.facts is not None else self.at


@dataclass(slots=True)
class Leg:
    """One channel that took part in a call."""

    uniqueid: str
    channel: str
    kind: str  # trunk / extension / local / other
    ext: str
    started: float
    answered: float | None
    ended: float | None
    cause: int | None
    dial_status: str


@dataclass(slots=True)
class CallRecord:
    """A finished call: the `history` of SPEC section 4 plus what the store keeps."""

    callid: str
    direction: str  # in / out / internal
    status: str
    phone: str
    diversion: str
    ext: str
    user: str
    group: str
    start: float
    answered: float | None
    end: float
    duration: int
    wait: int
    recording: str = ""
    phone_name: str = ""  # the name the carrier presented with `phone` (inbound calls)
    # "hangup"; "resync": ended while the bridge was not listening, closed with what it
    # saw (its end is the last moment the bridge knew it alive); "backfill": rebuilt from
    # Asterisk's Channel Event Log after a gap; "fault": closed with what was known when
    # the tracker failed on one of its events (see TrackerFault)
    closed_by: str = "hangup"
    legs: list[Leg] = field(default_factory=list)

    @property
    def external(self) -> bool:
        return self.direction != INTERNAL


@dataclass(slots=True)
class CallParked:
    """A call whose end the bridge learnt, with its history waiting for Asterisk's own
    account of it (the CEL, `CallTracker.settle`): up across a gap and then hung up, or
    found gone at a resync. Stored as an open call, so that a bridge restarted before the
    account comes takes it back (`OpenCall`) instead of losing it: a call that rang nobody
    has no event that would have stored it. Nothing is sent to a CRM."""

    callid: str
    direction: str
    phone: str
    diversion: str
    group: str
    facts: CallFacts  # its start and answer among them


@dataclass(frozen=True, slots=True)
class GapsPending:
    """Not a call: where the bridge's account of Asterisk is still incomplete. `since` is
    the start of the earliest AMI gap whose account from the CEL is not among the outputs
    before this one (None: every gap is accounted for). The pipeline puts it among the
    tracker's outputs and the store keeps it with them, in order: a bridge killed before a
    gap's account came reads the CEL again from there (the store's `seen_until`), instead
    of starting after the calls stored since and losing the gap's."""

    since: float | None
    callid: str = ""  # no call's: a batch split per call stores it on its own


@dataclass(slots=True)
class OpenCall:
    """What the store knows of a call a previous run left open (for `restore`)."""

    callid: str
    direction: str
    phone: str
    diversion: str
    group: str
    start: float
    answered: float | None
    last_seq: int
    sessions: dict[str, str]  # ext -> type of that employee's last event
    facts: CallFacts | None = None  # stored with its last event (None: an older bridge's)


@dataclass(frozen=True, slots=True)
class TrackerFault:
    """The tracker failed on one event: the calls it concerned were closed with what was
    known (`closed_by="fault"`), and their later events are ignored. For the logs."""

    callid: str  # the call the event belonged to ("" if none was known)
    event: str  # the AMI event's name, or "resync" / "close_all"
    error: str  # repr() of the exception
    uniqueid: str = ""  # the event's channel, if it named one
    at: float = 0.0  # the event's time
    closed: tuple[str, ...] = ()  # every call closed because of it


Output = CallEvent | CallRecord | CallParked
Stored = Output | GapsPending  # what the pipeline hands the store, in order
