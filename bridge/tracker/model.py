"""What the call tracker reports: CRM events and finished call records.

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
    # "hangup"; "resync": ended while the bridge was not listening; "fault": closed with
    # what was known when the tracker failed on one of its events (see TrackerFault)
    closed_by: str = "hangup"
    legs: list[Leg] = field(default_factory=list)

    @property
    def external(self) -> bool:
        return self.direction != INTERNAL


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


Output = CallEvent | CallRecord
