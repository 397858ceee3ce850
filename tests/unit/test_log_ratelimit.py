"""Repeated identical warnings: the first at once, then one line per interval with a count."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from bridge.ami import protocol as ami_protocol
from bridge.ami.protocol import FastAmiProtocol
from bridge.observability.logs import (
    RateLimitedLog,
    RateLimiter,
    RateLimitFilter,
    configure_logging,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Recorder:
    """Stands in for a structlog logger: keeps (level, event, fields)."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str, dict[str, Any]]] = []

    def __getattr__(self, level: str) -> Any:
        return lambda event, **fields: self.lines.append((level, event, fields))


def test_limiter_lets_the_first_through_then_one_per_interval_with_the_count() -> None:
    clock = Clock()
    limiter = RateLimiter(10.0, clock=clock)
    assert limiter.hit("a") == 0
    assert [limiter.hit("a") for _ in range(500)] == [None] * 500
    assert limiter.hit("b") == 0, "another key is not held back by the first"
    clock.now += 9.9
    assert limiter.hit("a") is None
    clock.now += 0.1
    assert limiter.hit("a") == 501
    assert limiter.hit("a") is None
    assert limiter.pending() == {"a": 1}
    assert limiter.reset("a") == 1 and limiter.pending() == {}


def test_limiter_remembers_a_bounded_number_of_keys() -> None:
    clock = Clock()
    limiter = RateLimiter(10.0, clock=clock, max_keys=8)
    for n in range(100):
        limiter.hit(f"varying text {n}")
    assert len(limiter._seen) <= 8
    assert limiter.hit("varying text 99") is None, "the newest keys are kept"


def test_rate_limited_log_writes_one_line_per_interval_and_flushes_the_rest() -> None:
    clock, out = Clock(), Recorder()
    log = RateLimitedLog(out, 10.0, clock=clock)
    written = [log.warning("ami_oversized_message_dropped", bytes=n) for n in range(2660)]
    assert written.count(True) == 1
    assert out.lines == [("warning", "ami_oversized_message_dropped", {"bytes": 0})]
    clock.now += 10
    log.warning("ami_oversized_message_dropped", bytes=7)
    assert out.lines[-1] == (
        "warning",
        "ami_oversized_message_dropped",
        {"bytes": 7, "repeated": 2659},
    )
    log.error("other_event", key="peer-1")
    log.error("other_event", key="peer-2")
    assert len(out.lines) == 4, "keys keep their own budget"
    log.warning("ami_oversized_message_dropped", bytes=8)
    log.warning("ami_oversized_message_dropped", bytes=9)
    log.flush()
    assert out.lines[-1] == (
        "warning",
        "ami_oversized_message_dropped",
        {"bytes": 9, "repeated": 2},
    ), "the latest fields, with what was left out"
    log.flush()
    assert len(out.lines) == 5, "nothing left to flush"


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """configure_logging into a buffer; the root handler and library filters removed after."""
    stream = io.StringIO()
    configure_logging("info", stream=stream)
    try:
        yield stream
    finally:
        root = logging.getLogger()
        for handler in [h for h in root.handlers if getattr(h, "_bridge_logs_handler", False)]:
            root.removeHandler(handler)
        for name in ("asyncio", "aiohttp.server"):
            logger = logging.getLogger(name)
            for f in [f for f in logger.filters if isinstance(f, RateLimitFilter)]:
                logger.removeFilter(f)


def _accept_failed(logger: logging.Logger) -> None:
    """What asyncio's default exception handler writes for each failed accept()."""
    try:
        raise OSError(24, "Too many open files")
    except OSError:
        logger.error(
            "socket.accept() out of system resource\nsocket: <asyncio.TransportSocket fd=6>",
            exc_info=True,
        )


def test_asyncio_accept_errors_are_rate_limited(json_log: io.StringIO) -> None:
    logger = logging.getLogger("asyncio")
    (limit,) = [f for f in logger.filters if isinstance(f, RateLimitFilter)]
    clock = Clock()
    limit.limiter.clock = clock
    for _ in range(5000):
        _accept_failed(logger)
    logger.error("Task exception was never retrieved\nfuture: <Task 1>")
    lines = [json.loads(line) for line in json_log.getvalue().splitlines()]
    assert [x["event"].split("\n")[0] for x in lines] == [
        "socket.accept() out of system resource",
        "Task exception was never retrieved",
    ]
    assert "OSError: [Errno 24]" in lines[0]["exception"] and "repeated" not in lines[0]
    clock.now += 10
    _accept_failed(logger)
    last = json.loads(json_log.getvalue().splitlines()[-1])
    assert last["repeated"] == 4999 and last["logger"] == "asyncio"


def test_filter_keeps_distinct_messages_apart() -> None:
    clock = Clock()
    limit = RateLimitFilter(10.0, clock=clock)

    def record(msg: str, level: int = logging.ERROR) -> logging.LogRecord:
        return logging.LogRecord("aiohttp.server", level, __file__, 1, msg, None, None)

    assert limit.filter(record("Error handling request from %s"))
    assert not limit.filter(record("Error handling request from %s"))
    assert limit.filter(record("Error handling request from %s", logging.WARNING))
    assert limit.filter(record("Unhandled exception"))


def test_ami_garbage_floods_are_rate_limited(monkeypatch: pytest.MonkeyPatch) -> None:
    """2,660 oversized messages in a burst: one line, then one per interval with the count."""
    clock, out = Clock(), Recorder()
    monkeypatch.setattr(
        ami_protocol,
        "bad_input_log",
        RateLimitedLog(out, 10.0, clock=clock),
    )
    protocol = FastAmiProtocol()
    protocol.connection_made(None)
    protocol.max_message = 64
    for _ in range(2660):
        protocol.data_received(b"Event: VarSet\r\nValue: " + b"x" * 100 + b"\r\n\r\n")
    for _ in range(300):
        protocol.data_received(b"this is not AMI\r\n\r\n")
    assert protocol.oversized == 2660 and protocol.malformed == 300
    assert [(event, fields["count"]) for _, event, fields in out.lines] == [
        ("ami_oversized_message_dropped", 1),
        ("ami_malformed_message", 1),
    ]
    clock.now += 10
    protocol.data_received(b"still not AMI\r\n\r\n")
    _, event, fields = out.lines[-1]
    assert (event, fields["count"], fields["repeated"]) == ("ami_malformed_message", 301, 299)
    assert fields["sample"] == "still not AMI"
