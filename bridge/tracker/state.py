"""The tracker's working memory: live channels, calls and employees' event sequences.

Plain mutable objects with `__slots__`: a busy PBX keeps thousands of them alive, and
everything about a call is dropped when the call ends.
"""

from __future__ import annotations

from .channels import Kind

# Channel states (AMI `ChannelState`)
DOWN, RING, RINGING, UP = 0, 4, 5, 6

ORIGINATE = "originate"  # the dialer of a channel created by an AMI Originate
SNAPSHOT = "snapshot"  # the dialer of a dialled channel first seen in a channel snapshot

# What a channel is to its call, in Asterisk's terms (SPEC section 3). A channel that no
# Dial or Originate created and that reaches Ring ("the line is ringing us") is a CALLER;
# one a Dial, Queue, FollowMe or Originate created (a DialBegin names it, or it was born
# with another channel's Linkedid: ast_channel_alloc copies the requestor's), or that
# reaches Ringing ("the far end is being rung"), is DIALLED. chan_sip creates an inbound
# channel Down and sets Ring just after, so a Down channel of its own is UNDECIDED until
# then.
UNDECIDED, CALLER, DIALLED = 0, 1, 2


class Channel:
    __slots__ = (
        "uid",
        "name",
        "kind",
        "ext",
        "call",
        "state",
        "created",
        "role",
        "dialer",
        "dials",
        "peer",
        "bridge",
        "answered",
        "ended",
        "cause",
        "dial_status",
        "customer_of",
        "sessions",
        "caller_num",
        "caller_name",
        "exten",
    )

    def __init__(
        self,
        uid: str,
        name: str,
        kind: Kind,
        ext: str,
        created: float,
        state: int,
        role: int,
        caller_num: str,
        exten: str,
        caller_name: str = "",
    ) -> None:
        self.uid = uid
        self.name = name
        self.kind = kind
        self.ext = ext
        self.call: Call | None = None
        self.state = state
        self.created = created
        self.role = role  # UNDECIDED, CALLER or DIALLED
        self.dialer: Channel | str | None = (
            None  # who dialled it; ORIGINATE, SNAPSHOT; None: unknown
        )
        self.dials: list[Channel] = []  # the live channels it dialled (the dialer's side)
        self.peer: Channel | None = None  # the other half of a Local pair
        self.bridge: str | None = None
        self.answered: float | None = None
        self.ended: float | None = None
        self.cause: int | None = None
        self.dial_status = ""
        self.customer_of: Call | None = None  # set on the customer's channel of a call
        self.sessions: list[Session] = []
        self.caller_num = caller_num
        self.caller_name = caller_name
        self.exten = exten


class Session:
    """One employee within one customer's call: INCOMING|OUTGOING ... CANCELLED|COMPLETED."""

    __slots__ = ("call", "ext", "legs", "accepted", "accepted_at", "talking", "open", "transferred")

    def __init__(self, call: Call, ext: str) -> None:
        self.call = call
        self.ext = ext
        self.legs: set[Channel] = set()
        self.accepted = False  # ACCEPTED said
        self.accepted_at = 0.0  # when (the phone answered, or joined the customer later)
        self.talking = False  # connected with the customer since
        self.open = False
        self.transferred = False  # TRANSFERRED is said once per sequence


class Call:
    __slots__ = (
        "callid",
        "live",
        "legs",
        "direction",
        "first",
        "customer",
        "start",
        "answered",
        "customer_end",
        "phone",
        "diversion",
        "group",
        "offer",
        "offer_open",
        "last_talker",
        "last_rung",
        "placer",
        "recording",
        "dial_status",
        "cause",
        "sessions",
        "seq",
        "restored",
        "provisional",
        "answer_guessed",
        "gapped",
        "born_seen",
        "phone_name",
    )

    def __init__(self, callid: str, start: float) -> None:
        self.callid = callid
        self.live: dict[str, Channel] = {}
        self.legs: list[Channel] = []
        self.direction: str | None = None  # None until a trunk or an extension shows up
        self.first: Channel | None = None  # first trunk/extension channel
        self.customer: Channel | None = None
        self.start = start
        self.answered: float | None = None
        self.customer_end: float | None = None
        self.phone = ""
        self.phone_name = ""  # the name the carrier presented with `phone` (inbound)
        self.diversion = ""
        self.group = ""
        self.offer: list[str] = []  # employees the call was offered to first
        self.offer_open = True
        self.last_talker = ""
        self.last_rung = ""
        self.placer = ""
        self.recording = ""
        self.dial_status = ""
        self.cause: int | None = None
        self.sessions: dict[str, Session] = {}
        self.seq = 0
        self.restored = False  # taken back from the store after a restart
        # keyed by its first channel's Uniqueid because that channel's Newchannel carried
        # no Linkedid (old versions), until another channel names it: the channel's next
        # event may name its real call instead
        self.provisional = False
        # answered while the bridge was away: `answered` is an estimate until Asterisk's
        # own log tells (CallTracker.amend)
        self.answer_guessed = False
        # up across a gap with Asterisk's own log to tell what the bridge missed: its end
        # waits for that account (CallTracker.settle)
        self.gapped = False
        # its originating channel's Newchannel came after the last snapshot was asked for
        # (CallTracker.mark): the bridge saw all of it, no gap's account is needed
        self.born_seen = False
