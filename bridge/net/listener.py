"""A TCP listener that a crowd of idle or hostile peers cannot take down.

``loop.create_server`` accepts whatever arrives, as fast as it arrives: 1,100 idle
connections under systemd's 1,024 open-files limit exhaust the process's file descriptors
(then the database pool, the AGI server and the CRM client fail), and CPython 3.11 writes a
traceback for every failed ``accept()``, up to a hundred per loop turn. This listener runs
its own accept loop instead:

- **A cap on concurrent connections.** At the cap it stops accepting: newcomers wait in
  the kernel's backlog, where they cost no file descriptor.
- **Idle connections make room.** When someone waits in the backlog while the listener is
  at its cap, the oldest idle connections (up to 32 at a time) are closed to make room
  (nginx does the same with its "reusable" connections). Idle means: has not sent its
  request head ``min_idle`` (50 ms) after the accept, or (through ``is_idle``) has sat
  between two requests for that long. A crowd of idle peers therefore only delays a real
  client by the time it takes to accept and close the peers ahead of it in the backlog
  (at most ``DEFAULT_BACKLOG`` of them), instead of holding every slot until its timeout.
  When every connection is busy with a request, a newcomer waits in the backlog for a
  slot: requests in progress are never cut to make room.
- **The head comes first.** A connection is handed to the application's protocol only once
  its head (the request line and headers of HTTP, the environment of FastAGI: both end
  with a blank line) has arrived, or ``max_head`` bytes. Until then it costs a small
  buffer and no task, and is closed after ``head_timeout`` seconds.
- **Accept errors are weathered, not logged in floods.** EMFILE, ENFILE, ENOBUFS and
  ENOMEM are counted and logged at most once per ``log_interval`` with the count since
  the previous line; an idle connection, if there is one, is closed (its descriptor is
  the newcomer's), else the loop pauses ``error_pause`` (0.1 s) instead of spinning.

The slot of a connection is given back when its transport reports ``connection_lost``,
whoever closed it.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
from collections.abc import Callable

from ..observability.logs import RateLimitedLog, get_logger

__all__ = [
    "DEFAULT_BACKLOG",
    "CappedListener",
    "IdleProbe",
    "ProtocolFactory",
    "bind_tcp",
    "start_listener",
]

log = get_logger("bridge.net")

ProtocolFactory = Callable[[], asyncio.Protocol]
# True when the application's protocol sits between two requests (may be closed for room).
IdleProbe = Callable[[asyncio.Protocol], bool]

DEFAULT_BACKLOG = 511  # nginx's choice on Linux; the kernel caps it at net.core.somaxconn
MAX_HEAD = 64 * 1024  # bytes buffered while waiting for a head; more is handed over as is
SHED_BATCH = 32  # idle connections closed at once when full (nginx drains 32 too)

# accept() failing for lack of a process or system resource: retrying at once fails again.
RESOURCE_ERRORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
# accept() reporting a problem of that one connection (Linux passes pending network errors
# of the new socket through accept): the next one may be fine.
CONNECTION_ERRORS = frozenset(
    {
        errno.ECONNABORTED,
        errno.EPROTO,
        errno.EPERM,
        errno.ENOPROTOOPT,
        errno.EHOSTDOWN,
        errno.ENONET,
        errno.EHOSTUNREACH,
        errno.ENETDOWN,
        errno.ENETUNREACH,
        errno.EOPNOTSUPP,
    }
)


async def bind_tcp(host: str, port: int, *, backlog: int = DEFAULT_BACKLOG) -> socket.socket:
    """A listening, non-blocking TCP socket on ``host:port`` (port 0: any free port)."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(
        host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )
    if not infos:
        raise OSError(f"cannot resolve {host!r}")
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _has_blank_line(buffer: bytearray, start: int) -> bool:
    """An empty line (``\\n`` or ``\\r\\n`` alone, also the very first) ends a head."""
    if buffer.startswith((b"\n", b"\r\n")):
        return True
    return buffer.find(b"\n\n", start) >= 0 or buffer.find(b"\n\r\n", start) >= 0


