"""The HTTP listener: an aiohttp application behind the capped listener of ``bridge.net``.

``web.TCPSite`` would accept without limit and keep a silent connection for an hour
(aiohttp's default keep-alive is 3,630 s). Here:

- at most ``max_connections`` connections; when full, idle ones (no complete request head
  yet, or between two keep-alive requests) are closed for newcomers;
- ``header_timeout``: a connection has that long to send its first request's headers,
  counted from the accept; it is not even handed to aiohttp before they are complete;
- ``keepalive``: aiohttp's ``keepalive_timeout``, which closes a connection idle between
  requests, and one that has not sent the next request's headers, after that long;
- bodies: the application's ``client_max_size`` (aiohttp's default, 1 MiB, unless the app
  sets another when it is built); headers: aiohttp's 8 KiB per line, 128 fields.

Generic on purpose: it serves any ``web.Application`` (health, recordings, the pull APIs
with their middlewares).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiohttp import web

from ..net.listener import DEFAULT_BACKLOG, CappedListener, start_listener

__all__ = [
    "HEADER_TIMEOUT",
    "KEEPALIVE",
    "MAX_CONNECTIONS",
    "HttpServer",
    "start_http",
]

# The daemon's values until they become [api] settings.
MAX_CONNECTIONS = 256
HEADER_TIMEOUT = 5.0  # seconds from accept to the first request's complete headers
KEEPALIVE = 15.0  # seconds a connection may idle between requests


def aiohttp_idle(protocol: asyncio.Protocol) -> bool:
    """Whether aiohttp's request handler waits for the next request (keep-alive idle).

    aiohttp has no public word for it; this is its own test in
    ``RequestHandler._process_keepalive`` (a pending ``_waiter``). Should a new aiohttp
    drop the attribute, the answer is False: such connections are then never closed to
    make room, only by ``keepalive`` (tests/integration/test_hostile_clients.py notices).
    """
    waiter = getattr(protocol, "_waiter", None)
    return isinstance(waiter, asyncio.Future) and not waiter.done()


@dataclass
class HttpServer:
    runner: web.AppRunner
    listener: CappedListener

    @property
    def port(self) -> int:
        return self.listener.port

    def stats(self) -> dict[str, float]:
        """The listener's counters (accepted, shed_idle, head_timeouts, accept_errors, ...)."""
        return self.listener.stats()

    async def close(self, grace: float = 5.0) -> None:
        """Stop accepting, let requests in progress finish within ``grace`` s, clean up."""
        await self.listener.stop_accepting()
        # Closes idle keep-alive connections, waits for handlers (the runner's
        # shutdown_timeout, which is ``grace``), then runs the app's on_cleanup.
        await self.runner.cleanup()
        await self.listener.wait_closed(grace)


async def start_http(
    app: web.Application,
    host: str,
    port: int,
    *,
    max_connections: int,
    header_timeout: float,
    keepalive: float,
    backlog: int = DEFAULT_BACKLOG,
    grace: float = 5.0,
) -> HttpServer:
    """Serve ``app`` on ``host:port`` (0: a free port, see ``.port``) until ``close()``."""
    runner = web.AppRunner(
        app, access_log=None, keepalive_timeout=keepalive, shutdown_timeout=grace
    )
    await runner.setup()
    server = runner.server
    assert server is not None
    try:
        listener = await start_listener(
            host,
            port,
            server,
            name="http",
            max_connections=max_connections,
            head_timeout=header_timeout,
            is_idle=aiohttp_idle,
            backlog=backlog,
        )
    except BaseException:
        await runner.cleanup()
        raise
    return HttpServer(runner, listener)
