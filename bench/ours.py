"""Our own figures, measured on the same stream as the baselines (see bench/__main__.py).

(c) parse + track: the bytes go through `FastAmiProtocol.data_received` in socket-sized
    chunks, every event straight into the call tracker (no database).
(d) end to end: a separate process plays Asterisk (banner, Login, then the whole stream
    over TCP as fast as the socket takes it); the real `AmiIngest` + `CallPipeline` +
    `CallStore` write into a private PostgreSQL; the clock stops when the last event's
    outputs are committed.
Peak RSS with 1,000 concurrent calls open is measured in a fresh process.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

from bench.baselines import NullTransport, chunk_size
from bench.result import Result

REPO = Path(__file__).resolve().parents[1]
LAB = dict(trunks=["PJSIP/trunk-*"], extensions=["PJSIP/*"], region="RU", main_number="74957654321")


def _tracker():
    from bridge.tracker.tracker import CallTracker

    return CallTracker(**LAB)


class _Factory:
    """What FastAmiProtocol needs from panoramisk's Manager: a sink and a dispatch."""

    def __init__(self, sink) -> None:
        self.on_ami_event = sink
        self.skipped = 0
        self.forgetable_actions = ()
        self.awaiting_actions: list[Any] = []

    def on_ami_skipped(self) -> None:
        self.skipped += 1

    def dispatch(self, message) -> None:  # responses only; none in the stream
        pass

    def connection_lost(self, exc) -> None:
        pass


def ours_parse_and_track(stream: bytes, events: int) -> Result:
    from bridge.ami.protocol import FastAmiProtocol

    tracker = _tracker()
    outputs = 0

    def sink(message, received_at):
        nonlocal outputs
        result = tracker.feed(message, received_at)
        if result:
            outputs += len(result)

    protocol = FastAmiProtocol()
    protocol.wants = tracker.wants  # as the daemon runs it: unneeded events skip the parser
    protocol.connection_made(NullTransport())
    protocol.factory = _Factory(sink)
    size = chunk_size()
    view = memoryview(stream)
    start = time.perf_counter()
    for i in range(0, len(stream), size):
        protocol.data_received(bytes(view[i : i + size]))
    seconds = time.perf_counter() - start
    seen = tracker.events_seen + protocol.factory.skipped
    return Result.timed(
        "(c) ours: parse + tracker",
        seen,
        seconds,
        notes=f"{outputs} CRM events/records, {tracker.open_calls} calls left open; "
        f"{protocol.factory.skipped:,} events skipped unparsed (of no use to the tracker)",
        extra={"open_calls": tracker.open_calls, "outputs": outputs},
    )


_SERVER = textwrap.dedent("""
    import socket, sys
    path, port_file = sys.argv[1], sys.argv[2]
    data = open(path, "rb").read()
    srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0)); srv.listen(1)
    open(port_file, "w").write(str(srv.getsockname()[1]))
    conn, _ = srv.accept()
    conn.sendall(b"Asterisk Call Manager/11.0.0\\r\\n")
    buf = b""
    while b"\\r\\n\\r\\n" not in buf:
        buf += conn.recv(4096)
    action_id = [l.split(b": ", 1)[1] for l in buf.split(b"\\r\\n") if l.startswith(b"ActionID")]
    aid = action_id[0] if action_id else b"1"
    conn.sendall(b"Response: Success\\r\\nActionID: " + aid + b"\\r\\nMessage: Authentication accepted\\r\\n\\r\\n")
    conn.sendall(data)
    # answer CoreShowChannels (and anything else) with an empty list, then linger
    conn.settimeout(60)
    try:
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                break
            for msg in chunk.split(b"\\r\\n\\r\\n"):
                ids = [l.split(b": ", 1)[1] for l in msg.split(b"\\r\\n") if l.startswith(b"ActionID")]
                if b"CoreShowChannels" in msg and ids:
                    conn.sendall(b"Response: Success\\r\\nActionID: " + ids[0] + b"\\r\\nEventList: start\\r\\nMessage: Channels will follow\\r\\n\\r\\n"
                                 b"Event: CoreShowChannelsComplete\\r\\nActionID: " + ids[0] + b"\\r\\nEventList: Complete\\r\\nListItems: 0\\r\\n\\r\\n")
                elif ids:
                    conn.sendall(b"Response: Success\\r\\nActionID: " + ids[0] + b"\\r\\n\\r\\n")
    except OSError:
        pass
""")


