"""Asterisk's Channel Event Log alone, on every recorded scenario of both labs: the calls
rebuilt from each `.cel.csv` (bridge.cel, pure code) are the expected ones, and on the
200-call load trace the same histories as the tracker makes from the AMI events."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import pytest

from bridge.cel.backfill import SLACK, Gap, read_gap
from bridge.cel.csvlog import CelCsv
from bridge.cel.groups import group_rows
from bridge.cel.interpret import CelCall, CelInterpreters
from bridge.cel.rows import CelRow
from bridge.replay import crm_payloads
from bridge.tracker.model import CallRecord
from tests.unit.test_tracker_traces import LAB18, LAB22, LABS, Lab, expected_problems, run


@cache
def _rows(path: Path) -> tuple[CelRow, ...]:
    return tuple(CelCsv(path).rows(0.0))


def cel_rows(lab: Lab, name: str) -> list[CelRow]:
    return list(_rows(lab.directory / f"{name}.cel.csv"))


def interpret(lab: Lab, rows: list[CelRow]) -> tuple[list[CelCall], list[Any]]:
    interpreters = CelInterpreters.for_tracker(lab.tracker())
    calls = [c for group in group_rows(rows) for c in interpreters.interpret(group)]
    return calls, interpreters.take_faults()


def scenarios() -> list[Any]:
    return [pytest.param(lab, n, id=f"{lab}-{n}") for lab in LABS for n in lab.scenarios()]


@pytest.mark.parametrize(("lab", "name"), scenarios())
def test_history_from_cel_alone_is_the_expected_one(lab: Lab, name: str) -> None:
    calls, faults = interpret(lab, cel_rows(lab, name))
    assert faults == []
    outputs: list[Any] = []
    for call in calls:
        outputs.extend(call.events)
        outputs.append(call.record)
    # status, user/ext, phone, duration range, and each employee's events as well
    assert expected_problems(lab.expected(name)["calls"], list(crm_payloads(outputs))) == []


@pytest.mark.parametrize("lab", LABS, ids=str)
def test_load_trace_from_cel_is_what_the_tracker_saw_on_ami(lab: Lab) -> None:
    calls, faults = interpret(lab, cel_rows(lab, "load_mixed"))
    assert faults == []
    cel = {c.record.callid: c.record for c in calls}
    _, outputs = run("load_mixed", lab=lab)
    ami = {o.callid: o for o in outputs if isinstance(o, CallRecord)}
    assert len(ami) == 200 and set(cel) == set(ami)
    differences: list[tuple[str, object]] = []
    for callid, a in ami.items():
        c = cel[callid]
        keys = ("direction", "status", "ext", "user", "phone", "diversion", "external")
        if any(getattr(a, k) != getattr(c, k) for k in keys):
            differences.append((callid, [(getattr(a, k), getattr(c, k)) for k in keys]))
        if abs(a.duration - c.duration) > 1 or abs(a.wait - c.wait) > 1:
            differences.append((callid, (a.duration, c.duration, a.wait, c.wait)))
        if abs(a.start - c.start) > 0.5:
            differences.append((callid, (a.start, c.start)))
        if a.group != c.group and not (lab is LAB18 and c.group == "" and a.status == "missed"):
            differences.append((callid, (a.group, c.group)))
    assert differences == []


def test_asterisk18_cel_does_not_name_the_queue_of_a_caller_who_gave_up() -> None:
    """chan_sip Asterisk 18 logs no Queue application on the caller's rows when the
    caller hangs up while waiting (no BRIDGE_ENTER): such a call's `groupRealName` is
    unknown to CEL. Asterisk 22 names it on the caller's HANGUP row."""
    for lab, blank in ((LAB22, 0), (LAB18, 10)):
        calls, _ = interpret(lab, cel_rows(lab, "load_mixed"))
        _, outputs = run("load_mixed", lab=lab)
        grouped = {o.callid for o in outputs if isinstance(o, CallRecord) and o.group}
        unnamed = [c for c in calls if c.record.callid in grouped and not c.record.group]
        assert len(unnamed) == blank, lab


def test_csv_bisection_reads_the_gap_only(tmp_path: Path) -> None:
    """A gap late in a big file is read from about its start (bisection), not from the
    first row; a rotated predecessor is read first when the gap began before the file."""
    source = LAB22.directory / "load_mixed.cel.csv"
    lines = source.read_text().splitlines()
    header, body = lines[0], lines[1:]
    times = [row.eventtime for row in _rows(source)]
    since = times[len(times) * 3 // 4]
    path = tmp_path / "cel_master.csv"
    path.write_text("\n".join([header, *body]) + "\n")
    read = list(CelCsv(path).rows(since))
    assert len(read) < len(body) // 2
    everything = [(r.eventtype, r.uniqueid, r.eventtime) for r in _rows(source)]
    assert [(r.eventtype, r.uniqueid, r.eventtime) for r in read] == everything[-len(read) :]
    assert [r.uniqueid for r in read if r.eventtime >= since] == [
        r.uniqueid for r in _rows(source) if r.eventtime >= since
    ]
    # rotated: the first half in cel_master.csv.1, the rest in cel_master.csv
    half = len(body) // 2
    (tmp_path / "cel_master.csv.1").write_text("\n".join(body[:half]) + "\n")
    path.write_text("\n".join(body[half:]) + "\n")
    assert len(list(CelCsv(path).rows(times[10]))) >= len(body) - 20


def test_gap_reports_the_calls_that_ended_in_it_once() -> None:
    """`read_gap`: the calls over before the gap are left out (the bridge saw them);
    those that ended in it are reported; the ones still up are not (not over)."""
    rows = cel_rows(LAB22, "load_mixed")
    since, until = rows[len(rows) // 3].eventtime, rows[len(rows) // 2].eventtime
    seen = [r for r in rows if r.eventtime <= until]
    account = read_gap(
        CelInterpreters.for_tracker(LAB22.tracker()), Gap(since=since, until=until), seen
    )
    assert account.faults == []
    assert account.calls
    ends = [r.end for r in (c.record for c in account.calls.values())]
    assert all(since - SLACK <= end <= until + 1 for end in ends)  # a few s of slack
    full, _ = interpret(LAB22, cel_rows(LAB22, "load_mixed"))
    ended_in_gap = {c.record.callid for c in full if since <= c.record.end <= until}
    assert ended_in_gap <= set(account.calls)
