"""The FastAGI server in a process of its own, ahead of the rest of the bridge for the CPU.

A look-up holds a ringing call; AMI tracking, delivery and the HTTP APIs can wait a few
milliseconds. On one event loop the bridge orders them itself (bridge.net.priority), but
on a CPU kept busy by an AMI burst every step of a look-up still waits for the kernel to
run the process whose loop is busy tracking. With ``[agi] own_process`` (the default) the
daemon binds the FastAGI port, starts this module on it (``python -m bridge.agi.worker``)
and then lowers its own priority to ``[agi] bridge_nice``: the kernel runs a look-up
before the tracking of a burst.

The worker has what look-ups need and nothing else: the CRM client and its cache, a copy
of the directory (the daemon sends it whenever it changes), and two questions it asks the
daemon: is this call known, take this rating. Its counters and round-trip histograms
reach the daemon every second, for ``/metrics``.

The link is a socket pair carrying JSON, one object per line:

- daemon -> worker: ``settings`` (first, with the daemon's log level and format),
  ``directory``, ``reply`` (``id``, ``value``);
- worker -> daemon: ``ready``, ``known`` and ``rating`` (each with an ``id`` the reply
  carries back), ``stats``, ``log``.

The worker's log lines go over the link too, and the daemon writes them where its own go
(journald, under systemd), through the same thread that never lets a stalled journal block
an event loop (bridge.observability.log_output). The worker never writes to a file or a
pipe itself; should the daemon be slow to read the link, the worker's lines wait there
(``LOG_BACKLOG`` at most, then they are dropped and counted:
``bridge_agi_worker_log_lines_dropped_total``), and look-ups go on being answered.

When the daemon goes away the worker's end of the link closes and it exits; when the worker
dies the daemon logs it and starts another. The listening socket stays open in the daemon
all along, so Asterisk's connections wait in the backlog meanwhile instead of failing.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import io
import itertools
import json
import os
import signal
import socket
import sys
from collections.abc import Awaitable, Mapping
from typing import Any

from ..backoff import Backoff
from ..config import Settings
from ..net.listener import bind_tcp
from ..net.priority import Priority
from ..observability.logs import get_logger, log_setup, write_rendered
from .directory import Directory
from .latency import Histogram
from .ports import KnownCall, RatingSink
from .server import AgiServer, start_agi_server

__all__ = ["AgiWorker", "lower_priority", "serve_agi"]

log = get_logger("bridge.agi")

LINK_LIMIT = 16 * 1024 * 1024  # longest line on the link (a directory of many thousands)
STATS_EVERY = 1.0  # seconds between two stats messages of the worker
READY_WITHIN = 60.0  # seconds a new worker may take to import and start
ASK_TIMEOUT = 30.0  # seconds the worker waits for the daemon's answer, at most
RESTART_PAUSE = (0.5, 5.0)  # seconds before starting a worker again: first, at most
LOG_BACKLOG = 1024 * 1024  # bytes of the worker's log lines waiting in the link, at most
MAX_LOG_TEXT = 64 * 1024  # a longer log line (a huge traceback) is cut


def _line(message: Mapping[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode() + b"\n"


def lower_priority(nice: int) -> int:
    """Add ``nice`` to the niceness of every thread of this process (its FastAGI worker
    keeps its own); returns this thread's niceness now.

    Linux keeps a niceness per thread (``os.nice`` changes the caller's only): a thread
    started before, such as the log writer's, would go on competing with the worker at
    the old priority. Threads started later take it from the thread starting them."""
    try:
        threads = [int(tid) for tid in os.listdir("/proc/self/task")]
    except OSError:  # no /proc: this thread, as POSIX has it
        return os.nice(nice)
    for tid in threads:
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            now = os.getpriority(os.PRIO_PROCESS, tid)
            os.setpriority(os.PRIO_PROCESS, tid, min(19, now + nice))
    return os.nice(0)


async def serve_agi(
    settings: Settings,
    sink: RatingSink,
    directory: Directory,
    known: KnownCall | None = None,
    priority: Priority | None = None,
) -> AgiServer | AgiWorker:
    """The FastAGI server as ``[agi]`` says: in a worker process (``own_process``), else
    on this event loop, where look-ups go before ``priority``'s AMI side. Started; the
    caller lowers its own priority afterwards (:func:`lower_priority`)."""
    if settings.agi.own_process:
        worker = AgiWorker(settings, sink, directory, known)
        await worker.start()
        return worker
    return await start_agi_server(
        settings, sink, directory=directory, known=known, priority=priority
    )


# ------------------------------------------------------------------ the daemon's side


class AgiWorker:
    """Looks like :class:`bridge.agi.AgiServer` to the daemon (``port``, ``stats()``,
    ``latency``, ``close()``) while the server runs in a child process.

    ``sink`` takes the ratings the worker receives, ``known`` answers whether a call is
    known, ``directory`` is copied to the worker whenever it changes.
    """

    def __init__(
        self,
        settings: Settings,
        sink: RatingSink,
        directory: Directory,
        known: KnownCall | None = None,
    ) -> None:
        self.settings = settings
        self.sink = sink
        self.directory = directory
        self.known = known
        self.port = 0
        self.restarts = 0
        self.latency: dict[str, Histogram] = {}
        self._stats: dict[str, float] = {}
        self._sock: socket.socket | None = None
        self._process: asyncio.subprocess.Process | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._directory_queued = False
        self._supervisor: asyncio.Task[None] | None = None
        self._requests: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._nice = os.nice(0)  # what workers run at, whatever the daemon lowers itself to
        self._log_dropped = 0.0  # the worker's count, last seen

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Bind the port (an error here is the daemon's to report), start a worker."""
        agi = self.settings.agi
        self.directory.on_change = self._directory_changed
        self._sock = await bind_tcp(agi.listen_host, agi.listen_port)
        self.port = int(self._sock.getsockname()[1])
        try:
            link = await self._spawn()
        except BaseException:
            self._sock.close()
            raise
        self._supervisor = asyncio.create_task(self._supervise(link), name="agi-worker")
        log.info("agi_listening", host=agi.listen_host, port=self.port, process="own")

    async def close(self, grace: float = 2.0) -> None:
        """Ask the worker to finish its look-ups and exit; kill it if it does not."""
        self._stopping = True
        process = self._process
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), grace + 3.0)
            except TimeoutError:
                log.error("agi_worker_kill", pid=process.pid)
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        if self._supervisor is not None:
            # it reads the worker's last lines (their log lines too) up to the end of the
            # link, then returns by itself
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._supervisor), grace)
            self._supervisor.cancel()
            await asyncio.gather(self._supervisor, return_exceptions=True)
        if self._requests:  # answers the worker will never read: let them end anyway
            await asyncio.wait(set(self._requests), timeout=grace)
        if self._sock is not None:
            self._sock.close()
        log.info("agi_closed", port=self.port)

    @property
    def pid(self) -> int | None:
        """The worker's process id (None before the first start)."""
        return None if self._process is None else self._process.pid

    def stats(self) -> dict[str, float]:
        """The worker's last counters, and the link's own."""
        return {**self._stats, "agi_worker_restarts": float(self.restarts)}

    # ------------------------------------------------------------------ the child

    async def _spawn(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        assert self._sock is not None
        ours, theirs = socket.socketpair()
        listen_fd, link_fd = self._sock.fileno(), theirs.fileno()
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bridge.agi.worker",
                str(listen_fd),
                str(link_fd),
                str(self._nice),
                stdin=asyncio.subprocess.DEVNULL,
                pass_fds=(listen_fd, link_fd),
            )
        finally:
            theirs.close()
        self._process = process
        reader, writer = await asyncio.open_connection(sock=ours, limit=LINK_LIMIT)
        self._writer = writer
        settings = self.settings.model_dump(mode="json")
        logs = log_setup()._asdict()
        writer.write(_line({"op": "settings", "settings": settings, "log": logs}))
        self._log_dropped = 0.0  # a new worker counts from zero
        self._send_directory()  # a new worker: the whole directory, now
        try:
            async with asyncio.timeout(READY_WITHIN):
                while True:
                    raw = await reader.readline()
                    if not raw:
                        raise RuntimeError(f"the FastAGI worker exited ({await process.wait()})")
                    message = json.loads(raw)
                    if message.get("op") == "ready":
                        break
                    self._handle(message)
        except BaseException:
            writer.close()
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
            raise
        log.info("agi_worker_started", pid=process.pid, nice=message.get("nice"))
        return reader, writer

    async def _supervise(self, link: tuple[asyncio.StreamReader, asyncio.StreamWriter]) -> None:
        backoff = Backoff(*RESTART_PAUSE)
        while True:
            await self._serve(*link)
            process = self._process
            code = await process.wait() if process is not None else None
            if self._stopping:
                return
            pause = backoff.next()
            log.error("agi_worker_exited", code=code, restart_in=pause)
            await asyncio.sleep(pause)
            while True:
                try:
                    link = await self._spawn()
                    break
                except Exception as exc:
                    pause = backoff.next()
                    log.error("agi_worker_start_failed", error=repr(exc), retry_in=pause)
                    await asyncio.sleep(pause)
            self.restarts += 1

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Until the worker's end closes: its questions and its figures."""
        try:
            while raw := await reader.readline():
                try:
                    self._handle(json.loads(raw))
                except Exception as exc:  # the worker is ours, but one bad line is one line
                    log.error(
                        "agi_worker_garbage",
                        line=raw[:80].decode(errors="replace"),
                        error=repr(exc)[:200],
                    )
        except (ConnectionError, ValueError) as exc:  # ValueError: a line over the limit
            log.error("agi_worker_link_failed", error=repr(exc))
        finally:
            writer.close()

    def _directory_changed(self) -> None:
        """Send the new directory once this loop turn's changes are made (a refresh makes
        several)."""
        if not self._directory_queued:
            self._directory_queued = True
            asyncio.get_running_loop().call_soon(self._send_directory)

    def _send_directory(self) -> None:
        self._directory_queued = False
        writer = self._writer
        if writer is None or writer.is_closing():
            return
        try:
            writer.write(_line({"op": "directory", "state": self.directory.state()}))
        except Exception:  # the worker keeps its copy; the next change is sent
            log.exception("agi_worker_directory_not_sent")

    def _handle(self, message: Mapping[str, Any]) -> None:
        op = message.get("op")
        if op == "log":
            # where the daemon's own lines cannot go, the worker's cannot either
            with contextlib.suppress(OSError, ValueError):
                write_rendered(str(message.get("text", "")))
        elif op == "stats":
            self._stats = {str(k): float(v) for k, v in message.get("stats", {}).items()}
            dropped = self._stats.get(LOG_DROPPED, 0.0)
            if dropped > self._log_dropped:
                log.warning(
                    "agi_worker_log_lines_dropped",
                    dropped=int(dropped - self._log_dropped),
                    total=int(dropped),
                    backlog_bytes=LOG_BACKLOG,
                )
            self._log_dropped = dropped
            self.latency = {
                route: _histogram(counts, total)
                for route, (counts, total) in message.get("latency", {}).items()
            }
        elif op == "known":
            self._answer(message.get("id"), self._known(str(message.get("callid", ""))))
        elif op == "rating":
            self._answer(message.get("id"), self._rating(message))
        else:
            log.error("agi_worker_unknown_message", op=str(op)[:40])

    async def _known(self, callid: str) -> bool | None:
        return None if self.known is None else await self.known(callid)

    async def _rating(self, message: Mapping[str, Any]) -> None:
        await self.sink.submit_rating(
            str(message["callid"]),
            int(message["rating"]),
            str(message.get("phone", "")),
            str(message.get("ext", "")),
            verified=bool(message.get("verified", True)),
        )

    def _answer(self, request: Any, work: Awaitable[Any]) -> None:
        async def answer() -> None:
            reply: dict[str, Any] = {"op": "reply", "id": request}
            try:
                reply["value"] = await work
            except Exception as exc:
                log.exception("agi_worker_request_failed")
                reply["error"] = repr(exc)
            writer = self._writer
            if writer is not None and not writer.is_closing():
                writer.write(_line(reply))

        task = asyncio.create_task(answer())
        self._requests.add(task)
        task.add_done_callback(self._requests.discard)


