"""Hostile and ordinary clients for the listener tests: idle crowds, timed requests."""

from __future__ import annotations

import asyncio
import contextlib
import resource
import socket
import time
from collections.abc import Iterator


@contextlib.contextmanager
def open_files_limit(wanted: int) -> Iterator[int]:
    """Raise this process's soft RLIMIT_NOFILE to ``wanted`` (at most the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    new = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, new), hard))
    try:
        yield max(soft, new)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


class IdleCrowd:
    """``n`` TCP connections to a port that say nothing (or ``say`` once) and stay open."""

    def __init__(self) -> None:
        self.sockets: list[socket.socket] = []

    async def open(self, port: int, n: int, say: bytes = b"", limit: float = 20.0) -> float:
        """Connect them all (at most 200 connects at a time); answers the seconds it took."""
        loop = asyncio.get_running_loop()
        gate = asyncio.Semaphore(200)
        started = time.perf_counter()

        async def one() -> None:
            sock = socket.socket()
            sock.setblocking(False)
            self.sockets.append(sock)
            async with gate:
                await loop.sock_connect(sock, ("127.0.0.1", port))
                if say:
                    await loop.sock_sendall(sock, say)

        async with asyncio.timeout(limit):
            await asyncio.gather(*(one() for _ in range(n)))
        return time.perf_counter() - started

    def closed_by_server(self) -> int:
        """How many of them the server has closed (EOF or reset waiting to be read)."""
        return sum(_closed(sock) for sock in self.sockets)

    async def keep_up(self, port: int, stop: asyncio.Event, say: bytes = b"") -> int:
        """A persistent crowd: reconnect each connection the server closes, until ``stop``;
        answers how many reconnects that took."""
        loop = asyncio.get_running_loop()
        reconnects = 0

        async def replace(i: int) -> None:
            self.sockets[i].close()
            sock = socket.socket()
            sock.setblocking(False)
            self.sockets[i] = sock
            try:
                async with asyncio.timeout(1.0):  # the backlog may be full: SYNs dropped
                    await loop.sock_connect(sock, ("127.0.0.1", port))
                    if say:
                        await loop.sock_sendall(sock, say)
            except (OSError, TimeoutError):
                pass  # not through (yet): the next round replaces it

        while not stop.is_set():
            closed = [i for i, sock in enumerate(self.sockets) if _closed(sock)]
            reconnects += len(closed)
            await asyncio.gather(*(replace(i) for i in closed))
            await asyncio.sleep(0.02)
        return reconnects

    def close(self) -> None:
        for sock in self.sockets:
            sock.close()
        self.sockets.clear()


def _closed(sock: socket.socket) -> bool:
    try:
        return sock.recv(1, socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False
    except OSError:  # reset, or never connected
        return True


async def timed_get(port: int, path: str, limit: float = 10.0) -> tuple[int, float]:
    """GET over a new connection (``Connection: close``); (status, seconds from connect)."""
    started = time.perf_counter()
    async with asyncio.timeout(limit):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(
                f"GET {path} HTTP/1.1\r\nHost: bridge\r\nConnection: close\r\n\r\n".encode()
            )
            await writer.drain()
            status_line = await reader.readline()
            await reader.read()
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()
    if not status_line:
        raise ConnectionError(f"GET {path}: closed without an answer")
    return int(status_line.split()[1]), time.perf_counter() - started


async def eof_after(reader: asyncio.StreamReader, limit: float = 10.0) -> float:
    """Seconds until the server closes a connection we read from."""
    started = time.perf_counter()
    async with asyncio.timeout(limit):
        while await reader.read(65536):
            pass
    return time.perf_counter() - started
