"""`crm-bridge run` stopped at a chosen point of a recorded trace and started again, with
Asterisk's CEL configured (`[cel] source = "csv"`, the file growing as the replay goes,
as cel_custom writes it): the CRM receives what a bridge that stayed up sends, every
history exactly once (tests/support/continuity.py computes that run in pure code)."""

from __future__ import annotations

import asyncio
import os
import signal
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from bridge.cel.csvlog import CelCsv
from bridge.cel.rows import CelRow
from bridge.devtools.fake_ami import FakeAmiServer
from bridge.devtools.fake_crm import FakeCrm
from tests.integration.test_cel_store import CEL_TABLE
from tests.support.continuity import HISTORY_KEYS, Trace, uninterrupted
from tests.support.daemon import Daemon, Ports, running_daemon, write_config
from tests.support.traces import TRACES, grammar_violations
from tests.unit.test_tracker_traces import LAB22

pytestmark = pytest.mark.integration


def cel_section(path: Path) -> str:
    # a webhook sent just before a kill -9 is sent again once its lease ends (same id)
    return (
        f'[cel]\nsource = "csv"\npath = "{path}"\npoll_interval = 0.2\nsettle_timeout = 10\n'
        "[delivery]\nlease = 2.0\npoll_interval = 0.2\n"
    )


def position(server: FakeAmiServer, trace: Trace, n: int) -> int:
    """The server's replay position once the first `n` events of `trace` are replayed."""
    if n == 0:
        return 0
    raw = trace.messages[n - 1][1]
    return next(i + 1 for i, (_, r) in enumerate(server._trace) if r == raw)


def stored_outputs(trace: Trace, n: int) -> int:
    """How many outputs a bridge logs for the first `n` events."""
    tracker = LAB22.tracker()
    return sum(len(tracker.feed(ev, t)) for t, _, ev in trace.messages[:n])


async def wait_stored(bridge: Daemon, count: int) -> None:
    async with asyncio.timeout(20):
        while len(bridge.logs("call_event")) + len(bridge.logs("call_finished")) < count:
            await asyncio.sleep(0.05)


def problems(want: list[dict[str, Any]], crm: FakeCrm) -> list[str]:
    """Differences from the histories `want`; a history sent again with the same
    webhook-id (delivered, but its answer lost in a kill -9) is the same history."""
    found: list[str] = []
    wanted = {h["callid"]: h for h in want}
    received: dict[str, list[dict[str, str]]] = {}
    for r in crm.history().unique:
        received.setdefault(r.fields["callid"], []).append(r.fields)
    found += [f"{c}: {len(hs)} histories" for c, hs in received.items() if len(hs) != 1]
    found += [f"{c}: not expected" for c in received if c not in wanted]
    for callid, h in wanted.items():
        if callid not in received:
            found.append(f"{callid}: no history")
            continue
        other = received[callid][0]
        for key in HISTORY_KEYS:
            if str(h.get(key, "")) != other.get(key, ""):
                found.append(f"{callid}: {key} {other.get(key)!r}, want {h.get(key)!r}")
        for key in ("duration", "wait"):
            if abs(int(h[key]) - int(other[key])) > 1:
                found.append(f"{callid}: {key} {other[key]}, want {h[key]}")
    return found


def diagnosis(found: list[str], *bridges: Daemon) -> str:
    """The problems, and every log line of each bridge that names a call concerned."""
    callids = {p.split(":")[0] for p in found}
    marks = ('"bridge_tracking"', '"cel_backfill', '"ami_resync"', '"store_')
    lines = [
        f"bridge {n}: {line}"
        for n, bridge in enumerate(bridges, 1)
        for line in bridge.lines
        if any(c in line for c in callids) or any(m in line for m in marks)
    ]
    stored = [line for line in bridges[0].lines if '"call_' in line]
    lines += [f"bridge 1 stored {len(stored)} outputs, the last: {stored[-3:]}"]
    return "\n".join(["histories missing or wrong:", *found, *lines])