def ours_end_to_end_postgres(stream: bytes, events: int) -> Result:
    try:
        from bridge.devtools.local_postgres import LocalPostgres
    except ImportError as exc:  # pragma: no cover
        return Result.skip("(d) ours: AMI socket -> Postgres", str(exc))
    with tempfile.TemporaryDirectory() as tmp, LocalPostgres() as pg:
        dsn = pg.create_database("bench")
        path = Path(tmp) / "stream.bin"
        path.write_bytes(stream)
        port_file = Path(tmp) / "port"
        server = subprocess.Popen([sys.executable, "-c", _SERVER, str(path), str(port_file)])
        try:
            while not port_file.exists() or not port_file.read_text():
                time.sleep(0.02)
            port = int(port_file.read_text())
            return asyncio.run(_end_to_end(port, dsn, events))
        finally:
            server.kill()
            server.wait()


async def _end_to_end(port: int, dsn: str, events: int) -> Result:
    from bridge.ami.ingest import AmiIngest
    from bridge.config import Settings
    from bridge.pipeline import CallPipeline
    from bridge.store.calls import CallStore
    from bridge.store.migrations import migrate
    from bridge.store.partitions import make_partitions
    from bridge.wiring import open_pool

    pool = await open_pool(
        Settings.model_validate({"database": {"url": dsn}}), max_size=2
    )  # the daemon's
    async with pool.acquire() as conn:
        await migrate(conn)
        await make_partitions(conn)  # as the daemon does at start
    tracker = _tracker()
    ingest = AmiIngest(
        "127.0.0.1",
        port,
        "bench",
        "bench",
        queue_size=10_000_000,
        ping_interval=3600,
        wants=tracker.wants,
    )
    pipeline = CallPipeline(ingest, tracker, CallStore(pool, "bench"))
    task = asyncio.create_task(pipeline.run())
    start = time.perf_counter()
    await ingest.start()
    while ingest.received < events or ingest.buffer:
        await asyncio.sleep(0.005)
    await pipeline.drain()
    seconds = time.perf_counter() - start
    rows = await pool.fetchval("SELECT count(*) FROM calls")
    event_rows = await pool.fetchval("SELECT count(*) FROM call_events")
    await ingest.stop()
    task.cancel()
    await pool.close()
    return Result.timed(
        "(d) ours: AMI socket -> Postgres",
        events,
        seconds,
        notes=f"{rows} calls and {event_rows} call events committed, "
        f"{pipeline.batches} transactions",
        extra={"calls": rows, "call_events": event_rows},
    )


_RSS = textwrap.dedent("""
    import json, sys
    sys.path.insert(0, sys.argv[1])
    from bridge.ami.trace import trace_events
    from bridge.tracker.tracker import CallTracker
    traces = sys.argv[2]
    events = [ev for _, ev in trace_events(traces + "/in_answered.ami.jsonl")]
    # the call up to the moment it is answered and bridged (first BridgeEnter of the trunk)
    cut = next(i for i, ev in enumerate(events) if ev.get("Event") == "BridgeEnter"
               and ev.get("Channel", "").startswith("PJSIP/trunk")) + 1
    head = events[:cut]
    def rss_mb():
        for line in open("/proc/self/status"):
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    tracker = CallTracker(["PJSIP/trunk-*"], ["PJSIP/*"], "RU", "74957654321")
    base = rss_mb()
    for n in range(1000):
        suffix = "%04d" % n
        for ev in head:
            ev2 = {k: (v + suffix if k in ("Uniqueid", "Linkedid", "DestUniqueid", "DestLinkedid")
                       else v.replace("-0000", "-" + suffix) if k in ("Channel", "DestChannel")
                       else v.replace("-", suffix + "-", 1) if k == "BridgeUniqueid" else v)
                   for k, v in ev.items()}
            tracker.feed(ev2, 0.0)
    def hwm_mb():  # ru_maxrss would count the parent's memory from before exec
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM"):
                return int(line.split()[1]) / 1024
    print(json.dumps({"open_calls": tracker.open_calls, "rss_mb": rss_mb(), "base_mb": base,
                      "peak_mb": hwm_mb()}))
""")


def peak_rss_1000_calls() -> dict:
    from bench.corpus import traces_dir

    out = subprocess.run(
        [sys.executable, "-c", _RSS, str(REPO), str(traces_dir())],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out)


BENCHMARKS = [ours_parse_and_track, ours_end_to_end_postgres]