def _histogram(counts: list[int], total: float) -> Histogram:
    histogram = Histogram()
    histogram.counts = [int(n) for n in counts]
    histogram.total = float(total)
    return histogram


# ------------------------------------------------------------------ the worker's side


class _DaemonLink:
    """The worker's end: asks the daemon (a RatingSink and a KnownCall), gets its answers."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[Any]] = {}

    async def ask(self, message: dict[str, Any]) -> Any:
        if self.writer.is_closing():
            raise ConnectionError("the daemon is gone")
        request = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[request] = future
        self.writer.write(_line({**message, "id": request}))
        try:
            async with asyncio.timeout(ASK_TIMEOUT):
                return await future
        finally:
            self._waiting.pop(request, None)

    def answered(self, message: Mapping[str, Any]) -> None:
        future = self._waiting.get(message.get("id"))  # type: ignore[arg-type]
        if future is None or future.done():
            return
        if "error" in message:
            future.set_exception(RuntimeError(f"the daemon failed: {message['error']}"))
        else:
            future.set_result(message.get("value"))

    def gone(self) -> None:
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(ConnectionError("the daemon is gone"))

    async def known(self, callid: str) -> bool | None:
        try:
            verdict = await self.ask({"op": "known", "callid": callid})
        except (ConnectionError, TimeoutError):
            return None  # cannot tell: the sink checks before it writes
        return None if verdict is None else bool(verdict)

    async def submit_rating(
        self, callid: str, rating: int, phone: str = "", ext: str = "", *, verified: bool = True
    ) -> None:
        await self.ask(
            {
                "op": "rating",
                "callid": callid,
                "rating": rating,
                "phone": phone,
                "ext": ext,
                "verified": verified,
            }
        )


async def _read_link(reader: asyncio.StreamReader, directory: Directory, link: _DaemonLink) -> None:
    while raw := await reader.readline():
        message = json.loads(raw)
        if message.get("op") == "reply":
            link.answered(message)
        elif message.get("op") == "directory":
            directory.load(message["state"])
    link.gone()


class LinkLog(io.TextIOBase):
    """The worker's log stream: each line rendered here is sent to the daemon, which writes
    it with its own. Never blocks; while more than ``backlog`` bytes wait in the link (the
    daemon not reading: journald stalled), lines are dropped and counted."""

    def __init__(self, writer: asyncio.StreamWriter, backlog: int = LOG_BACKLOG) -> None:
        self.writer = writer
        self.backlog = backlog
        self.dropped = 0

    def write(self, text: str) -> int:
        transport = self.writer.transport
        if transport.is_closing() or transport.get_write_buffer_size() > self.backlog:
            self.dropped += 1
        else:
            self.writer.write(_line({"op": "log", "text": text[:MAX_LOG_TEXT]}))
        return len(text)


LOG_DROPPED = "agi_worker_log_lines_dropped"  # the stats key (a counter on /metrics)


async def _send_stats(server: AgiServer, writer: asyncio.StreamWriter, logs: LinkLog) -> None:
    while not writer.is_closing():
        latency = {route: (h.counts, h.total) for route, h in server.latency.items()}
        stats = {**server.stats(), LOG_DROPPED: logs.dropped}
        writer.write(_line({"op": "stats", "stats": stats, "latency": latency}))
        await asyncio.sleep(STATS_EVERY)


async def _work(listen_fd: int, link_fd: int, nice: int) -> None:
    from ..observability.logs import configure_logging

    link_sock = socket.socket(fileno=link_fd)
    reader, writer = await asyncio.open_connection(sock=link_sock, limit=LINK_LIMIT)
    first = json.loads(await reader.readline())
    settings = Settings.model_validate(first["settings"])
    logs = LinkLog(writer)
    setup = first.get("log") or {}
    configure_logging(
        setup.get("level", settings.log.level),
        json=setup.get("json", True),
        stream=logs,  # type: ignore[arg-type]  # write() and flush() are what it uses
        cache_loggers=True,
    )
    now = _restore_priority(nice)
    directory = Directory({}, region=settings.pbx.region)
    state = json.loads(await reader.readline())
    directory.load(state["state"])
    link = _DaemonLink(writer)
    listen = socket.socket(fileno=listen_fd)
    listen.setblocking(False)
    server = await start_agi_server(
        settings, link, directory=directory, known=link.known, sock=listen
    )
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stopped.set)
    following = asyncio.create_task(_read_link(reader, directory, link))
    following.add_done_callback(lambda _: stopped.set())
    gc.freeze()  # start-up objects live for ever: keep the collector's passes short
    writer.write(_line({"op": "ready", "nice": now}))
    reporting = asyncio.create_task(_send_stats(server, writer, logs))
    await stopped.wait()
    await server.close()  # look-ups in progress finish, ratings reach the daemon
    for task in (reporting, following):
        task.cancel()
    await asyncio.gather(reporting, following, return_exceptions=True)
    writer.close()


def _restore_priority(nice: int) -> int:
    """Run at the daemon's niceness from before it lowered its own (a worker restarted by a
    daemon already at ``bridge_nice`` inherits that). Raising a priority takes root or
    systemd's ``LimitNICE=``; without them the worker stays where it is, and says so."""
    current = os.nice(0)
    if current > nice:
        try:
            os.setpriority(os.PRIO_PROCESS, 0, nice)
        except OSError as exc:
            log.warning("agi_worker_nice_kept", nice=current, wanted=nice, error=exc.strerror)
    return os.nice(0)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    listen_fd, link_fd, nice = (int(a) for a in args)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the daemon's to handle
    asyncio.run(_work(listen_fd, link_fd, nice))
    return 0


if __name__ == "__main__":
    sys.exit(main())