def grammar_problems(crm: FakeCrm) -> list[str]:
    found = []
    for callid, events in crm.events_by_call().items():
        per_ext: dict[str, list[str]] = {}
        for e in events:
            per_ext.setdefault(e.fields["ext"], []).append(e.fields["type"])
        for ext, types in per_ext.items():
            found += [f"{callid} {ext}: {p}" for p in grammar_violations(types)]
    return found


async def stopped_and_started(
    tmp_path: Path, pg_dsn: str, name: str, stop: int, back: int, kill: bool = False
) -> tuple[list[dict[str, Any]], FakeCrm, Daemon]:
    trace = Trace(TRACES, name)
    want = [h for h in uninterrupted(trace, LAB22.tracker()).crm() if h["cmd"] == "history"]
    server = FakeAmiServer(TRACES / f"{name}.ami.jsonl", drop_while_disconnected=True)
    cel = tmp_path / "cel-custom" / "cel_master.csv"
    server.write_cel(TRACES / f"{name}.cel.csv", cel)
    server.pause_after(position(server, trace, stop))
    crm = FakeCrm(token="tok")
    ports = Ports(ami=await server.start())
    config = write_config(
        tmp_path / "bridge.toml", ports, pg_dsn, await crm.start(), cel_section(cel)
    )
    text = config.read_text()  # requests short enough for the short lease
    config.write_text(text.replace('token = "tok"\n', 'token = "tok"\ntimeout = 1.0\n', 1))
    try:
        async with running_daemon(config, ports) as first:
            await server.wait_replayed(position(server, trace, stop))
            await wait_stored(first, stored_outputs(trace, stop) if not kill else 1)
            if kill:  # no drain: what was tracked and not yet stored is lost too
                os.kill(first.proc.pid, signal.SIGKILL)
        # meanwhile Asterisk goes on (its CEL too); nobody listens
        server.pause_after(position(server, trace, back))
        await server.wait_replayed(position(server, trace, back))
        async with running_daemon(config, ports) as second:
            await second.wait_log("ami_resync", within=20)
            server.resume()
            await server.wait_done()
            try:
                await crm.wait_for(lambda: len(crm.history().unique) >= len(want), 30)
            except TimeoutError:
                pytest.fail(diagnosis(problems(want, crm), first, second))
            await asyncio.sleep(0.5)  # a duplicate would show up by now
            assert not [line for line in second.lines if "Traceback" in line]
        return want, crm, second
    finally:
        await server.stop()
        await crm.stop()


