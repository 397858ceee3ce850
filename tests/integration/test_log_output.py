"""The daemon's log output on a real pipe that stops being read, as a stalled journald."""

from __future__ import annotations

import io
import json
import os
import threading
import time
from collections.abc import Iterator

import pytest

from bridge.observability import logs
from bridge.observability.log_output import BackgroundOutput

LINE = "x" * 90 + "\n"  # ~ one log line


@pytest.fixture
def pipe() -> Iterator[tuple[int, io.TextIOWrapper]]:
    """(read fd, writable text file) of a real pipe; nobody reads until the test does."""
    read_fd, write_fd = os.pipe()
    writer = open(write_fd, "w", encoding="utf-8")  # noqa: SIM115
    try:
        yield read_fd, writer
    finally:
        writer.close()
        os.close(read_fd)


def read_all(fd: int, until_lines: int, timeout: float = 10.0) -> list[str]:
    """What the pipe carries, in a thread of its own, until ``until_lines`` lines came."""
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    os.set_blocking(fd, False)
    while b"".join(chunks).count(b"\n") < until_lines and time.monotonic() < deadline:
        try:
            chunks.append(os.read(fd, 1 << 16))
        except BlockingIOError:
            time.sleep(0.005)
    return b"".join(chunks).decode().splitlines()


def numbered(n: int) -> str:
    return f"{n:07d} " + LINE


def test_lines_reach_the_output_in_order(pipe) -> None:
    read_fd, writer = pipe
    out = BackgroundOutput(writer)
    for n in range(2_000):
        out.write(numbered(n))
    lines = read_all(read_fd, 2_000)  # 200 KB: the pipe holds 64 KiB, the rest waits
    assert out.drain(5.0)
    assert [int(line.split()[0]) for line in lines] == list(range(2_000))
    assert out.dropped == 0
    out.close()


def test_a_stalled_output_never_blocks_the_writer_and_drops_are_counted(pipe) -> None:
    read_fd, writer = pipe
    reports: list[tuple[int, int]] = []
    out = BackgroundOutput(
        writer, backlog=256 * 1024, on_dropped=lambda d, t: reports.append((d, t))
    )
    total = 20_000  # ~2 MB: the pipe holds 64 KiB, the backlog 256 KiB
    slowest = 0.0
    for n in range(total):
        started = time.perf_counter()
        out.write(numbered(n))
        slowest = max(slowest, time.perf_counter() - started)
    assert slowest < 0.5, slowest  # a blocked write would wait for ever
    assert out.dropped > 10_000, out.dropped
    assert not out.drain(0.2), "nothing reads the pipe: lines are still waiting"

    received = read_all(read_fd, total - out.dropped)  # journald is back
    assert out.drain(5.0)
    numbers = [int(line.split()[0]) for line in received]
    assert len(numbers) + out.dropped == total  # each line written, or dropped and counted
    assert numbers == sorted(numbers) and numbers[0] == 0  # in order, the oldest kept
    assert reports and reports[-1][1] == out.dropped
    assert sum(delta for delta, _ in reports) == out.dropped
    out.close()


def test_close_gives_up_on_a_stalled_output_within_its_timeout(pipe) -> None:
    _, writer = pipe
    out = BackgroundOutput(writer, backlog=1 << 20)
    for n in range(10_000):  # ~1 MB: more than the pipe holds
        out.write(numbered(n))
    started = time.monotonic()
    out.close(timeout=0.3)
    assert time.monotonic() - started < 1.0
    assert out.closed
    out.write("after close\n")  # an exit path that still logs: counted, not raised
    assert out.dropped >= 1


def test_a_file_without_a_descriptor_is_written_by_the_thread() -> None:
    target = io.StringIO()
    before = set(threading.enumerate())
    out = BackgroundOutput(target)
    out.write("one\n")
    out.write("two\n")
    assert out.drain(2.0)
    assert target.getvalue() == "one\ntwo\n"
    out.close()
    assert not [t for t in threading.enumerate() if t not in before], "the thread ended"


@pytest.mark.usefixtures("restore_logging")
def test_the_daemons_logging_warns_of_dropped_lines_once_the_output_is_back(
    pipe, monkeypatch: pytest.MonkeyPatch
) -> None:
    read_fd, writer = pipe
    monkeypatch.setattr("bridge.observability.log_output.LOG_BACKLOG", 128 * 1024)
    logs.configure_logging("info", stream=writer, background=True)
    log = logs.get_logger("bridge.test")
    for n in range(5_000):  # ~0.6 MB of JSON lines
        log.info("call_tracked", n=n, padding="p" * 60)
    dropped = logs.dropped_lines()
    assert dropped > 0

    lines = [json.loads(line) for line in read_all(read_fd, 5_000 - dropped + 1)]
    warning = [r for r in lines if r["event"] == "log_lines_dropped"]
    assert (
        warning
        and warning[-1]["total"] == logs.dropped_lines()
        and warning[-1]["level"] == "warning"
    )
    tracked = [r["n"] for r in lines if r["event"] == "call_tracked"]
    assert len(tracked) + dropped == 5_000 and tracked == sorted(tracked)
