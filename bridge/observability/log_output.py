"""A log output that never blocks the event loop: a thread writes the lines.

journald can stall (a slow disk, a hung journal); a process writing its log straight to
stdout then blocks inside a log call, and with it everything its event loop does: AMI
reading, webhooks, the HTTP APIs, the systemd watchdog. :class:`BackgroundOutput` is a
file for the log renderers whose ``write`` only queues the text; a thread writes it to
the real output, several lines per system call. While the output does not take them,
lines wait in memory up to ``backlog`` bytes, then new ones are dropped and counted, and
once the output takes lines again ``on_dropped(dropped, total)`` is called from the thread
(the daemon logs a warning with the counts; ``/metrics`` shows the total).

The thread writes to a duplicate of the output's file descriptor with ``os.write``, not
through ``sys.stdout``'s buffer: a thread blocked there would hold that buffer's lock and
abort the interpreter at exit. ``close(timeout)`` writes what is queued, waiting at most
``timeout`` seconds for a stalled output.
"""

from __future__ import annotations

import collections
import contextlib
import io
import os
import threading
from collections.abc import Callable
from typing import TextIO

__all__ = ["BackgroundOutput", "LOG_BACKLOG"]

LOG_BACKLOG = 4 * 1024 * 1024  # bytes of lines waiting: ~10 s of a busy PBX's log


class BackgroundOutput(io.TextIOBase):
    def __init__(
        self,
        target: TextIO,
        *,
        backlog: int | None = None,  # LOG_BACKLOG
        on_dropped: Callable[[int, int], None] | None = None,
    ) -> None:
        super().__init__()
        self.target = target
        self.backlog = LOG_BACKLOG if backlog is None else backlog
        self.on_dropped = on_dropped
        self.dropped = 0  # lines, since start
        self._reported = 0
        self._fd = _duplicate_fd(target)
        self._encoding = getattr(target, "encoding", None) or "utf-8"
        self._lines: collections.deque[str] = collections.deque()
        self._waiting = 0  # bytes queued or being written
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._closing = False
        self._thread = threading.Thread(target=self._run, name="log-output", daemon=True)
        self._thread.start()

    # ---------------------------------------------------------------- the writer's side

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:  # the console renderer asks, for colours
        return bool(getattr(self.target, "isatty", lambda: False)())

    def write(self, text: str) -> int:
        size = len(text)
        with self._lock:
            if self._closing or self._waiting + size > self.backlog:
                self.dropped += text.count("\n") or 1
                return size
            self._lines.append(text)
            self._waiting += size
            if len(self._lines) == 1:
                self._idle.clear()
                self._wake.set()
        return size

    def flush(self) -> None:
        """Nothing to do here: the thread writes (and flushes) as soon as it can."""

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until every queued line is written; answers whether they were in time."""
        return self._idle.wait(timeout)

    def close(self, timeout: float = 2.0) -> None:
        """Write what is queued (waiting at most ``timeout`` s), then stop the thread."""
        if self.closed:
            return
        self.drain(timeout)
        with self._lock:
            self._closing = True
            self._wake.set()
        self._thread.join(timeout=0.1)
        if not self._thread.is_alive() and self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
        super().close()

    # ---------------------------------------------------------------- the thread

    def _run(self) -> None:
        while True:
            self._wake.wait()
            with self._lock:
                batch = list(self._lines)
                self._lines.clear()
                self._wake.clear()
                closing = self._closing
            if batch:
                text = "".join(batch)
                self._write(text)
                with self._lock:
                    self._waiting -= len(text)
                    if not self._lines:
                        self._idle.set()
                self._report_drops()
            if closing:
                return

    def _write(self, text: str) -> None:
        """Blocks while the output does not take lines; gives up only on errors."""
        try:
            if self._fd is None:
                self.target.write(text)
                self.target.flush()
                return
            data = memoryview(text.encode(self._encoding, "backslashreplace"))
            while data:
                data = data[os.write(self._fd, data) :]
        except (OSError, ValueError):
            pass  # nowhere to write, nobody to tell: the lines are gone

    def _report_drops(self) -> None:
        total = self.dropped
        if total > self._reported and self.on_dropped is not None:
            delta, self._reported = total - self._reported, total
            with contextlib.suppress(Exception):
                self.on_dropped(delta, total)


def _duplicate_fd(target: TextIO) -> int | None:
    """A private copy of the output's descriptor, or None (no descriptor: write the file)."""
    try:
        fd = target.fileno()
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return None
    with contextlib.suppress(OSError, ValueError):
        target.flush()  # what was written before, ahead of our lines
    return os.dup(fd)
