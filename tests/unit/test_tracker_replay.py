"""`crm-bridge replay` around the tracker: a recorded snapshot is a resync, tracker
faults are told on stderr (one line each) and stdout keeps the payloads only."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from bridge.cli import main as crm_bridge
from bridge.replay import crm_payloads, fault_line, tracked, write_replay
from bridge.tracker.grammar import Grammar
from bridge.tracker.model import CallRecord, Output, TrackerFault
from bridge.tracker.state import Call, Channel
from tests.unit.test_tracker_shapes import joined, write_trace
from tests.unit.test_tracker_traces import LAB18, LAB22, Lab, run

ANSWERED_18 = "in_answered"


def test_a_tracker_fault_is_one_line_on_stderr_and_stdout_is_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clean = io.StringIO()
    write_replay(LAB18.trace("concurrent"), LAB18.tracker(), clean, errors=io.StringIO())
    original_ring = Grammar.ring

    def ring(self: Grammar, call: Call, ch: Channel, at: float, out: list[Output]) -> None:
        if ch.ext == "1002":
            raise RuntimeError("injected")
        original_ring(self, call, ch, at, out)

    monkeypatch.setattr(Grammar, "ring", ring)
    stdout, stderr = io.StringIO(), io.StringIO()
    write_replay(LAB18.trace("concurrent"), LAB18.tracker(), stdout, errors=stderr)
    lines = stderr.getvalue().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("crm-bridge replay: tracker fault on ")
    assert "RuntimeError('injected')" in lines[0] and "calls closed: " in lines[0]
    payloads = [json.loads(line) for line in stdout.getvalue().splitlines()]
    assert len({p["callid"] for p in payloads if p["cmd"] == "history"}) == 5
    faulty = {p["callid"] for p in payloads if p.get("ext") == "1002"}
    untouched = [p for p in map(json.loads, clean.getvalue().splitlines())]
    assert [p for p in payloads if p["callid"] not in faulty] == [
        p for p in untouched if p["callid"] not in faulty
    ]


def test_fault_line_names_the_event_the_call_and_what_was_closed() -> None:
    fault = TrackerFault("1.1", "DialBegin", "KeyError('x')", "1.2", 5.0, ("1.1",))
    assert fault_line(fault) == (
        "crm-bridge replay: tracker fault on DialBegin (callid 1.1, uniqueid 1.2, "
        "at 5.000000): KeyError('x'); calls closed: 1.1"
    )


def test_the_cli_prints_faults_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Grammar, "accept", _explode)
    assert crm_bridge(["replay", str(LAB18.trace(ANSWERED_18)), "--config", str(LAB18.config)]) == 0
    printed = capsys.readouterr()
    assert printed.err.count("tracker fault on ") == 1
    (history,) = [json.loads(x) for x in printed.out.splitlines() if '"history"' in x]
    assert history["type"] == "in"


def _explode(*args: object, **kwargs: object) -> None:
    raise RuntimeError("injected")


@pytest.mark.parametrize("lab", [LAB22, LAB18], ids=str)
def test_a_trace_that_starts_with_a_snapshot_is_a_mid_call_join(lab: Lab, tmp_path: Path) -> None:
    """A recording made by a client that connected mid-call starts with the answer to
    its CoreShowChannels: replay adopts those channels as the daemon does."""
    evs = joined("talking")(lab.events(ANSWERED_18))
    assert evs[0][1]["Event"] == "CoreShowChannel"
    outputs = [o for outs in tracked(evs, lab.tracker()) for o in outs]
    (record,) = [o for o in outputs if isinstance(o, CallRecord)]
    _, whole = run(ANSWERED_18, lab=lab)
    (full,) = [o for o in whole if isinstance(o, CallRecord)]
    assert (record.direction, record.status, record.ext, record.phone) == (
        full.direction,
        full.status,
        full.ext,
        full.phone,
    )
    assert record.start == pytest.approx(full.start, abs=1.0), "on the events' clock"
    assert 0 <= full.duration - record.duration <= 1
    types = [p["type"] for p in crm_payloads(outputs) if p["cmd"] == "event"]
    assert types == ["INCOMING", "ACCEPTED", "COMPLETED"]
    trace = tmp_path / "joined.ami.jsonl"
    write_trace(trace, evs)
    stdout = io.StringIO()
    write_replay(trace, lab.tracker(), stdout, errors=io.StringIO())
    assert [json.loads(x) for x in stdout.getvalue().splitlines()] == list(crm_payloads(outputs))
