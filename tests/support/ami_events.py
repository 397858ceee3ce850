"""Build AMI events the way Asterisk 22 sends them (header shapes of the shared traces),
for the scenarios the lab did not record: reconnects mid-call, REFER attended transfers,
trunk failover. Real traces stay the ground truth; these pin rules around them."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

T0 = 1800000000.0


class Ch:
    def __init__(
        self,
        name: str,
        uid: str,
        linkedid: str,
        state: int = 0,
        exten: str = "s",
        num: str = "",
        ctx: str = "from-internal",
    ) -> None:
        self.name, self.uid, self.linkedid = name, uid, linkedid
        self.state, self.exten, self.num, self.ctx = state, exten, num, ctx

    def h(self, prefix: str = "", **over: str) -> dict[str, str]:
        d = {
            "Channel": self.name,
            "ChannelState": str(self.state),
            "CallerIDNum": self.num or "<unknown>",
            "Context": self.ctx,
            "Exten": self.exten,
            "Uniqueid": self.uid,
            "Linkedid": self.linkedid,
        }
        d.update(over)
        return {prefix + k: v for k, v in d.items()}

    def shown(self, at: float, bridge: str = "", **over: str) -> dict[str, str]:
        """This channel as a CoreShowChannel line of a snapshot."""
        return {
            "Event": "CoreShowChannel",
            **self.h(**over),
            "BridgeId": bridge,
            "Duration": f"00:00:{int(at):02d}",
        }


def ev(name: str, t: float, *parts: dict[str, str], **extra: str) -> dict[str, str]:
    d = {"Event": name, "Privilege": "call,all", "Timestamp": f"{T0 + t:.6f}"}
    for p in parts:
        d.update(p)
    d.update(extra)
    return d


Step = dict[str, str] | Callable[[Any], list[Any]]


def take_mark(into: list[frozenset[str]]) -> Step:
    """A step that keeps the tracker's `mark()` (for a later resync) and outputs nothing."""

    def step(tracker: Any) -> list[Any]:
        into.append(tracker.mark())
        return []

    return step


def feed(tracker: Any, steps: Iterable[Step]) -> list[Any]:
    """Events are fed; callables (resyncs, marks) get the tracker and return outputs."""
    outputs: list[Any] = []
    for step in steps:
        outputs.extend(step(tracker) if callable(step) else tracker.feed(step))
    return outputs
