"""The FastAGI server on ``[agi] listen``: asyncio streams, one task per connection.

Why not panoramisk's ``fast_agi``: its reads are unbounded and it has no notion of a
``HANGUP`` arriving between a command and its reply. Here every connection has a hard
deadline and bounded reads, and whatever happens (garbage, a hang-up, a CRM outage, a bug
in a route) the socket is closed, which is what lets the dialplan go on: res_agi waits
for the server without any timeout of its own. The server needs neither AMI nor the
database, so it serves from start-up on.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any

import aiohttp
from structlog.typing import FilteringBoundLogger

from ..config import Settings
from ..net.listener import CappedListener, start_listener
from ..net.priority import Priority
from ..observability.logs import get_logger
from ..tracker.numbers import PhoneNormalizer
from .breaker import CircuitBreaker
from .contact import ContactClient
from .directory import Directory
from .latency import Histogram
from .ports import KnownCall, RatingSink, StatsSource
from .protocol import AgiGarbage, AgiHangup, script_name
from .routes import ContactRoute, RatingRoute
from .session import AgiSession

__all__ = ["AgiServer", "Route", "start_agi_server"]

log = get_logger("bridge.agi")

Route = Callable[[AgiSession, FilteringBoundLogger], Awaitable[None]]
OTHER = "other"  # the latency label of connections that reached no route
LINE_LIMIT = 8 * 1024  # longest line accepted from a peer (Asterisk's own buffer is 2 KiB)


class AgiServer:
    """Serves ``routes`` (by ``agi_network_script``); ``stats()`` feeds ``/metrics``."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        deadline: float,
        closers: list[Callable[[], Awaitable[None]]] | None = None,
        priority: Priority | None = None,
        sock: socket.socket | None = None,
    ) -> None:
        self.routes: dict[str, Route] = {}
        self.sock = sock  # listening already (the daemon's, in a worker), else bound here
        # look-ups in progress: the AMI side of the same loop steps back for them
        self.priority = priority if priority is not None else Priority()
        self.host = host
        self.requested_port = port
        self.deadline = deadline
        self.port = 0
        self._listener: CappedListener | None = None
        self._sessions: set[asyncio.Task[Any]] = set()
        self._background: set[asyncio.Task[None]] = set()
        self._closers = list(closers or [])
        self._stats_sources: dict[str, Callable[[], Mapping[str, float]]] = {}
        # Round trips per route; OTHER: connections that never reached one.
        self.latency: dict[str, Histogram] = {OTHER: Histogram()}
        self.counts: dict[str, int] = {
            "connections": 0,
            "active": 0,
            "completed": 0,
            "hangups": 0,
            "garbage": 0,
            "deadline_exceeded": 0,
            "unknown_route": 0,
            "errors": 0,
        }

    def add_route(
        self, name: str, route: Route, stats: Callable[[], Mapping[str, float]] | None = None
    ) -> None:
        """Serve ``agi://host:port/<name>``; ``stats`` adds ``<name>_*`` counters."""
        self.routes[name] = route
        self.latency.setdefault(name, Histogram())
        if stats is not None:
            self.add_stats(name, stats)

    def add_stats(self, prefix: str, read: Callable[[], Mapping[str, float]]) -> None:
        self._stats_sources[prefix] = read

    # Concurrent connections at most. A look-up takes a few ms (a cache hit) to the CRM
    # timeout; at the cap, connections that have not sent their environment are closed
    # for newcomers, and past that newcomers wait in the backlog (see bridge.net). 256:
    # a CRM that never answers, 100 new calls/s and a 1.5 s deadline keep 150+ in flight.
    max_connections = 256

    async def start(self) -> None:
        loop = asyncio.get_running_loop()

        def protocol() -> asyncio.Protocol:  # what asyncio.start_server builds per client
            reader = asyncio.StreamReader(limit=LINE_LIMIT, loop=loop)
            return _LookUp(reader, self._handle, self.priority, loop)

        def silent_peer_closed() -> None:  # counted as before, logged by the listener
            self.counts["deadline_exceeded"] += 1

        # A connection is handed to _handle once its environment (up to the blank line)
        # arrived; one that does not send it within the deadline is closed by the listener,
        # with one rate-limited line for all such peers instead of a warning each.
        self._listener = await start_listener(
            self.host,
            self.requested_port,
            protocol,
            name="agi",
            max_connections=self.max_connections,
            head_timeout=self.deadline,
            on_head_timeout=silent_peer_closed,
            sock=self.sock,
        )
        self.port = self._listener.port
        self.add_stats("agi_listener", self._listener.stats)
        log.info("agi_listening", host=self.host, port=self.port, routes=sorted(self.routes))

    def spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run work that may outlive its connection (a rating submission) until close()."""
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._sessions.add(task)
        self.counts["connections"] += 1
        self.counts["active"] += 1
        session = AgiSession(reader, writer, asyncio.get_running_loop().time())
        bound = log
        hung = False
        label = OTHER  # the route, for the latency histogram
        try:
            async with asyncio.timeout(self.deadline):
                env = await session.read_env()
                bound = log.bind(
                    callid=env.get("agi_uniqueid", ""), channel=env.get("agi_channel", "")
                )
                name = script_name(env)
                route = self.routes.get(name)
                if route is None:
                    self.counts["unknown_route"] += 1
                    bound.warning("agi_unknown_route", script=name[:80], known=sorted(self.routes))
                    return
                label = name
                await route(session, bound)
                self.counts["completed"] += 1
        except TimeoutError:
            self.counts["deadline_exceeded"] += 1
            self._bind(bound, session).warning("agi_deadline_exceeded", seconds=self.deadline)
        except AgiHangup:
            hung = True
            self._bind(bound, session).info("agi_hangup")
        except AgiGarbage as exc:
            self.counts["garbage"] += 1
            self._bind(bound, session).warning("agi_garbage", error=str(exc))
        except (ConnectionError, OSError) as exc:
            hung = True
            self._bind(bound, session).info("agi_connection_lost", error=str(exc))
        except Exception:
            self.counts["errors"] += 1
            self._bind(bound, session).exception("agi_route_failed")
        finally:
            self.counts["active"] -= 1
            if hung or session.hung_up:
                self.counts["hangups"] += 1
            try:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(1.0):
                        await session.close()
            finally:  # also when close() cancels the session
                self.latency[label].observe(asyncio.get_running_loop().time() - session.started)
                session.run_after_close()
                if task is not None:
                    self._sessions.discard(task)

    @staticmethod
    def _bind(bound: FilteringBoundLogger, session: AgiSession) -> FilteringBoundLogger:
        """Log lines about a call carry its call id (the linkedid once a route read it)."""
        return bound.bind(callid=session.callid) if session.callid else bound

    def stats(self) -> dict[str, float]:
        """Flat counters: ``agi_*`` of the server, then ``<source>_*`` of each route."""
        out = {f"agi_{key}": float(value) for key, value in self.counts.items()}
        for prefix, read in self._stats_sources.items():
            out.update({f"{prefix}_{key}": float(value) for key, value in read().items()})
        return out

    async def close(self, grace: float = 2.0) -> None:
        """Stop listening, end open sessions, give background work ``grace`` seconds."""
        if self._listener is not None:
            await self._listener.stop_accepting()
        for task in list(self._sessions):
            task.cancel()
        await asyncio.gather(*self._sessions, return_exceptions=True)
        if self._background:
            _, pending = await asyncio.wait(set(self._background), timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._listener is not None:
            await self._listener.wait_closed(grace=1.0)
        for closer in self._closers:
            with contextlib.suppress(Exception):
                await closer()
        log.info("agi_closed", port=self.port)


class _LookUp(asyncio.StreamReaderProtocol):
    """A FastAGI connection, handed over once its environment arrived: a look-up in
    progress from then until it is closed (see bridge.net.priority)."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        handle: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
        priority: Priority,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        super().__init__(reader, handle, loop=loop)
        self._priority: Priority | None = priority

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._priority is not None:
            self._priority.begin()
        super().connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        priority, self._priority = self._priority, None
        if priority is not None:
            priority.end()
        super().connection_lost(exc)


