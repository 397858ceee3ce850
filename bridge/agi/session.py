"""One FastAGI connection: the environment block, then commands and their replies.

Every read is bounded (line length by the StreamReader's limit, the environment by a line
count and a byte budget), so a peer that is not Asterisk cannot make the server buffer
without end. ``HANGUP`` may arrive at any point: it is noted and the reply that follows
it is still read, as Asterisk keeps answering in dead mode.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ..observability.logs import get_logger
from .protocol import (
    AgiGarbage,
    AgiHangup,
    AgiReply,
    arg_list,
    parse_env_line,
    parse_reply,
    quote,
)

__all__ = ["AgiSession", "MAX_ENV_BYTES", "MAX_ENV_LINES"]

log = get_logger("bridge.agi")

MAX_ENV_LINES = 200  # ~25 standard keys plus at most 128 arguments (res_agi MAX_ARGS)
MAX_ENV_BYTES = 64 * 1024
MAX_REPLY_LINES = 200  # a 520- usage block is a few dozen lines


class AgiSession:
    """Talks to one channel. Not safe for concurrent commands (AGI is strictly serial)."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, started: float
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.started = started  # loop.time() when the connection was accepted
        self.env: dict[str, str] = {}
        self.args: list[str] = []
        self.hung_up = False
        self.callid = ""  # the call's linkedid, once a route knows it (for log lines)
        self._after_close: list[Callable[[], object]] = []

    def after_close(self, work: Callable[[], object]) -> None:
        """Run ``work`` once the socket is closed: what the dialplan need not wait for
        (rendering and writing the call's log line)."""
        self._after_close.append(work)

    def run_after_close(self) -> None:
        """Called by the server once the connection is closed; never raises."""
        for work in self._after_close:
            try:
                work()
            except Exception:
                log.exception("agi_after_close_failed", callid=self.callid)
        self._after_close.clear()

    async def _line(self) -> str:
        """One line without its newline; EOF is a hang-up, an over-long line garbage."""
        try:
            raw = await self.reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            raise AgiHangup("connection closed") from exc
        except asyncio.LimitOverrunError as exc:
            raise AgiGarbage(f"line longer than {exc.consumed} bytes") from exc
        return raw.decode("utf-8", errors="replace").rstrip("\r\n")

    async def read_env(self) -> dict[str, str]:
        """Read ``agi_*`` lines up to the blank line; raises AgiGarbage on anything else."""
        size = 0
        for _ in range(MAX_ENV_LINES):
            line = await self._line()
            size += len(line) + 1
            if size > MAX_ENV_BYTES:
                raise AgiGarbage("environment block too large")
            if not line:
                if not self.env:
                    raise AgiGarbage("empty environment block")
                self.args = arg_list(self.env)
                return self.env
            if line == "HANGUP":  # the channel went away before we said a word
                self.hung_up = True
                continue
            key, value = parse_env_line(line)
            self.env[key] = value
        raise AgiGarbage("environment block has too many lines")

    async def _reply(self) -> AgiReply:
        for _ in range(MAX_REPLY_LINES):
            line = await self._line()
            if line == "HANGUP":
                self.hung_up = True
                continue
            reply, continued = parse_reply(line)
            if not continued:
                return reply
            # A `520-` usage block: skip free text up to the `520 ` line that ends it.
            end = f"{reply.code} "
            for _ in range(MAX_REPLY_LINES):
                line = await self._line()
                if line.startswith(end):
                    return AgiReply(reply.code, text=reply.text)
            raise AgiGarbage("unterminated multi-line reply")
        raise AgiGarbage("too many HANGUP lines")

    async def command(self, line: str) -> AgiReply:
        """Send one command and wait for its reply (bounded by the caller's deadline)."""
        if self.writer.is_closing():
            raise AgiHangup("connection closed")
        self.writer.write(line.encode() + b"\n")
        try:
            await self.writer.drain()
        except (ConnectionError, OSError) as exc:
            raise AgiHangup(str(exc)) from exc
        return await self._reply()

    async def get_variable(self, name: str) -> str | None:
        """A variable or a dialplan function (``CHANNEL(linkedid)``); None when unset."""
        reply = await self.command(f"GET VARIABLE {name}")
        return reply.data if reply.code == 200 and reply.result == 1 else None

    async def set_variable(self, name: str, value: str) -> bool:
        """Set a variable or a function (``CALLERID(name)``); False if Asterisk refused."""
        reply = await self.command(f"SET VARIABLE {name} {quote(value)}")
        return reply.ok

    async def wait_hangup(self) -> None:
        """Return when Asterisk says HANGUP or closes; used while no command is pending."""
        while not self.hung_up:
            try:
                line = await self._line()
            except AgiHangup:
                self.hung_up = True
                return
            if line == "HANGUP":
                self.hung_up = True
                return
            raise AgiGarbage(f"unexpected line while idle: {line[:60]!r}")

    async def close(self) -> None:
        """Closing the socket is what ends the AGI() application in the dialplan."""
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, OSError):
            pass
