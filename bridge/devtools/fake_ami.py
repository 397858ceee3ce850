"""A fake Asterisk AMI server that replays recorded traces (``*.ami.jsonl``).

Why: the bridge must be tested against what Asterisk really sends (byte for byte), and
against what really goes wrong (socket cut mid-call, half-open links, garbage), without
a PBX. The server speaks enough AMI for panoramisk's ``Manager``: banner, Login,
Ping (with Asterisk's clock: the replayed events' ``Timestamp``), CoreShowChannels
(computed from the events already replayed, as main/manager.c builds it: the channel
snapshot, Application/ApplicationData, Duration on Asterisk's clock, BridgeId), the
directory's actions (``pbx``: see bridge.devtools.fake_directory), Originate (optionally
followed by a recorded call, see ``on_originate``), a generic Success for anything else.

With ``write_cel`` it also keeps Asterisk's Channel Event Log as cel_custom does: the
recorded ``.cel.csv`` rows of the trace appear in a file as Asterisk's clock reaches
them, whether or not anybody listens on AMI.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from .endless import EndlessReplay
from .fake_directory import FakePbx

__all__ = ["BANNER", "FakeAmiServer", "Headers", "load_trace", "parse_message"]

BANNER = "Asterisk Call Manager/11.0.0\r\n"
WAIT = 60.0  # seconds a test waits for the replay or a login, by default
Headers = dict[str, str]
Responder = Callable[[Headers], Iterable[str]]

# Fields of Asterisk's channel snapshot (ast_manager_build_channel_state_string).
SNAPSHOT_FIELDS = (
    "Channel",
    "ChannelState",
    "ChannelStateDesc",
    "CallerIDNum",
    "CallerIDName",
    "ConnectedLineNum",
    "ConnectedLineName",
    "Language",
    "AccountCode",
    "Context",
    "Exten",
    "Priority",
    "Uniqueid",
    "Linkedid",
)


def parse_message(raw: str) -> Headers:
    """``Key: Value`` lines -> dict (first occurrence wins; keys keep their case)."""
    headers: Headers = {}
    for line in raw.splitlines():
        key, sep, value = line.partition(":")
        if sep and key and key not in headers:
            headers[key] = value[1:] if value.startswith(" ") else value
    return headers


def _get(headers: Headers, name: str) -> str:
    """Case-insensitive header lookup (AMI keys are case-insensitive)."""
    name = name.lower()
    return next((v for k, v in headers.items() if k.lower() == name), "")


def _frame(raw: str) -> bytes:
    """A message as sent on the wire: header lines, each CRLF-ended, then a blank line."""
    if not raw.endswith("\r\n"):
        raw += "\r\n"
    return (raw + "\r\n").encode("utf-8", "surrogateescape")


def load_trace(
    source: str | os.PathLike[str] | Sequence[str] | Sequence[tuple[float, str]],
    include_responses: bool = False,
) -> list[tuple[float, str]]:
    """``(t, raw)`` pairs to replay. A path is a recorder ``.ami.jsonl``: its banner and
    Login response (lines 1-2) are skipped, and so are other ``Response:`` messages
    (answers to the recorder's own actions) unless ``include_responses``. Plain messages
    get t = 0; ``(t, raw)`` pairs are taken as they are."""
    if isinstance(source, (str, os.PathLike)):
        lines = Path(source).read_text(encoding="utf-8").splitlines()
        items = [json.loads(line) for line in lines[2:] if line.strip()]
        pairs = [(float(it["t"]), str(it["raw"])) for it in items]
        if not include_responses:
            pairs = [p for p in pairs if not p[1].startswith("Response:")]
        return pairs
    return [(0.0, item) if isinstance(item, str) else (item[0], item[1]) for item in source]


@dataclass(eq=False)
class _Conn:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    authed: bool = False
    events: bool = False
    silent: bool = False

    def alive(self) -> bool:
        return not self.writer.transport.is_closing()

    def send(self, *raws: str) -> None:
        if self.alive() and not self.silent:
            self.writer.write(b"".join(_frame(r) for r in raws))


@dataclass
class _Channel:
    fields: dict[str, str]
    created: float  # on Asterisk's clock
    application: str = ""
    application_data: str = ""
    bridge_id: str = ""


# Events naming several channels prefix each one's snapshot (DestUniqueid, ...).
_PREFIXES = (
    "",
    "Dest",
    "Transferee",
    "Transferer",
    "OrigTransferer",
    "SecondTransferer",
    "TransferTarget",
    "LocalOne",
    "LocalTwo",
)
# What a dialled channel runs, as app_dial.c, app_queue.c and dial.c (Originate) set it.
_DIALLED_BY = {"Queue": "AppQueue"}


class AsteriskView:
    """What Asterisk itself knows after the events replayed so far: its clock (the
    events' ``Timestamp``; ``t`` past the last stamped event when a message has none),
    its channel cache as ``CoreShowChannels`` lists it, and the CEL rows written so far.
    Pure bookkeeping: the server feeds it, tests may use it on their own."""

    def __init__(self) -> None:
        self.channels: dict[str, _Channel] = {}
        self.clock = 0.0
        self.stamped = False  # whether the events carry Asterisk's clock at all
        self._offset = 0.0  # Timestamp - t of the last stamped event

    def start_clock(self, trace: Sequence[tuple[float, str]]) -> None:
        """Asterisk's clock before the first event: the trace's first ``Timestamp``."""
        for t, raw in trace:
            stamp = parse_message(raw).get("Timestamp")
            if stamp:
                try:
                    self._offset = float(stamp) - t
                except ValueError:
                    continue
                self.clock, self.stamped = float(stamp), True
                return

    def now(self) -> float:
        """Asterisk's time now, as ``Ping`` tells it: the events' clock, or the host's
        when the events carry none (then the bridge's clock is its receipt time too)."""
        return self.clock if self.stamped else time.time()

    def apply(self, t: float, raw: str) -> Headers:
        h = parse_message(raw)
        stamp = h.get("Timestamp")
        if stamp:
            try:
                self._offset = float(stamp) - t
                self.stamped = True
            except ValueError:
                pass
        self.clock = max(self.clock, t + self._offset)
        event, uid = h.get("Event", ""), h.get("Uniqueid", "")
        if event == "Newchannel" and uid:
            self.channels[uid] = _Channel({k: h.get(k, "") for k in SNAPSHOT_FIELDS}, self.clock)
            return h
        if event == "Hangup":
            self.channels.pop(uid, None)
            return h
        for prefix in _PREFIXES:
            other = self.channels.get(h.get(prefix + "Uniqueid", ""))
            if other is not None and prefix + "ChannelState" in h:  # its snapshot
                other.fields.update({k: h[prefix + k] for k in SNAPSHOT_FIELDS if prefix + k in h})
        ch = self.channels.get(uid)
        if event == "DialBegin":
            dest = self.channels.get(h.get("DestUniqueid", ""))
            if dest is not None and not dest.application:
                dialer = _DIALLED_BY.get(ch.application, "AppDial") if ch else "AppDial2"
                dest.application, dest.application_data = dialer, "(Outgoing Line)"
        elif event == "BridgeMerge":
            source, target = h.get("FromBridgeUniqueid", ""), h.get("ToBridgeUniqueid", "")
            for other in self.channels.values():
                if source and other.bridge_id == source:
                    other.bridge_id = target
        if ch is None:
            return h
        if event == "Newexten":
            ch.application, ch.application_data = h.get("Application", ""), h.get("AppData", "")
        elif event == "BridgeEnter":
            ch.bridge_id = h.get("BridgeUniqueid", "")
        elif event == "BridgeLeave":
            ch.bridge_id = ""
        elif event == "Rename" and h.get("Newname"):
            ch.fields["Channel"] = h["Newname"]
        return h

    def show(self) -> list[Headers]:
        """The ``CoreShowChannel`` headers of every live channel, as now."""
        return [self._show(ch) for ch in self.channels.values()]

    def _show(self, ch: _Channel) -> Headers:
        secs = max(0, int(self.clock - ch.created))
        return {
            **ch.fields,
            "Application": ch.application,
            "ApplicationData": ch.application_data,
            "Duration": f"{secs // 3600:02d}:{secs % 3600 // 60:02d}:{secs % 60:02d}",
            "BridgeId": ch.bridge_id,
        }


class CelFile:
    """cel_custom's ``cel_master.csv`` for a replayed trace: the recorded rows (its
    ``.cel.csv`` without the header line) are appended as Asterisk's clock reaches their
    EventTime; ``finish`` writes the rest (the calls are over)."""

    def __init__(self, recorded: str | os.PathLike[str], path: str | os.PathLike[str]) -> None:
        lines = Path(recorded).read_text(encoding="utf-8").splitlines()
        if lines and lines[0].startswith("EventType"):
            lines = lines[1:]
        self.rows = [(_cel_time(line), line) for line in lines if line.strip()]
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.touch()
        self.written = 0

    def reveal(self, clock: float) -> None:
        end = self.written
        while end < len(self.rows) and self.rows[end][0] <= clock:
            end += 1
        self._write(end)

    def finish(self) -> None:
        self._write(len(self.rows))

    def _write(self, end: int) -> None:
        if end > self.written:
            with self.path.open("a", encoding="utf-8") as fh:
                fh.writelines(line + "\n" for _, line in self.rows[self.written : end])
            self.written = end


def _cel_time(line: str) -> float:
    """The EventTime of one cel_custom row (its second field)."""
    try:
        return float(line.split(",", 2)[1].strip('"'))
    except (IndexError, ValueError):
        return 0.0


class FakeAmiServer:
    """Replays ``trace`` to the logged-in client; see the module docstring.

    ``speed``: None = as fast as possible, else each recorded gap is multiplied by it
    (1.0 = real time, 0.1 = ten times faster). A leading ``FullyBooted`` in the trace
    is sent after every successful Login instead of being replayed. The replay position
    survives reconnects; with ``drop_while_disconnected`` the replay goes on while no
    client is logged in (events update the live channels but are lost, see ``dropped``).
    """

    def __init__(
        self,
        trace: str | os.PathLike[str] | Sequence[str] | Sequence[tuple[float, str]] = (),
        *,
        username: str = "bridge",
        secret: str = "bridge",
        speed: float | None = None,
        drop_while_disconnected: bool = False,
        include_responses: bool = False,
    ) -> None:
        self.username, self.secret = username, secret
        self.speed = speed
        self.drop_while_disconnected = drop_while_disconnected
        self._trace = load_trace(trace, include_responses)
        self._fully_booted = (
            "Event: FullyBooted\r\nPrivilege: system,all\r\nUptime: 1\r\n"
            "LastReload: 1\r\nStatus: Fully Booted\r\n"
        )
        if self._trace and parse_message(self._trace[0][1]).get("Event") == "FullyBooted":
            self._fully_booted = self._trace.pop(0)[1]
        self.actions: list[Headers] = []  # every action received, in order (parsed)
        self.raw_actions: list[str] = []  # the same, verbatim (repeated headers kept)
        self.dropped: list[str] = []  # trace messages consumed while nobody listened
        self.endpoints: list[str] = []  # PJSIP endpoints listed besides those seen in calls
        self.pbx = FakePbx()  # endpoints, SIP peers and queues Asterisk has configured
        self.originated: list[str] = []  # ChannelIds of the Originates answered
        self._originate_replay: EndlessReplay | None = None
        self._devices: set[str] = set()  # devices (PJSIP/1001) of every channel seen
        self.connections = 0  # TCP connections accepted
        self.logins = 0  # successful logins
        self._pos = 0
        self._hold_at: int | None = None
        self.asterisk = AsteriskView()
        self.asterisk.start_clock(self._trace)
        self._cel: CelFile | None = None
        self._conns: list[_Conn] = []
        self._handlers: set[asyncio.Task[None]] = set()
        self._responders: dict[str, Responder] = {}
        self._server: asyncio.Server | None = None
        self._replay_task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    # -- lifecycle ---------------------------------------------------------------------
    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen; returns the bound port."""
        self._server = await asyncio.start_server(self._serve, host, port, limit=1 << 20)
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._replay_task:
            self._replay_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._replay_task
        if self._server:
            self._server.close()
        self.cut()
        if self._handlers:  # let the per-connection tasks see the abort and finish
            await asyncio.wait(self._handlers, timeout=5)
        if self._server:
            await self._server.wait_closed()

    async def __aenter__(self) -> FakeAmiServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- test controls -----------------------------------------------------------------
    @property
    def replayed(self) -> int:
        """Trace messages consumed so far (sent, or dropped while disconnected)."""
        return self._pos

    @property
    def total(self) -> int:
        return len(self._trace)

    @property
    def port(self) -> int:
        assert self._server is not None, "not started"
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def remaining(self) -> int:
        return len(self._trace) - self._pos

    def extend(self, pairs: Iterable[tuple[float, str]]) -> None:
        """More messages to replay after the current ones (the demo's endless replay)."""
        self._trace.extend(pairs)
        task = self._replay_task
        if task is not None and task.done() and self._listener() is not None:
            self._replay_task = asyncio.create_task(self._replay(), name="fake-ami-replay")
        self._poke()

    def pause_after(self, n: int | None) -> None:
        """Hold the replay once ``n`` messages are consumed (None: no hold)."""
        self._hold_at = n
        self._poke()

    def resume(self) -> None:
        self.pause_after(None)

    def cut(self) -> None:
        """Abruptly close every client socket (no Goodbye), like a cable pulled."""
        for conn in list(self._conns):
            conn.writer.transport.abort()

    def go_silent(self) -> None:
        """Current connections stay open but get nothing more (half-open link)."""
        for conn in self._conns:
            conn.silent = True
        self._poke()

    def inject(self, data: bytes) -> None:
        """Write arbitrary bytes to the current client(s), e.g. garbage or huge headers."""
        for conn in self._conns:
            if conn.alive() and not conn.silent:
                conn.writer.write(data)

    def respond_with(self, action: str, responder: Responder) -> None:
        """Custom answer to ``action``: ``responder(headers)`` yields raw messages."""
        self._responders[action.lower()] = responder

    def on_originate(self, trace: str | os.PathLike[str]) -> None:
        """Answer every Originate with the recorded call ``trace`` (e.g. click_to_call),
        as if it happened now: its first channel gets the action's ``ChannelId`` (the
        call's Uniqueid and Linkedid), the others fresh ids, its OriginateResponse the
        action's ActionID."""
        self._originate_replay = EndlessReplay([Path(trace)])

    def live_channels(self) -> list[dict[str, str]]:
        """Channels alive after the events consumed so far, as CoreShowChannel headers."""
        return self.asterisk.show()

    def write_cel(self, recorded: str | os.PathLike[str], path: str | os.PathLike[str]) -> None:
        """Keep a CEL file at ``path`` as cel_custom would: the rows of ``recorded`` (the
        trace's ``.cel.csv``) appear as the replay reaches their time, all of them once the
        trace is over."""
        self._cel = CelFile(recorded, path)
        self._cel.reveal(self.asterisk.clock)

    # Each wait gives up after `within` seconds (TimeoutError saying what it waited for):
    # a client that never logs in fails its test instead of hanging the run.
    async def wait_replayed(self, n: int, within: float = WAIT) -> None:
        await self._wait(lambda: self._pos >= n, within, f"{n} messages replayed")

    async def wait_logins(self, n: int, within: float = WAIT) -> None:
        await self._wait(lambda: self.logins >= n, within, f"{n} logins")

    async def wait_done(self, within: float = WAIT) -> None:
        await self.wait_replayed(len(self._trace), within)

    async def flood(self, raws: Sequence[str], rate: float | None = None) -> int:
        """Once a client listens for events: send ``raws`` in big writes, ``rate`` events
        per second (None: as fast as it reads them), without modelling them
        (CoreShowChannels will not list their channels). A load test's Asterisk: a few
        syscalls per hundred events, as a C program's cost, not this replayer's per-event
        bookkeeping. Returns the bytes sent."""
        await self._wait(lambda: self._listener() is not None)
        conn = self._listener()
        assert conn is not None
        frames = [_frame(raw) for raw in raws]
        loop = asyncio.get_running_loop()
        tick = 0.01  # seconds between two writes at a set rate
        step = max(1, int(rate * tick)) if rate else 500
        started, sent = loop.time(), 0
        for n, start in enumerate(range(0, len(frames), step), 1):
            data = b"".join(frames[start : start + step])
            conn.writer.write(data)
            sent += len(data)
            await conn.writer.drain()
            if rate:
                await asyncio.sleep(max(0.0, started + n * tick - loop.time()))
        return sent

    # -- internals ---------------------------------------------------------------------
    def _poke(self) -> None:
        event, self._changed = self._changed, asyncio.Event()
        event.set()

    async def _wait(
        self, predicate: Callable[[], bool], within: float | None = None, what: str = ""
    ) -> None:
        try:
            async with asyncio.timeout(within):
                while not predicate():
                    await self._changed.wait()
        except TimeoutError:
            raise TimeoutError(
                f"fake AMI: no {what} after {within} s (replayed {self._pos} of "
                f"{len(self._trace)}, {self.logins} logins, {self.connections} connections)"
            ) from None

    def _listener(self) -> _Conn | None:
        """The newest logged-in, event-receiving, non-silent connection."""
        for conn in reversed(self._conns):
            if conn.authed and conn.events and not conn.silent and conn.alive():
                return conn
        return None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = _Conn(reader, writer)
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
            task.add_done_callback(self._handlers.discard)
        # No user-space buffering: whatever was counted as replayed is in the kernel,
        # so cut() loses nothing the counters claim was sent.
        writer.transport.set_write_buffer_limits(high=0)
        self._conns.append(conn)
        self.connections += 1
        self._poke()
        writer.write(BANNER.encode())
        try:
            while (raw := await self._read_action(reader)) is not None:
                if raw:
                    self._handle(conn, raw)
        except (ConnectionError, asyncio.LimitOverrunError, ValueError):
            pass
        finally:
            self._conns.remove(conn)
            writer.transport.abort()
            self._poke()

    @staticmethod
    async def _read_action(reader: asyncio.StreamReader) -> str | None:
        """One action's header lines (CRLF or LF ended) up to the blank line."""
        lines: list[str] = []
        while True:
            line = await reader.readline()
            if not line:
                return None
            text = line.decode("utf-8", "replace").rstrip("\r\n")
            if not text:
                return "\r\n".join(lines)
            lines.append(text)

    def _handle(self, conn: _Conn, raw: str) -> None:
        headers = parse_message(raw)
        self.actions.append(headers)
        self.raw_actions.append(raw)
        if conn.silent:
            return
        action = _get(headers, "Action").lower()
        aid = _get(headers, "ActionID")
        id_line = f"ActionID: {aid}\r\n" if aid else ""
        if not action:
            conn.send(f"Response: Error\r\n{id_line}Message: Missing action in request\r\n")
        elif action in self._responders:  # a test's script wins, Login included
            conn.send(*self._responders[action](headers))
        elif not conn.authed and action not in ("login", "logoff", "challenge"):
            conn.send(f"Response: Error\r\n{id_line}Message: Permission denied\r\n")
        elif action == "login":
            self._login(conn, headers, id_line)
        elif action == "logoff":
            conn.send(f"Response: Goodbye\r\n{id_line}Message: Thanks for all the fish.\r\n")
            conn.writer.close()
        elif action == "originate":
            self._originate(conn, headers, id_line)
        elif (answer := self._directory(action, headers, id_line)) is not None:
            conn.send(*answer)
        elif action == "ping":  # manager.c action_ping: Asterisk's clock
            conn.send(
                f"Response: Success\r\n{id_line}Ping: Pong\r\n"
                f"Timestamp: {self.asterisk.now():.6f}\r\n"
            )
        elif action == "coreshowchannels":
            items = [
                f"Event: CoreShowChannel\r\n{id_line}"
                + "".join(f"{k}: {v}\r\n" for k, v in item.items())
                for item in self.asterisk.show()
            ]
            conn.send(
                f"Response: Success\r\n{id_line}EventList: start\r\n"
                "Message: Channels will follow\r\n",
                *items,
                f"Event: CoreShowChannelsComplete\r\n{id_line}EventList: Complete\r\n"
                f"ListItems: {len(items)}\r\n",
            )
        else:
            conn.send(f"Response: Success\r\n{id_line}")

    def _directory(self, action: str, headers: Headers, id_line: str) -> list[str] | None:
        """The directory's actions; endpoints of the channels seen so far are listed too."""
        seen = self._devices | {f"PJSIP/{name}" for name in self.endpoints}
        return self.pbx.answer(action, headers, id_line, seen)

    def _originate(self, conn: _Conn, headers: Headers, id_line: str) -> None:
        """main/manager.c action_originate: a check of the headers, then (Async) the
        acknowledgement; the call's events follow when ``on_originate`` gave a trace."""
        if not _get(headers, "Channel"):
            conn.send(f"Response: Error\r\n{id_line}Message: Channel not specified\r\n")
            return
        if "/" not in _get(headers, "Channel"):
            conn.send(f"Response: Error\r\n{id_line}Message: Invalid channel\r\n")
            return
        conn.send(f"Response: Success\r\n{id_line}Message: Originate successfully queued\r\n")
        channel_id = _get(headers, "ChannelId")
        self.originated.append(channel_id)
        if self._originate_replay is not None:
            self.extend(self._originated_call(channel_id, _get(headers, "ActionID")))

    def _originated_call(self, channel_id: str, action_id: str) -> list[tuple[float, str]]:
        assert self._originate_replay is not None
        pairs = self._originate_replay.round(time.time())
        first = next(
            (parse_message(raw).get("Uniqueid", "") for _, raw in pairs if "Newchannel" in raw),
            "",
        )
        base = self._trace[-1][0] if self._trace else 0.0
        t0 = pairs[0][0] if pairs else 0.0
        out = []
        for t, raw in pairs:
            if channel_id and first:
                raw = re.sub(
                    rf"^(\w*(?:Uniqueid|Linkedid): ){re.escape(first)}(?=\r?$)",
                    lambda m: m.group(1) + channel_id,
                    raw,
                    flags=re.MULTILINE,
                )
            raw = re.sub(
                r"^ActionID: [^\r\n]*\r\n",
                f"ActionID: {action_id}\r\n" if action_id else "",
                raw,
                flags=re.MULTILINE,
            )
            out.append((base + (t - t0), raw))
        return out

    def _login(self, conn: _Conn, headers: Headers, id_line: str) -> None:
        if _get(headers, "Username") != self.username or _get(headers, "Secret") != self.secret:
            conn.send(f"Response: Error\r\n{id_line}Message: Authentication failed\r\n")
            conn.writer.close()  # flushes the error first, then FIN
            return
        conn.authed = True
        conn.events = _get(headers, "Events").lower() not in ("off", "no", "false", "0")
        conn.send(f"Response: Success\r\n{id_line}Message: Authentication accepted\r\n")
        if conn.events:
            conn.send(self._fully_booted)
        self.logins += 1
        if self._replay_task is None and conn.events:
            self._replay_task = asyncio.create_task(self._replay(), name="fake-ami-replay")
        self._poke()

    async def _replay(self) -> None:
        prev_t: float | None = None
        while self._pos < len(self._trace):
            t, raw = self._trace[self._pos]
            if self.speed is not None and prev_t is not None and t > prev_t:
                await asyncio.sleep((t - prev_t) * self.speed)
            prev_t = t
            await self._wait(
                lambda: (
                    (self._hold_at is None or self._pos < self._hold_at)
                    and (self.drop_while_disconnected or self._listener() is not None)
                )
            )
            conn = self._listener()
            self._apply(t, raw)
            if conn is None:
                self.dropped.append(raw)
            else:
                conn.send(raw)
            self._pos += 1
            if self._pos == len(self._trace) and self._cel is not None:
                self._cel.finish()  # the calls are over: their last rows are written
            self._poke()
            if conn is not None:
                with contextlib.suppress(ConnectionError):
                    await conn.writer.drain()
            if self.speed is None and self._pos % 64 == 0:
                await asyncio.sleep(0)  # let the client and test code run

    def _apply(self, t: float, raw: str) -> None:
        """What Asterisk knows now: channels for CoreShowChannels, its clock, its CEL."""
        h = self.asterisk.apply(t, raw)
        if h.get("Event") == "Newchannel" and h.get("Uniqueid"):
            self._devices.add(h.get("Channel", "").rsplit("-", 1)[0])
        if self._cel is not None:
            self._cel.reveal(self.asterisk.clock)


def concat_traces(paths: Iterable[str | os.PathLike[str]]) -> list[str]:
    """Several recorded traces as one AMI stream (one login, one FullyBooted)."""
    return [
        text
        for path in paths
        for _, text in load_trace(path)
        if not text.startswith("Event: FullyBooted")
    ]