async def start_agi_server(
    settings: Settings,
    rating_sink: RatingSink,
    session: aiohttp.ClientSession | None = None,
    directory: Directory | None = None,
    *,
    known: KnownCall | None = None,
    priority: Priority | None = None,
    sock: socket.socket | None = None,
) -> AgiServer:
    """Build and start the FastAGI server of ``[agi]``; ``close()`` undoes everything.

    ``session`` is the daemon's shared aiohttp session (not closed here); without one the
    server opens and later closes its own. ``directory``: the daemon's, which learns the
    PBX's extensions as it goes (default: ``[pbx] users`` only). ``known``: whether the
    bridge knows a call id (without it, every rating goes to the sink unverified and the
    sink checks). ``sock``: a listening socket to serve instead of binding ``[agi] listen``
    (the worker process's, bound by the daemon). A sink with ``stats()`` (the
    BufferedRatingSink) shows in ``stats()`` as ``rating_sink_*``; the sink itself is the
    caller's to close.
    """
    crm, agi = settings.crm, settings.agi
    closers: list[Callable[[], Awaitable[None]]] = []
    if session is None:
        session = aiohttp.ClientSession()
        closers.append(session.close)
    client = ContactClient(
        crm,
        session,
        cache_ttl=agi.cache_ttl,
        breaker=CircuitBreaker(agi.breaker_failures, agi.breaker_reset),
    )
    closers.insert(0, client.close)
    normalizer = PhoneNormalizer(settings.pbx.region)
    if directory is None:
        directory = Directory(settings.pbx.users, region=settings.pbx.region)
    server = AgiServer(
        agi.listen_host,
        agi.listen_port,
        # The contact route ends by contact_timeout; the margin covers Asterisk's own
        # replies on a loaded PBX and the rating route's short wait for the sink.
        deadline=crm.contact_timeout + 3.0,
        closers=closers,
        priority=priority,
        sock=sock,
    )
    contact = ContactRoute(client, directory, normalizer, crm.contact_timeout)
    server.add_route("contact", contact, lambda: contact.counts)
    server.add_stats("crm_contact", client.stats)
    rating = RatingRoute(rating_sink, directory, normalizer, server.spawn, known=known)
    server.add_route("rating", rating, lambda: rating.counts)
    if isinstance(rating_sink, StatsSource):
        server.add_stats("rating_sink", rating_sink.stats)
    try:
        await server.start()
    except BaseException:
        for closer in closers:  # e.g. the port is taken: leave no session open behind
            with contextlib.suppress(Exception):
                await closer()
        raise
    return server
