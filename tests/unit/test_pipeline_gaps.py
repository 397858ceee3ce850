"""Where gaps wait for their CEL account (`GapsPending`) is stored in order with the calls,
also when the database refuses one call of a batch and the batch is stored call by call:
the gaps' state goes last, never before the calls of an account it marks as done."""

from __future__ import annotations

from collections.abc import Sequence

from bridge.pipeline import CallPipeline
from bridge.tracker.model import CallRecord, GapsPending, Stored
from tests.support.stream import Stream
from tests.unit.test_tracker_traces import LAB22


class RefusingStore:
    """Refuses (a bug-like error: for good) every save that holds one given call."""

    def __init__(self, refused: str) -> None:
        self.refused = refused
        self.saves: list[list[Stored]] = []

    async def save(self, outputs: Sequence[Stored]) -> None:
        if any(o.callid == self.refused for o in outputs):
            raise ValueError("this call's rows cannot be built")
        self.saves.append(list(outputs))


async def test_a_split_batch_stores_the_gaps_state_after_every_call() -> None:
    tracker = LAB22.tracker()
    outputs = [
        out
        for name in ("in_answered", "in_noanswer", "out_answered")
        for t, ev in LAB22.events(name)
        for out in tracker.feed(ev, t)
    ]
    calls = list(dict.fromkeys(o.callid for o in outputs))
    assert len(calls) == 3
    batch: list[Stored] = [GapsPending(100.0), *outputs, GapsPending(None)]
    store = RefusingStore(refused=calls[1])
    pipeline = CallPipeline(Stream([]), tracker, store)
    pipeline.pending.extend(batch)
    await pipeline.drain()

    saved = [o for save in store.saves for o in save]
    assert [o.callid for o in saved if isinstance(o, CallRecord)] == [calls[0], calls[2]]
    assert store.saves[-1] == [GapsPending(100.0), GapsPending(None)], "the gaps' state last"
    assert pipeline.rejected == sum(o.callid == calls[1] for o in outputs)
    assert not pipeline.pending
