"""AMI ingest: one healthy connection to Asterisk, events in order into a bounded buffer.

Built around panoramisk's `Manager` with its known traps closed (STYLE.md):
- events arrive through one plain callback into a deque, never as fire-and-forget tasks,
  so their order holds and the read path never waits on the database (Asterisk drops a
  reader slower than its `writetimeout`);
- our own Ping watchdog: panoramisk never checks Ping replies, so a half-open socket
  would go unnoticed; no reply within `ping_timeout` aborts the socket;
- reconnect with capped exponential backoff and jitter instead of a fixed delay;
- actions that were unanswered when the link dropped fail instead of being re-sent after
  the reconnect (an `Originate` sent twice rings a customer twice);
- on every login a resync: `CoreShowChannels` tells which channels are still up, so calls
  that ended while we were away get closed and live ones adopted.

The buffer holds `(message, received_at)` tuples plus two control items, `ResyncMark`
(where the channel snapshot was asked for) and `Resync` (the snapshot), in stream order.
If the consumer falls so far behind that the buffer is full, events are dropped, counted,
and a resync is asked for once the buffer has room again.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from panoramisk import Manager

from ..backoff import Backoff
from ..net.priority import Priority
from ..observability.logs import get_logger
from ..tracker.stamps import stamp_of
from .parser import AmiMessage
from .protocol import FastAmiProtocol

log = get_logger("bridge.ami")


@dataclass(slots=True)
class ResyncMark:
    """Channels known before this point and absent from the `Resync` of the same id ended.
    An `EventsDropped` before it (since the previous mark) is where its gap began."""

    at: float
    id: int = 0


@dataclass(slots=True)
class EventsDropped:
    """From here on some of Asterisk's events were dropped (a full buffer), the first of
    them at `since` (Asterisk's clock when the event says it): the calls up now, and those
    born before the resync the loss asks for, are not seen whole. Put in the buffer (beyond
    its bound) at the first drop after a resync's mark."""

    since: float


@dataclass(slots=True)
class Resync:
    at: float
    live: list[AmiMessage] = field(default_factory=list)
    id: int = 0


Item = tuple[AmiMessage, float] | EventsDropped | ResyncMark | Resync


class _Manager(Manager):
    """panoramisk's Manager with backoff and without blind re-sends."""

    ingest: AmiIngest

    def on_ami_event(self, message: AmiMessage, received_at: float) -> None:
        self.ingest.push(message, received_at)

    def on_ami_skipped(self) -> None:
        self.ingest.received += 1
        self.ingest.skipped += 1

    def connection_made(self, f: asyncio.Future[Any]) -> None:
        if not f.cancelled() and f.exception() is None:
            self.ingest.connected_at = time.monotonic()
        else:
            self.reconnect_timeout = self.ingest.next_backoff()
            error = "cancelled" if f.cancelled() else repr(f.exception())
            log.warning(
                "ami_connect_failed",
                host=self.ingest.host,
                port=self.ingest.port,
                error=error,
                retry_in=round(self.reconnect_timeout, 2),
            )
        super().connection_made(f)

    def connection_lost(self, exc: Exception | None) -> None:
        self.reconnect_timeout = self.ingest.next_backoff()
        self.authenticated = False
        for action in self.awaiting_actions:  # never re-send blindly after a reconnect
            if not action.future.done():
                action.future.set_exception(ConnectionError("AMI connection lost"))
        self.awaiting_actions.clear()
        self.ingest.connected_at = None  # no login is pending on a dead link
        self.ingest.on_disconnect()
        super().connection_lost(exc)


class AmiIngest:
    def __init__(
        self,
        host: str,
        port: int,
        username: str,
        secret: str,
        *,
        ping_interval: float = 5.0,
        ping_timeout: float = 5.0,
        reconnect_max_delay: float = 30.0,
        queue_size: int = 100_000,
        resync_timeout: float = 30.0,
        login_timeout: float = 10.0,
        wants: Callable[[str, str], bool] | None = None,
        clock: Callable[[], float] = time.time,
        priority: Priority | None = None,
    ) -> None:
        self.host, self.port = host, port
        self.username, self.secret = username, secret
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.reconnect_max_delay = reconnect_max_delay
        self.queue_size = queue_size
        self.resync_timeout = resync_timeout
        self.login_timeout = login_timeout
        self.clock = clock
        self.buffer: deque[Item] = deque()
        self.wake = asyncio.Event()
        self.logged_in = asyncio.Event()
        self.manager: _Manager | None = None
        self.wants = wants  # the consumer's filter of events (see FastAmiProtocol.wants)
        self.priority = priority  # look-ups that go first (see FastAmiProtocol.priority)
        self.dropped = 0
        self.skipped = 0
        self.received = 0
        self.logins = 0
        self.reconnects = 0
        self.resyncs = 0
        self.task_failures = 0
        self._backoff = Backoff(first=0.25, cap=reconnect_max_delay, jitter=0.5)
        self._resync_wanted = False
        self._resyncing = False
        self._resync_id = 0
        self._resync_task: asyncio.Task[None] | None = None
        self._resync_failures = 0
        self._loss_said = False  # an EventsDropped is in the stream since the last mark
        self.connected_at: float | None = None  # monotonic time of the TCP connection
        self._tasks: set[asyncio.Task[None]] = set()
        self._watchdog: asyncio.Task[None] | None = None
        self.login_hooks: list[Callable[[], Any]] = []  # coroutines to run after each login

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        manager = _Manager(
            host=self.host,
            port=self.port,
            username=self.username,
            secret=self.secret,
            loop=loop,
            protocol_factory=self._protocol,
            events="on",
            ping_delay=10**9,  # panoramisk's own pinger never checks replies: ours does
            reconnect_timeout=1,
            on_login=self._on_login,
            forgetable_actions=("ping", "login"),
        )
        manager.ingest = self
        manager.log = log
        self.manager = manager
        manager.connect()
        self._watchdog = asyncio.create_task(self._watch(), name="ami-watchdog")

    async def stop(self) -> None:
        tasks = list(self._tasks)
        if self._watchdog is not None:
            tasks.append(self._watchdog)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.manager is not None:
            manager, self.manager = self.manager, None
            manager.connection_lost = lambda exc: None  # type: ignore[method-assign]  # no reconnect while stopping
            manager.close()

    def _protocol(self) -> FastAmiProtocol:
        protocol = FastAmiProtocol()
        protocol.wants = self.wants
        protocol.priority = self.priority
        return protocol

    @property
    def connected(self) -> bool:
        return bool(self.manager is not None and self.manager.authenticated)

    async def send_action(
        self, action: dict[str, Any], within: float = 10.0, as_list: bool | None = None
    ) -> Any:
        """Send one action once; raises ConnectionError when not logged in (or when the
        link drops before the answer: never re-sent), TimeoutError after `within` s.
        `as_list=False` takes the first answer even when panoramisk would wait for a list
        (an async Originate's "successfully queued")."""
        if not self.connected or self.manager is None:
            raise ConnectionError("AMI is not connected")
        return await asyncio.wait_for(self.manager.send_action(action, as_list=as_list), within)

    # ------------------------------------------------------------------ buffer

    def push(self, message: AmiMessage, received_at: float) -> None:
        self.received += 1
        if len(self.buffer) >= self.queue_size:
            self.dropped += 1
            if not self._loss_said:
                self._loss_said = True
                self.buffer.append(EventsDropped(stamp_of(message.get("Timestamp"), received_at)))
            if not self._resync_wanted:
                log.error("ami_buffer_full_dropping_events", size=self.queue_size)
            self._resync_wanted = True
            return
        self.buffer.append((message, received_at))
        if not self.wake.is_set():
            self.wake.set()

    def take(self, limit: int) -> list[Item]:
        """Up to `limit` items, in order (the consumer's side)."""
        buffer = self.buffer
        n = min(limit, len(buffer))
        items = [buffer.popleft() for _ in range(n)]
        if not buffer:
            self.wake.clear()
            if self._resync_wanted and self.connected and not self._resyncing:
                self._resync_wanted = False
                self._start_resync()
        return items

    def _control(self, item: ResyncMark | Resync) -> None:
        self.buffer.append(item)
        self.wake.set()

    # -------------------------------------------------------------- connection

    def next_backoff(self) -> float:
        return self._backoff.next()

    def on_disconnect(self) -> None:
        if self.logged_in.is_set():
            self.reconnects += 1
            log.warning("ami_disconnected")
        self.logged_in.clear()

    def _on_login(self, manager: _Manager) -> None:
        self._backoff.reset()
        self.connected_at = None  # logged in: no login is pending any more
        self.logins += 1
        self.logged_in.set()
        log.info("ami_logged_in", host=self.host, port=self.port, logins=self.logins)
        self._start_resync()
        for hook in self.login_hooks:
            self._spawn(hook())

    def _start_resync(self) -> None:
        """A resync for the link of now: one still running for a dead link is abandoned
        (its CoreShowChannels can never answer), never left to block this one."""
        previous = self._resync_task
        if previous is not None and not previous.done():
            previous.cancel()
            self._resyncing = False
        self._resync_task = self._spawn(self._resync())

    async def _resync(self) -> None:
        """Ask Asterisk which channels are up; one resync at a time, marks paired by id."""
        manager = self.manager
        if manager is None or self._resyncing:
            return
        self._resyncing = True
        self._resync_wanted = False  # this one covers whatever asked for it
        self._resync_id += 1
        resync_id = self._resync_id
        try:
            self._loss_said = False
            self._control(ResyncMark(self.clock(), resync_id))
            try:
                at = await self._asterisk_now(manager)
                replies = await asyncio.wait_for(
                    manager.send_action({"Action": "CoreShowChannels"}, as_list=True),
                    self.resync_timeout,
                )
            except (TimeoutError, ConnectionError) as exc:
                retry = manager is self.manager and self.connected
                log.warning("ami_resync_failed", error=repr(exc), retry=retry)
                if retry:  # the link is up: the channels must still be asked for
                    self._resync_failures += 1
                    self._spawn(self._resync_after(min(30.0, 2.0**self._resync_failures)))
                return
            if not isinstance(replies, list):
                replies = [replies]
            live = [
                {key: value for key, value in reply.items() if isinstance(value, str)}
                for reply in replies
                if reply.get("Event") == "CoreShowChannel"
            ]
            self._control(Resync(at, live, resync_id))
            self.resyncs += 1
            self._resync_failures = 0
            log.info("ami_resync", live_channels=len(live))
        finally:
            if self._resync_id == resync_id:  # not a newer one's flag
                self._resyncing = False

    async def _asterisk_now(self, manager: _Manager) -> float:
        """Asterisk's clock at the snapshot (the `Timestamp` of a Ping reply): a call's
        times are never taken from this host's clock, which may differ (or the events
        be a replay). The host's clock when Asterisk does not say."""
        reply = await asyncio.wait_for(manager.send_action({"Action": "Ping"}), self.resync_timeout)
        stamp = reply.get("Timestamp") if hasattr(reply, "get") else None
        return stamp_of(stamp, self.clock())

    async def _resync_after(self, delay: float) -> None:
        await asyncio.sleep(delay)
        if self.connected and not self._resyncing:
            self._start_resync()

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.ping_interval)
            manager = self.manager
            if manager is None or manager.protocol is None:
                continue
            if not manager.authenticated:
                since = self.connected_at
                if since is not None and time.monotonic() - since > self.login_timeout:
                    # a wedged Asterisk accepts TCP but never answers Login
                    log.error("ami_login_timeout_reconnecting", timeout=self.login_timeout)
                    self.connected_at = None
                    transport = getattr(manager.protocol, "transport", None)
                    if transport is not None:
                        transport.abort()
                continue
            protocol = manager.protocol
            try:
                await asyncio.wait_for(manager.send_action({"Action": "Ping"}), self.ping_timeout)
            except (TimeoutError, ConnectionError, OSError):
                if manager.protocol is not protocol:
                    continue  # that link is already gone; never abort its successor
                log.error("ami_ping_timeout_reconnecting", timeout=self.ping_timeout)
                transport = getattr(protocol, "transport", None)
                if transport is not None:
                    transport.abort()

    def _spawn(self, coro: Any) -> asyncio.Task[None]:
        """Work started at login: its failure is logged, and `stop()` awaits it."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            self.task_failures += 1
            log.error(
                "ami_login_task_failed",
                exc_info=error,
                task=getattr(task.get_coro(), "__qualname__", "?"),
            )
