"""FastAGI ``contact`` route: round trips/s and latency, cached, uncached, CRM that never answers.

Three processes, as on a PBX: this one plays Asterisk (one TCP connection per ``AGI()``,
the environment of the sample dialplan's line, ``GET VARIABLE`` answered like res_agi),
one runs the bridge's AGI server (``start_agi_server``, logging JSON at info to a null
stream, so log formatting is paid for; ``gc.freeze()`` after start-up), one runs a local
aiohttp CRM. A round trip is
connect -> environment -> commands -> the server closes the socket, i.e. how long the
dialplan is held.

A fourth process plays an Asterisk busy on AMI: it floods the bridge's AMI link with
recorded calls (rewritten to new ids, as fast as the socket takes them), and the AGI
server's process runs the daemon's real AMI ingest, tracker and pipeline (storing into a
null sink) on the same event loop, so the "during an AMI burst" row shows what a burst of
tracking costs a ringing call's look-up.

Targets (issue 3, issue 7): cached p99 <= 5 ms, quiet and during an AMI burst; with a
CRM that never answers, p99 <= the deadline (``contact_timeout``, 1.5 s) + 100 ms. For
that row the breaker is set so it never opens, so every call waits for the full deadline
(the worst case, not the usual).

``python -m bench.agi`` prints the report alone; ``agi_report()`` returns it.
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

DID = "74957654321"
CONTACT_TIMEOUT = 1.5
NEVER_PREFIX = "7900"  # the bench CRM never answers for these numbers
CACHED_TARGET_MS = 5.0


# --------------------------------------------------------------------------- child processes


class _Null:
    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


async def _serve_crm(conn: Connection) -> None:
    from aiohttp import web

    async def contact(request: web.Request) -> web.Response:
        form = await request.post()
        phone = str(form.get("phone", ""))
        if phone.startswith(NEVER_PREFIX):
            await asyncio.sleep(3600)
        return web.json_response({"contact_name": f"Customer {phone[-4:]}", "responsible": "101"})

    app = web.Application()
    app.router.add_post("/pbx/webhook", contact)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    gc.freeze()
    conn.send(runner.addresses[0][1])
    await asyncio.Event().wait()


def _crm_main(conn: Connection) -> None:
    asyncio.run(_serve_crm(conn))


BURST_ROUNDS = 120  # rounds of the recorded scenarios the AMI burst replays (~300k events)


async def _serve_ami(conn: Connection) -> None:
    """An AMI server that, once the bridge logs in, sends recorded calls as fast as it can."""
    import time as clock

    from bridge.devtools.endless import EndlessReplay
    from bridge.devtools.fake_ami import FakeAmiServer
    from bridge.devtools.traces import traces_dir

    paths = sorted(p for p in traces_dir().glob("*.ami.jsonl") if "load" not in p.name)
    replay = EndlessReplay(paths)
    now = clock.time()
    pairs = [pair for n in range(BURST_ROUNDS) for pair in replay.round(now + n * 100)]
    server = FakeAmiServer(pairs, speed=None)
    port = await server.start()
    gc.freeze()
    conn.send((port, len(pairs)))
    await asyncio.Event().wait()


def _ami_main(conn: Connection) -> None:
    asyncio.run(_serve_ami(conn))


class _NullStore:
    async def save(self, outputs: object) -> None:
        return None


async def _follow_ami(ami_port: int, priority: Any) -> Any:
    """The daemon's own AMI path (ingest -> tracker -> pipeline), into a null store."""
    from bridge.ami.ingest import AmiIngest
    from bridge.pipeline import CallPipeline
    from bridge.tracker.tracker import CallTracker

    tracker = CallTracker(["PJSIP/trunk-*"], ["PJSIP/*"], "RU", DID)
    ingest = AmiIngest(
        "127.0.0.1", ami_port, "bridge", "bridge", wants=tracker.wants, priority=priority
    )
    pipeline = CallPipeline(ingest, tracker, _NullStore(), priority=priority)
    asyncio.get_running_loop().create_task(pipeline.run())
    await ingest.start()
    return ingest


async def _serve_agi(conn: Connection, crm_url: str, port: int, ami_port: int) -> None:
    from bridge.agi import start_agi_server
    from bridge.config import Settings
    from bridge.observability.logs import configure_logging

    configure_logging("info", stream=_Null())  # type: ignore[arg-type]

    class _Sink:
        async def submit_rating(
            self,
            callid: str,
            rating: int,
            phone: str = "",
            ext: str = "",
            *,
            verified: bool = True,
        ) -> None:
            return None

    settings = Settings(
        pbx={"users": {"101": "ivan"}},
        crm={"url": crm_url, "token": "bench", "contact_timeout": CONTACT_TIMEOUT},
        agi={"listen": f"127.0.0.1:{port}", "breaker_failures": 1_000_000},
    )
    server = await start_agi_server(settings, _Sink())
    # As the daemon does once started: start-up objects (pydantic, aiohttp, phonenumbers)
    # leave the collector's view; otherwise each gen-2 pass scans them all, a ~40 ms stall
    # every few thousand calls that shows up as p99 when calls arrive at 200/s.
    gc.freeze()
    conn.send(server.port)
    ingest = None
    loop = asyncio.get_running_loop()
    while True:  # the bench's orders: "ami" starts following AMI, "events" asks how many
        order = await loop.run_in_executor(None, conn.recv)
        if order == "ami":
            ingest = await _follow_ami(ami_port, server.priority)
        conn.send(ingest.received if ingest is not None else 0)


