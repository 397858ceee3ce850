"""Asterisk's own CDR of the recorded calls (`traces/asterisk22/*.cdr.csv`), and the rules
by which the billing dialect's CDR objects must agree with it.

Asterisk (cdr_custom) writes one CDR row per (channel, dial): a call has several. Which
rows are our call, and what may differ:

1. `duration` (the whole call) is the row of the call's FIRST channel (`uniqueid` =
   `linkedid` = our callid: the carrier's leg inbound, the employee's phone outbound) that
   spans its whole life, from the first row's start to the last row's end; several rows
   may (a ring group or queue dials its phones at once), the longest counts. It must be
   equal: both are the exact elapsed time rounded down to whole seconds. When no single
   row spans the call (a blind transfer: one row per `Dial()`, one after the other), the
   rows' durations add up to ours or up to (rows - 1) seconds less, each row having been
   rounded down on its own. A caller left alone in a queue after its last member attempt
   failed is in no row at all (Asterisk closes the row when that dial ends and opens none
   for a channel without a peer): when Asterisk's CEL shows the first channel hung up
   after its last CDR row ended, the duration is the channel's life in the CEL
   (CHAN_START to CHAN_END, rounded down).
2. `billsec` (the conversation) is the ANSWERED rows of the call (`linkedid` = callid)
   whose `dstchannel` is a phone or the trunk, i.e. where a person picked up. Equal for one
   row; for consecutive conversations (a blind transfer: the first employee, then the
   second) their sum, up to (rows - 1) s less for the same rounding. Rows to a queue's
   `Local/...;1` are not conversations: their answer is the queue's `Answer()` of the
   caller (so an abandoned call's rows say NO ANSWER with billsec > 0); the conversation is
   the member's row from `Local/...;2` to the phone.
3. Click-to-call (AMI `Originate`): Asterisk answers the employee's phone first and only
   then dials the customer; the CDR's answer (and billsec) counts from the employee's
   answer, ours from the customer's, as a carrier bills. There the CDR's billsec is ours
   plus the seconds between the two answers.
4. Internal calls have no customer: their answer is the called phone's, as in the CDR.
5. `waitsec` is `duration - billsec` on both sides (Asterisk has no waitsec column).
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class CdrRow:
    channel: str
    dstchannel: str
    start: int  # Unix seconds (the CSV has whole seconds)
    answer: int | None
    end: int
    duration: int
    billsec: int
    disposition: str
    uniqueid: str
    linkedid: str

    @property
    def conversation(self) -> bool:
        """A person picked up: answered, and the dialled party is a phone or the trunk."""
        return (
            self.disposition == "ANSWERED"
            and self.dstchannel != ""
            and not self.dstchannel.startswith("Local/")
        )


def _time(text: str) -> int | None:
    if not text:
        return None
    return int(datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC).timestamp())


def read_cdr(path: Path) -> list[CdrRow]:
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    return [
        CdrRow(
            channel=r["channel"],
            dstchannel=r["dstchannel"],
            start=_time(r["start"]) or 0,
            answer=_time(r["answer"]),
            end=_time(r["end"]) or 0,
            duration=int(r["duration"]),
            billsec=int(r["billsec"]),
            disposition=r["disposition"],
            uniqueid=r["uniqueid"],
            linkedid=r["linkedid"],
        )
        for r in rows
    ]


def channel_lives(path: Path) -> dict[str, tuple[float, float]]:
    """(CHAN_START, CHAN_END) of every channel in a CEL file, by UniqueID."""
    starts: dict[str, float] = {}
    lives: dict[str, tuple[float, float]] = {}
    with path.open(newline="") as f:
        for r in csv.DictReader(f):
            if r["EventType"] == "CHAN_START":
                starts[r["UniqueID"]] = float(r["EventTime"])
            elif r["EventType"] == "CHAN_END" and r["UniqueID"] in starts:
                lives[r["UniqueID"]] = (starts[r["UniqueID"]], float(r["EventTime"]))
    return lives


def by_call(rows: Sequence[CdrRow]) -> dict[str, list[CdrRow]]:
    calls: dict[str, list[CdrRow]] = {}
    for row in rows:
        calls.setdefault(row.linkedid, []).append(row)
    return calls


def originated(legs: Sequence[Mapping[str, Any]], callid: str) -> float | None:
    """Seconds between the employee's answer and the customer's on a click-to-call (the
    call's first channel, the employee's phone, was answered before the trunk leg), else
    None."""
    first = next((leg for leg in legs if leg["uniqueid"] == callid), None)
    trunk = next((leg for leg in legs if leg["kind"] == "trunk"), None)
    if first is None or trunk is None or first["kind"] != "extension":
        return None
    if first["answered_at"] is None or trunk["answered_at"] is None:
        return None
    if first["answered_at"] >= trunk["answered_at"]:
        return None
    return (trunk["answered_at"] - first["answered_at"]).total_seconds()


def disagreements(
    callid: str,
    ours: Mapping[str, Any],
    rows: Sequence[CdrRow],
    legs: Sequence[Mapping[str, Any]],
    life: tuple[float, float] | None = None,
) -> list[str]:
    """How our CDR object of one call disagrees with Asterisk's rows beyond the rules of
    the module doc ([] when it agrees)."""
    problems: list[str] = []
    first = [r for r in rows if r.uniqueid == callid]
    if not first:
        return [f"{callid}: no CDR row of the call's first channel"]
    # 1. duration
    span_start, span_end = min(r.start for r in first), max(r.end for r in first)
    spanning = [r for r in first if r.start == span_start and r.end == span_end]
    if life is not None and int(life[1]) > span_end:  # outlived its rows: see 1.
        expected = int(life[1] - life[0])
        if ours["duration"] != expected:
            problems.append(f"{callid}: duration {ours['duration']} != CEL life {expected}")
    elif spanning:
        expected = max(r.duration for r in spanning)
        if ours["duration"] != expected:
            problems.append(f"{callid}: duration {ours['duration']} != CDR {expected}")
    else:
        total = sum(r.duration for r in first)
        if not 0 <= ours["duration"] - total <= len(first) - 1:
            problems.append(f"{callid}: duration {ours['duration']} vs CDR rows' sum {total}")
    # 2./3. billsec
    talks = [r for r in rows if r.conversation]
    billsec = sum(r.billsec for r in talks)
    early = originated(legs, callid)
    if early is not None:
        if not 0 <= billsec - ours["billsec"] <= int(early) + 1:
            problems.append(
                f"{callid}: click-to-call billsec {ours['billsec']} vs CDR {billsec} "
                f"(employee answered {early:.3f} s before the customer)"
            )
    elif not 0 <= ours["billsec"] - billsec <= max(len(talks) - 1, 0):
        problems.append(f"{callid}: billsec {ours['billsec']} vs CDR {billsec}")
    if bool(talks) != (ours["answer_epoch"] != "0"):
        problems.append(f"{callid}: answered {ours['answer_epoch']} vs CDR rows {talks}")
    # 5. waitsec
    if ours["waitsec"] != ours["duration"] - ours["billsec"]:
        problems.append(f"{callid}: waitsec is not duration - billsec")
    return problems
