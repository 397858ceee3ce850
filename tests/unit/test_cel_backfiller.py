"""The daemon's backfill task without a daemon: a real CSV source, a real tracker and
pipeline items collected as the pipeline would take them."""

from __future__ import annotations

from pathlib import Path

from structlog.testing import capture_logs

from bridge.cel.backfill import apply
from bridge.cel.service import Backfilled, Backfiller, CloseParked, CsvSource
from bridge.tracker.model import CallRecord
from tests.support.continuity import Trace
from tests.unit.test_tracker_traces import LAB22


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def no_finished(callids: object) -> set[str]:
    return set()


async def test_a_gap_is_read_once_and_its_calls_reported(tmp_path: Path) -> None:
    trace = Trace(LAB22.directory, "concurrent")
    cel = tmp_path / "cel_master.csv"
    cel.write_text((LAB22.directory / "concurrent.cel.csv").read_text())
    tracker = LAB22.tracker()
    items: list[Backfilled | CloseParked] = []
    backfiller = Backfiller(CsvSource(cel), tracker, no_finished, items.append)
    first, last = trace.cel[0].eventtime, trace.cel[-1].eventtime
    backfiller.gap(first, last + 1)
    await backfiller.once()
    await backfiller.once()  # nothing waits any more: no second read
    (item,) = items
    assert isinstance(item, Backfilled)
    records = [o for o in apply(tracker, item.account, item.finished) if isinstance(o, CallRecord)]
    assert len(records) == len(LAB22.expected("concurrent")["calls"])
    assert {r.closed_by for r in records} == {"backfill"}
    assert backfiller.reads == 1


async def test_a_missing_file_is_logged_once_and_parked_calls_closed_in_time(
    tmp_path: Path,
) -> None:
    trace = Trace(LAB22.directory, "in_answered")
    tracker = LAB22.tracker()
    talking = trace.moment("talking")
    for t, _, ev in trace.messages[:talking]:
        tracker.feed(ev, t)
    mark = tracker.mark()
    tracker.resync([], tracker.last_at + 5, mark, seen_until=tracker.last_at, park=True)
    assert tracker.parked() == ["1795346414.0"]
    clock = Clock()
    items: list[Backfilled | CloseParked] = []
    backfiller = Backfiller(
        CsvSource(tmp_path / "nowhere.csv"),
        tracker,
        no_finished,
        items.append,
        settle_timeout=30,
        clock=clock,
    )
    backfiller.gap(tracker.last_at, tracker.last_at + 5)
    with capture_logs() as logs:
        for _ in range(5):
            try:
                await backfiller.once()
            except FileNotFoundError as exc:  # what `run` does with it
                backfiller._failed(repr(exc))
            clock.now += 2
    assert [entry["event"] for entry in logs] == ["cel_read_failed"]
    assert items == []
    clock.now = 31
    with capture_logs():
        try:
            await backfiller.once()
        except FileNotFoundError:
            pass
    assert items == [CloseParked(["1795346414.0"])]
    (record,) = [o for o in tracker.close_parked("1795346414.0") if isinstance(o, CallRecord)]
    assert record.closed_by == "resync"
    assert record.end == tracker.last_at  # the last moment it was known alive, not later