@pytest.mark.parametrize(
    ("name", "moment"),
    [("in_answered", "talking"), ("in_queue", "ringing"), ("in_blind_transfer", "hung_up")],
)
async def test_restarted_with_cel_reports_what_a_bridge_that_stayed_up_does(
    tmp_path: Path, pg_dsn: str, name: str, moment: str
) -> None:
    trace = Trace(TRACES, name)
    stop = trace.moment(moment)
    back = min(len(trace.messages), stop + max(3, len(trace.messages) // 6))
    want, crm, second = await stopped_and_started(tmp_path, pg_dsn, name, stop, back)
    assert problems(want, crm) == []
    assert grammar_problems(crm) == []
    assert second.logs("cel_backfill")


async def test_load_trace_killed_in_the_middle_reports_every_call_once(
    tmp_path: Path, pg_dsn: str
) -> None:
    trace = Trace(TRACES, "load_mixed")
    n = len(trace.messages)
    want, crm, second = await stopped_and_started(
        tmp_path, pg_dsn, "load_mixed", n // 2, n // 2 + n // 15, kill=True
    )
    assert len(want) == 200
    assert problems(want, crm) == []
    assert grammar_problems(crm) == []
    backfilled = [r for r in second.logs("call_finished") if r.get("closed_by") == "backfill"]
    assert backfilled, "calls of the gap came from the CEL"


class CelPgsql:
    """cel_pgsql for the replay: the rows the fake Asterisk appends to its CEL file are
    inserted into a `cel` table as they appear (zone-less UTC, `usegmtime = yes`)."""

    INSERT = (
        "INSERT INTO cel (eventtype, eventtime, cid_name, cid_num, exten, context, channame, "
        "appname, appdata, uniqueid, linkedid, peer, userfield, extra) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
    )

    def __init__(self, csv: Path, dsn: str) -> None:
        self.csv, self.dsn = csv, dsn
        self.inserted = 0
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        conn = await asyncpg.connect(self.dsn)
        try:
            await conn.execute(CEL_TABLE.format(name="cel"))
        finally:
            await conn.close()
        self.task = asyncio.create_task(self._mirror())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)

    async def _mirror(self) -> None:
        conn = await asyncpg.connect(self.dsn)
        try:
            while True:
                rows = list(CelCsv(self.csv).rows(0.0))[self.inserted :]
                if rows:
                    await conn.executemany(self.INSERT, [self._values(r) for r in rows])
                    self.inserted += len(rows)
                await asyncio.sleep(0.05)
        finally:
            await conn.close()

    @staticmethod
    def _values(r: CelRow) -> tuple[Any, ...]:
        when = datetime.fromtimestamp(r.eventtime, UTC).replace(tzinfo=None)
        return (
            r.eventtype, when, r.cid_name, r.cid_num, r.exten, r.context, r.channame,
            r.appname, r.appdata, r.uniqueid, r.linkedid, r.peer, r.userfield, r.extra or None,
        )  # fmt: skip


@pytest.mark.parametrize("source", ["csv", "pgsql"])
async def test_ami_cut_while_talking_then_back_after_the_hang_up(
    tmp_path: Path, pg_dsn: str, source: str
) -> None:
    """The same bridge, its AMI socket cut while the customer talks to the first employee
    of a blind transfer, back after everybody hung up: the history is the true one
    (transferred, answered by the second employee), from the CEL (a cel_custom file, or
    cel_pgsql's table in PostgreSQL)."""
    name = "in_blind_transfer"
    trace = Trace(TRACES, name)
    want = [h for h in uninterrupted(trace, LAB22.tracker()).crm() if h["cmd"] == "history"]
    stop, back = trace.moment("talking"), trace.moment("hung_up")
    server = FakeAmiServer(TRACES / f"{name}.ami.jsonl", drop_while_disconnected=True)
    cel = tmp_path / "cel_master.csv"
    server.write_cel(TRACES / f"{name}.cel.csv", cel)
    table = CelPgsql(cel, pg_dsn)
    section = cel_section(cel)
    if source == "pgsql":
        await table.start()
        section = section.replace(
            f'source = "csv"\npath = "{cel}"', f'source = "pgsql"\nurl = "{pg_dsn}"\ntable = "cel"'
        )
    server.pause_after(position(server, trace, stop))
    crm = FakeCrm(token="tok")
    ports = Ports(ami=await server.start())
    config = write_config(tmp_path / "bridge.toml", ports, pg_dsn, await crm.start(), section)
    try:
        async with running_daemon(config, ports) as bridge:
            await server.wait_replayed(position(server, trace, stop))
            await wait_stored(bridge, stored_outputs(trace, stop))
            server.cut()
            server.pause_after(position(server, trace, back))  # while nobody listens
            await server.wait_logins(2)
            await bridge.wait_log("ami_resync", count=2, within=20)
            assert server.dropped, "the hang-ups happened while the bridge was away"
            server.resume()
            await crm.wait_for(lambda: len(crm.history().unique) >= len(want), 20)
            await asyncio.sleep(0.5)
            assert problems(want, crm) == []
            assert grammar_problems(crm) == []
            (finished,) = bridge.logs("call_finished")
            assert finished["closed_by"] == "backfill"
            assert bridge.logs("cel_backfill")
            assert {line.get("cel") for line in bridge.logs("bridge_tracking")} == {source}
    finally:
        await table.stop()
        await server.stop()
        await crm.stop()
    if source == "pgsql":
        assert table.inserted > 0, "the rows came from the table"
