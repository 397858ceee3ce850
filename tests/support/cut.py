"""A TCP relay whose connections can be cut the way a network cut does it: bytes stop
flowing both ways and neither end is told (no FIN, no RST), so the server keeps the
session (and whatever it holds) until its own keepalive gives up. New connections made
after the cut pass."""

from __future__ import annotations

import asyncio
import contextlib


class CuttableRelay:
    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self._server: asyncio.Server | None = None
        self._pairs: list[tuple[asyncio.StreamWriter, asyncio.StreamWriter, asyncio.Event]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    def cut(self) -> None:
        """Every connection open now stops carrying bytes, silently."""
        for _, _, cut in self._pairs:
            cut.set()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for client, server, _ in self._pairs:
            client.close()
            server.close()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        cut = asyncio.Event()
        self._pairs.append((writer, up_writer, cut))
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pump(src, dst, cut))
            self._tasks.add(task)

    @staticmethod
    async def _pump(
        src: asyncio.StreamReader, dst: asyncio.StreamWriter, cut: asyncio.Event
    ) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await src.read(65536):
                if cut.is_set():
                    continue  # swallowed: the other end never hears of it
                dst.write(data)
                await dst.drain()
        if not cut.is_set():
            dst.close()