def _agi_main(conn: Connection, crm_url: str, port: int, ami_port: int) -> None:
    asyncio.run(_serve_agi(conn, crm_url, port, ami_port))


# --------------------------------------------------------------------------- load


@dataclass
class Row:
    """One scenario's measured round trips (milliseconds, connect to close)."""

    name: str
    calls: int
    concurrency: int
    seconds: float
    latencies_ms: list[float]
    named: int
    runs_p99: list[float] = field(default_factory=list)  # all runs, when repeated

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    @property
    def rate(self) -> float:
        return self.calls / self.seconds if self.seconds else 0.0


def _env_for(phones: Callable[[int], str]) -> Callable[[int], list[tuple[str, str]]]:
    from tests.support.agi_client import asterisk_env, dialplan_agi

    line = dialplan_agi("crm-bridge-contact")

    def env(n: int) -> list[tuple[str, str]]:
        return asterisk_env(
            line, variables={"ARG1": DID}, callerid="+" + phones(n), uniqueid=f"1763805600.{n}"
        )

    return env


async def _one(port: int, env: list[tuple[str, str]], n: int) -> tuple[float, bool]:
    from tests.support.agi_client import agi_call

    started = time.perf_counter()
    call = await agi_call(port, env, variables={"CHANNEL(linkedid)": f"1763805600.{n}"})
    return (time.perf_counter() - started) * 1000, "CRM_CONTACT_NAME" in call.set_vars


async def _run(
    port: int, name: str, phones: Callable[[int], str], calls: int, concurrency: int
) -> Row:
    """Closed loop: ``concurrency`` channels, each starting its next call when one ends."""
    env = _env_for(phones)
    results: list[tuple[float, bool]] = []
    next_call = 0

    async def channel() -> None:
        nonlocal next_call
        while next_call < calls:
            n = next_call
            next_call += 1
            results.append(await _one(port, env(n), n))

    started = time.perf_counter()
    await asyncio.gather(*(channel() for _ in range(concurrency)))
    return Row(
        name,
        calls,
        concurrency,
        time.perf_counter() - started,
        [ms for ms, _ in results],
        sum(named for _, named in results),
    )


async def _run_rate(
    port: int, name: str, phones: Callable[[int], str], calls: int, rate: float
) -> Row:
    """Open loop: a new call every 1/rate s whatever the others do (how calls arrive)."""
    env = _env_for(phones)
    started = time.perf_counter()
    tasks = []
    for n in range(calls):
        delay = started + n / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(_one(port, env(n), n)))
    results = await asyncio.gather(*tasks)
    row = Row(
        name,
        calls,
        0,
        time.perf_counter() - started,
        [ms for ms, _ in results],
        sum(named for _, named in results),
    )
    row.name = f"{name} @ {rate:.0f}/s"
    return row