class _Connection(asyncio.Protocol):
    """Stands between one transport and the application's protocol (created at hand-over)."""

    def __init__(self, listener: CappedListener) -> None:
        self.listener = listener
        self.transport: asyncio.Transport | None = None
        self.inner: asyncio.Protocol | None = None
        self.head = bytearray()
        self.closing = False  # closed by us, connection_lost not seen yet
        # loop time of the accept, and of the last data received
        self.opened = self.last_active = listener.loop.time()
        self._timer: asyncio.TimerHandle | None = None
        self._released = False

    # ------------------------------------------------------------------ transport side

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if self.closing:  # shed while its transport was being made
            transport.abort()
            return
        listener = self.listener
        if not listener.wait_for_head:
            self._hand_over()
        elif listener.head_timeout is not None:
            self._timer = listener.loop.call_later(listener.head_timeout, self._head_timed_out)

    def data_received(self, data: bytes) -> None:
        self.last_active = self.listener.loop.time()
        inner = self.inner
        if inner is not None:
            inner.data_received(data)
            return
        if self.closing:
            return
        start = max(0, len(self.head) - 2)
        self.head += data
        if _has_blank_line(self.head, start) or len(self.head) >= self.listener.max_head:
            self._hand_over()

    def eof_received(self) -> bool | None:
        if self.inner is None and self.head and not self.closing:
            self._hand_over()  # half a head, then the end: the application judges it
        if self.inner is not None:
            return self.inner.eof_received()
        return None  # the peer said nothing at all: close, unseen

    def pause_writing(self) -> None:
        if self.inner is not None:
            self.inner.pause_writing()

    def resume_writing(self) -> None:
        if self.inner is not None:
            self.inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        inner, self.inner = self.inner, None
        try:
            if inner is not None:
                inner.connection_lost(exc)
        finally:
            self.release()

    # ------------------------------------------------------------------ listener side

    @property
    def waiting_for_head(self) -> bool:
        return self.inner is None

    def release(self) -> None:
        """Give the slot back (once)."""
        if not self._released:
            self._released = True
            self.listener._released(self)

    def shed(self) -> None:
        """Close to make room (idle) or at shutdown."""
        self.closing = True
        if self.transport is not None:
            self.transport.abort()

    def _head_timed_out(self) -> None:
        self._timer = None
        if self.inner is None and not self.closing:
            self.listener._head_timed_out()
            self.shed()

    def _hand_over(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        transport = self.transport
        assert transport is not None
        try:
            inner = self.listener.protocol_factory()
            inner.connection_made(transport)
        except Exception as exc:
            self.listener.counts["errors"] += 1
            self.listener.limited.error(
                "listener_protocol_failed", listener=self.listener.name, error=repr(exc)
            )
            self.shed()
            return
        self.inner = inner
        head, self.head = bytes(self.head), bytearray()
        if head and not transport.is_closing():
            inner.data_received(head)


class CappedListener:
    """Accepts on ``sock`` (listening, non-blocking) for ``protocol_factory``'s protocols.

    ``max_connections``: open connections at most (those waiting for their head
    included). ``head_timeout``: seconds a connection may take to send its head (None: no
    limit here); ``on_head_timeout`` is told each time (the application's counters).
    ``wait_for_head``: hand a connection over only once its head arrived (for protocols
    where the client speaks first); a peer that ends the connection after part of a head
    is handed over too (the application sees the half head and the end), one that sent
    nothing is closed unseen. ``is_idle``: says whether a handed-over protocol sits idle
    between requests, so it may be closed to make room; ``min_idle``: how long a
    connection must have been silent before that.
    """

    def __init__(
        self,
        sock: socket.socket,
        protocol_factory: ProtocolFactory,
        *,
        name: str,
        max_connections: int,
        head_timeout: float | None = None,
        on_head_timeout: Callable[[], None] | None = None,
        wait_for_head: bool = True,
        is_idle: IdleProbe | None = None,
        max_head: int = MAX_HEAD,
        min_idle: float = 0.05,
        error_pause: float = 0.1,
        saturated_recheck: float = 0.5,
        log_interval: float = 10.0,
    ) -> None:
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        self.loop = asyncio.get_running_loop()  # built by a coroutine, like its connections
        self.sock = sock
        self.protocol_factory = protocol_factory
        self.name = name
        self.max_connections = max_connections
        self.head_timeout = head_timeout
        self.on_head_timeout = on_head_timeout
        self.wait_for_head = wait_for_head
        self.is_idle = is_idle
        self.max_head = max_head
        self.min_idle = min_idle
        self.error_pause = error_pause
        self.saturated_recheck = saturated_recheck
        self.limited = RateLimitedLog(log, log_interval)
        self.port: int = sock.getsockname()[1]
        self.counts: dict[str, int] = {
            "accepted": 0,
            "shed_idle": 0,  # closed to make room for a newcomer
            "head_timeouts": 0,
            "accept_errors": 0,  # accept() out of resources (EMFILE, ENFILE, ...)
            "saturated": 0,  # a newcomer waited: every connection was busy
            "errors": 0,  # the application's protocol failed to start
        }
        # Insertion order is age order: shedding takes the oldest idle connection.
        self._connections: dict[_Connection, None] = {}
        self._freed = asyncio.Event()
        self._empty = asyncio.Event()
        self._empty.set()
        self._task: asyncio.Task[None] | None = None
        self._starting: set[asyncio.Task[None]] = set()  # transports being made
        self._stopped = False

    @property
    def active(self) -> int:
        return len(self._connections)

    def stats(self) -> dict[str, float]:
        """Counters only (``active`` is a gauge: read it from :attr:`active`)."""
        return {key: float(value) for key, value in self.counts.items()}

    def start(self) -> None:
        self._task = asyncio.create_task(self._serve(), name=f"{self.name}-accept")

    async def stop_accepting(self) -> None:
        """Accept no more; close the listening socket (waiting peers get refused)."""
        if self._stopped:
            return
        self._stopped = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.sock.close()
        if self._starting:
            await asyncio.gather(*self._starting, return_exceptions=True)

    async def wait_closed(self, grace: float = 2.0) -> None:
        """Close connections still waiting for their head; wait ``grace`` s for the others,
        then cut what is left."""
        for conn in list(self._connections):
            if conn.waiting_for_head:
                conn.shed()
        if self._connections:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace):
                    await self._empty.wait()
        for conn in list(self._connections):
            conn.shed()
        if self._connections:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await self._empty.wait()
        for conn in list(self._connections):  # a transport that never reported its end
            conn.release()
        self.limited.flush()

    async def close(self, grace: float = 2.0) -> None:
        await self.stop_accepting()
        await self.wait_closed(grace)

    # ------------------------------------------------------------------ the accept loop

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if len(self._connections) >= self.max_connections:
                await self._make_room()
                continue
            try:
                # Completes without yielding while connections wait: a burst of accepts
                # (up to the cap) in one loop turn, as asyncio's own accept loop does.
                conn_sock, _ = await loop.sock_accept(self.sock)
            except OSError as exc:
                await self._accept_failed(exc)
                continue
            self._connect(conn_sock)

    async def _make_room(self) -> None:
        """At the cap: once a newcomer waits, close an idle connection, or wait for a slot."""
        await self._readable()
        if len(self._connections) < self.max_connections:
            return
        self._freed.clear()
        victims, soonest = self._pick_idle(SHED_BATCH)
        if victims:
            for victim in victims:
                victim.shed()
            self.counts["shed_idle"] += len(victims)
            self.limited.warning(
                "listener_full_closing_idle",
                listener=self.name,
                max_connections=self.max_connections,
                shed_total=self.counts["shed_idle"],
            )
            wait = 1.0  # the shed connections' connection_lost come on the next loop turn
        elif soonest is not None:
            wait = soonest  # a head-waiter becomes fair game then
        else:
            self.counts["saturated"] += 1
            self.limited.warning(
                "listener_saturated", listener=self.name, max_connections=self.max_connections
            )
            # Busy connections may turn idle (keep-alive) without closing: look again soon.
            wait = self.saturated_recheck
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                await self._freed.wait()

    def _pick_idle(self, most: int) -> tuple[list[_Connection], float | None]:
        """Up to ``most`` connections to close for room: the oldest of those still waiting
        for their head, else those idle between requests; each only after ``min_idle``
        seconds (a client that has just connected has had no time to speak; one that has
        just been answered may be sending its next request). With none: the seconds until
        the oldest head-waiter is old enough (None: nobody waits for a head)."""
        now = self.loop.time()
        min_idle = self.min_idle
        victims: list[_Connection] = []
        soonest: float | None = None
        for conn in self._connections:  # oldest first
            if not conn.waiting_for_head or conn.closing:
                continue
            age = now - conn.opened
            if age < min_idle:
                soonest = min_idle - age  # the others waiting for a head are younger
                break
            victims.append(conn)
            if len(victims) == most:
                return victims, None
        probe = self.is_idle
        if not victims and probe is not None:
            for conn in self._connections:
                inner = conn.inner
                if conn.closing or inner is None or now - conn.last_active < min_idle:
                    continue
                if probe(inner):
                    victims.append(conn)
                    if len(victims) == most:
                        break
        return victims, (None if victims else soonest)

    async def _readable(self) -> None:
        """Until a connection waits in the backlog."""
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        fd = self.sock.fileno()

        def wake() -> None:
            if not ready.done():
                ready.set_result(None)

        loop.add_reader(fd, wake)
        try:
            await ready
        finally:
            loop.remove_reader(fd)

    async def _accept_failed(self, exc: OSError) -> None:
        if exc.errno in CONNECTION_ERRORS:
            return  # that peer's problem; the next one may be fine
        self.counts["accept_errors"] += 1
        self.limited.warning(
            "listener_accept_failed",
            listener=self.name,
            error=exc.strerror or repr(exc),
            errno=errno.errorcode.get(exc.errno or 0, str(exc.errno)),
            active=len(self._connections),
            accept_errors_total=self.counts["accept_errors"],
        )
        if exc.errno in RESOURCE_ERRORS:
            self._freed.clear()
            victims, _ = self._pick_idle(SHED_BATCH)
            if victims:  # idle connections' descriptors for the newcomers
                for victim in victims:
                    victim.shed()
                self.counts["shed_idle"] += len(victims)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(1.0):
                        await self._freed.wait()  # its descriptor is closed by then
                return
        await asyncio.sleep(self.error_pause)

    def _connect(self, conn_sock: socket.socket) -> None:
        """Take the slot now; the transport is made by a task (the accept loop goes on)."""
        conn = _Connection(self)
        self._connections[conn] = None
        self._empty.clear()
        self.counts["accepted"] += 1
        task = self.loop.create_task(self._make_transport(conn, conn_sock))
        self._starting.add(task)
        task.add_done_callback(self._starting.discard)

    async def _make_transport(self, conn: _Connection, conn_sock: socket.socket) -> None:
        try:
            await self.loop.connect_accepted_socket(lambda: conn, conn_sock)
        except BaseException as exc:
            conn_sock.close()
            conn.release()
            if not isinstance(exc, Exception):
                raise
            self.counts["errors"] += 1
            self.limited.warning("listener_connection_failed", listener=self.name, error=repr(exc))

    def _head_timed_out(self) -> None:
        self.counts["head_timeouts"] += 1
        self.limited.info(
            "listener_head_timeout",
            listener=self.name,
            seconds=self.head_timeout,
            head_timeouts_total=self.counts["head_timeouts"],
        )
        if self.on_head_timeout is not None:
            self.on_head_timeout()

    def _released(self, conn: _Connection) -> None:
        self._connections.pop(conn, None)
        self._freed.set()
        if not self._connections:
            self._empty.set()


async def start_listener(
    host: str,
    port: int,
    protocol_factory: ProtocolFactory,
    *,
    name: str,
    max_connections: int,
    head_timeout: float | None = None,
    on_head_timeout: Callable[[], None] | None = None,
    wait_for_head: bool = True,
    is_idle: IdleProbe | None = None,
    backlog: int = DEFAULT_BACKLOG,
    sock: socket.socket | None = None,
) -> CappedListener:
    """Bind ``host:port`` (or take ``sock``, bound and listening) and start accepting;
    ``close()`` undoes it (see CappedListener)."""
    if sock is None:
        sock = await bind_tcp(host, port, backlog=backlog)
    listener = CappedListener(
        sock,
        protocol_factory,
        name=name,
        max_connections=max_connections,
        head_timeout=head_timeout,
        on_head_timeout=on_head_timeout,
        wait_for_head=wait_for_head,
        is_idle=is_idle,
    )
    listener.start()
    return listener