async def _median_of(runs: int, measure: Callable[[], Awaitable[Row]]) -> Row:
    """The run with the median p99 (a shared machine's hiccups hit one run, not three)."""
    rows = [await measure() for _ in range(runs)]
    rows.sort(key=lambda r: r.pct(0.99))
    chosen = rows[len(rows) // 2]
    chosen.runs_p99 = [r.pct(0.99) for r in rows]
    return chosen


async def _ask(control: Connection, order: str) -> int:
    control.send(order)
    return int(await asyncio.get_running_loop().run_in_executor(None, control.recv))


async def _during_burst(port: int, control: Connection, phones: Callable[[int], str]) -> Row:
    """Cached look-ups at 200/s while the same process tracks an AMI burst."""
    before = await _ask(control, "events")
    row = await _run_rate(port, "cached, AMI burst", phones, 400, 200)
    tracked = await _ask(control, "events") - before
    row.name += f" ({tracked / row.seconds / 1000:.0f}k events/s)"
    return row


async def _scenarios(port: int, control: Connection) -> list[Row]:
    def cached(n: int) -> str:
        return f"7911000{n % 100:04d}"

    rows = []
    await _run(port, "warm-up", cached, 100, 1)  # fills the cache with 100 numbers
    rows.append(await _median_of(3, lambda: _run(port, "cached", cached, 600, 1)))
    rows.append(await _median_of(3, lambda: _run_rate(port, "cached", cached, 400, 200)))
    rows.append(await _run(port, "cached", cached, 2000, 16))
    rows.append(await _run(port, "uncached", lambda n: f"7910{n:07d}", 600, 1))
    rows.append(await _run_rate(port, "uncached", lambda n: f"7913{n:07d}", 400, 200))
    rows.append(await _run(port, "uncached", lambda n: f"7912{n:07d}", 1000, 16))
    rows.append(
        await _run_rate(port, "CRM never answers", lambda n: f"{NEVER_PREFIX}{n:07d}", 300, 100)
    )
    await _ask(control, "ami")  # the burst begins: the bridge logs in to the busy AMI
    await asyncio.sleep(0.5)
    rows.append(await _median_of(3, lambda: _during_burst(port, control, cached)))
    return rows


def _table(rows: list[Row]) -> str:
    head = (
        "scenario",
        "calls",
        "conc",
        "round trips/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "named",
        "p99 of 3 runs",
    )
    lines = [head]
    for r in rows:
        conc = str(r.concurrency) if r.concurrency else "open"
        lines.append(
            (
                r.name,
                f"{r.calls:,}",
                conc,
                f"{r.rate:,.0f}",
                f"{r.pct(0.50):.2f}",
                f"{r.pct(0.99):.2f}",
                f"{max(r.latencies_ms):.2f}",
                f"{r.named:,}",
                " / ".join(f"{p:.1f}" for p in r.runs_p99) or "-",
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    out = []
    for n, line in enumerate(lines):
        cells = [line[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(line[1:], widths[1:], strict=True)
        ]
        out.append("  ".join(cells))
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def _targets(rows: list[Row]) -> str:
    # Latency targets are about a call's wait, so they are judged on the rows that are not
    # saturated on purpose: one channel at a time, and calls arriving at a steady rate.
    cached_p99 = max(
        r.pct(0.99)
        for r in rows
        if r.name.startswith("cached") and r.concurrency != 16 and "burst" not in r.name
    )
    burst = next(r for r in rows if "burst" in r.name)
    never = next(r for r in rows if r.name.startswith("CRM never answers"))
    limit = CONTACT_TIMEOUT * 1000 + 100
    lines = [
        f"target cached p99 <= {CACHED_TARGET_MS:.0f} ms: {cached_p99:.2f} ms  "
        f"{'met' if cached_p99 <= CACHED_TARGET_MS else 'MISSED'}",
        f"target cached p99 during an AMI burst <= {CACHED_TARGET_MS:.0f} ms: "
        f"{burst.pct(0.99):.2f} ms  {'met' if burst.pct(0.99) <= CACHED_TARGET_MS else 'MISSED'}",
        f"target CRM-never-answers p99 <= deadline + 100 ms ({limit:.0f} ms): "
        f"{never.pct(0.99):.0f} ms  {'met' if never.pct(0.99) <= limit else 'MISSED'}",
    ]
    return "\n".join(lines)


def agi_report() -> str:
    """Run the three-process benchmark (~20 s on 2 cores) and return the report text."""
    from tests.support.agi_client import free_port

    ctx = multiprocessing.get_context("spawn")
    processes: list[Any] = []
    try:
        crm_end, crm_child = ctx.Pipe()
        crm = ctx.Process(target=_crm_main, args=(crm_child,), daemon=True)
        crm.start()
        processes.append(crm)
        crm_port = crm_end.recv()
        ami_end, ami_child = ctx.Pipe()
        ami = ctx.Process(target=_ami_main, args=(ami_child,), daemon=True)
        ami.start()
        processes.append(ami)
        ami_port, burst_events = ami_end.recv()
        agi_end, agi_child = ctx.Pipe()
        agi = ctx.Process(
            target=_agi_main,
            args=(agi_child, f"http://127.0.0.1:{crm_port}/pbx/webhook", free_port(), ami_port),
            daemon=True,
        )
        agi.start()
        processes.append(agi)
        port = agi_end.recv()
        started = time.perf_counter()
        gc.freeze()  # this stand-in for Asterisk must not add its own collector pauses
        try:
            rows = asyncio.run(_scenarios(port, agi_end))
        finally:
            gc.unfreeze()
        seconds = time.perf_counter() - started
    finally:
        for process in processes:
            process.terminate()
            process.join(5)
    return "\n".join(
        [
            "FastAGI contact route (Asterisk side, AGI server, CRM, busy AMI: four processes; "
            f"deadline {CONTACT_TIMEOUT} s; AMI burst of {burst_events:,} events; "
            f"{seconds:.1f} s)",
            _table(rows),
            "conc: channels in flight, each starting its next call when one ends (16: saturated,"
            " round trips/s is the capacity of the\nthree processes on this machine, the Python"
            " Asterisk side included); open: calls arrive at a steady rate; rows run 3 times show"
            " the median run",
            _targets(rows),
        ]
    )


if __name__ == "__main__":
    print(agi_report())
