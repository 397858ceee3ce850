"""Structured logging: one JSON object per line on stdout, for journald and ops (SPEC 7).

Both our structlog loggers and the stdlib loggers that panoramisk, asyncpg and aiohttp
use end up in the same renderer, so every line has the same shape::

    {"timestamp": "2025-11-22T10:00:00.123456Z", "level": "info", "event": "...",
     "logger": "bridge.tracker", "callid": "1763805600.12", ...}

Call-related code binds ``callid`` (``log.bind(callid=...)`` or
``structlog.contextvars.bind_contextvars(callid=...)``); bound keys are rendered as-is.

Warnings that a hostile peer or a broken environment can repeat thousands of times a second
(an AMI stream of garbage, ``accept()`` out of file descriptors) go through
:class:`RateLimitedLog`: the first one is written at once, then at most one line per
interval, carrying ``repeated`` (how many were left out since the previous line). The stdlib
loggers of asyncio and aiohttp's server get the same treatment from :class:`RateLimitFilter`.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Hashable
from typing import Any, NamedTuple, TextIO

import structlog
from structlog.typing import EventDict, FilteringBoundLogger, Processor

from .log_output import BackgroundOutput

__all__ = [
    "LogSetup",
    "RateLimitFilter",
    "RateLimitedLog",
    "RateLimiter",
    "close_output",
    "configure_logging",
    "dropped_lines",
    "get_logger",
    "log_setup",
    "write_rendered",
]

_LEVELS: dict[str, int] = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}

# Marks the root handler we install, so a second configure_logging() replaces it instead
# of doubling every line, while handlers others added (pytest's caplog) stay.
_HANDLER_MARK = "_bridge_logs_handler"


class LogSetup(NamedTuple):
    """What configure_logging() was last told: a child process renders its lines alike."""

    level: str = "info"
    json: bool = True


_setup = LogSetup()
_output: TextIO | None = None  # where configure_logging() sends lines (None: sys.stdout)


def log_setup() -> LogSetup:
    return _setup


def write_rendered(text: str) -> None:
    """Write lines rendered elsewhere (the FastAGI worker's) where this process's go."""
    out = _output if _output is not None else sys.stdout
    out.write(text)
    out.flush()


def dropped_lines() -> int:
    """Lines a background output (``configure_logging(background=True)``) dropped."""
    return _output.dropped if isinstance(_output, BackgroundOutput) else 0


def close_output(timeout: float = 2.0) -> None:
    """At exit: write what a background output holds, waiting at most ``timeout`` s."""
    if isinstance(_output, BackgroundOutput):
        _output.close(timeout)


def _warn_dropped(dropped: int, total: int) -> None:
    """Called by the background output's thread once the output takes lines again."""
    get_logger(__name__).warning("log_lines_dropped", dropped=dropped, total=total)


class _NamedWriteLogger(structlog.WriteLogger):
    """A WriteLogger that remembers the name it was asked for, like a stdlib logger."""

    def __init__(self, file: TextIO, name: str | None) -> None:
        super().__init__(file)
        self.name = name


class _NamedWriteLoggerFactory:
    """Hands ``get_logger(name)``'s name to the logger, so ``add_logger_name`` can show it."""

    def __init__(self, file: TextIO) -> None:
        self._file = file

    def __call__(self, *args: Any) -> _NamedWriteLogger:
        name = args[0] if args and isinstance(args[0], str) else None
        return _NamedWriteLogger(self._file, name)


def _add_logger_name(logger: Any, method_name: str, event_dict: EventDict) -> EventDict:
    """``logger`` key from the stdlib record or our named logger; left out when unnamed."""
    record = event_dict.get("_record")
    name = record.name if record is not None else getattr(logger, "name", None)
    if name:
        event_dict.setdefault("logger", name)
    return event_dict


_FIRST_KEYS = ("timestamp", "level", "event", "logger", "callid")


def _lead_with_fixed_keys(logger: Any, method_name: str, event_dict: EventDict) -> EventDict:
    """Put timestamp, level, event, logger, callid first: easier to read in journalctl."""
    ordered = {key: event_dict.pop(key) for key in _FIRST_KEYS if key in event_dict}
    ordered.update(event_dict)
    return ordered


def _drop_formatter_leftovers(logger: Any, method_name: str, event_dict: EventDict) -> EventDict:
    """Drop ``message``/``asctime`` another handler's formatter left on the record.

    ExtraAdder would copy them (pytest's caplog does this), duplicating ``event``.
    """
    event_dict.pop("message", None)
    event_dict.pop("asctime", None)
    return event_dict


class RateLimiter:
    """Decides which of many identical lines are written: the first, then one per ``interval``.

    ``hit(key)`` answers ``None`` (leave this one out) or the number of hits left out since
    the previous written line (0 for the first). Pure bookkeeping, no I/O; ``clock`` is
    injectable for tests. At most ``max_keys`` keys are remembered, so keys built from
    varying text cannot grow it without end.
    """

    def __init__(
        self,
        interval: float = 10.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 1024,
    ) -> None:
        self.interval = interval
        self.clock = clock
        self.max_keys = max_keys
        # key -> [time of the last written line, hits left out since]
        self._seen: dict[Hashable, list[float]] = {}

    def hit(self, key: Hashable) -> int | None:
        now = self.clock()
        state = self._seen.get(key)
        if state is None:
            if len(self._seen) >= self.max_keys:
                self._forget(now)
            self._seen[key] = [now, 0]
            return 0
        if now - state[0] < self.interval:
            state[1] += 1
            return None
        left_out = int(state[1])
        state[0], state[1] = now, 0
        return left_out

    def pending(self) -> dict[Hashable, int]:
        """Keys with hits left out since their last written line, and how many."""
        return {key: int(state[1]) for key, state in self._seen.items() if state[1]}

    def reset(self, key: Hashable) -> int:
        """Forget ``key``; answers how many of its hits were left out and never reported."""
        state = self._seen.pop(key, None)
        return 0 if state is None else int(state[1])

    def _forget(self, now: float) -> None:
        """Drop keys quiet for a whole interval; if that is not enough, the oldest half."""
        quiet = [k for k, (at, _) in self._seen.items() if now - at >= self.interval]
        for key in quiet:
            del self._seen[key]
        if len(self._seen) >= self.max_keys:
            for key in list(self._seen)[: len(self._seen) // 2 + 1]:
                del self._seen[key]


class RateLimitedLog:
    """A structlog logger for warnings that may repeat in floods, keyed by event name.

    The first ``log.warning("event", ...)`` is written at once; further ones within
    ``interval`` seconds are only counted, and the next one written after that carries
    ``repeated=N``. ``key=`` separates lines with the same event name (per peer, per
    listener). ``flush()`` writes what is still counted (at close, so no count is lost).
    """

    def __init__(
        self,
        logger: FilteringBoundLogger,
        interval: float = 10.0,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.limiter = RateLimiter(interval, clock=clock)
        self._last: dict[Hashable, tuple[str, str, dict[str, Any]]] = {}

    def info(self, event: str, *, key: Hashable = None, **fields: Any) -> bool:
        return self._log("info", event, key, fields)

    def warning(self, event: str, *, key: Hashable = None, **fields: Any) -> bool:
        return self._log("warning", event, key, fields)

    def error(self, event: str, *, key: Hashable = None, **fields: Any) -> bool:
        return self._log("error", event, key, fields)

    def _log(self, level: str, event: str, key: Hashable, fields: dict[str, Any]) -> bool:
        """Write the line or count it; answers whether it was written."""
        full_key = (event, key)
        left_out = self.limiter.hit(full_key)
        if left_out is None:
            if len(self._last) >= self.limiter.max_keys:
                self._last.clear()  # only counts' last fields are lost, the counts are not
            self._last[full_key] = (level, event, fields)
            return False
        self._last.pop(full_key, None)
        if left_out:
            fields = {**fields, "repeated": left_out}
        getattr(self.logger, level)(event, **fields)
        return True

    def flush(self) -> None:
        """Write one line per key with counted hits (the fields of its latest hit)."""
        for full_key, left_out in self.limiter.pending().items():
            self.limiter.reset(full_key)
            event = str(full_key[0]) if isinstance(full_key, tuple) else str(full_key)
            level, event, fields = self._last.pop(full_key, ("warning", event, {}))
            getattr(self.logger, level)(event, **{**fields, "repeated": left_out})


class RateLimitFilter(logging.Filter):
    """A stdlib ``logging.Filter`` doing what :class:`RateLimitedLog` does, for libraries.

    Records are the same when their message template's first line, level and exception
    type are: asyncio puts the variable details (the socket, the task) on later lines. A
    record let through after others were left out gets a ``repeated`` attribute, which
    the JSON renderer shows like any ``extra``.
    """

    def __init__(
        self, interval: float = 10.0, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self.limiter = RateLimiter(interval, clock=clock)

    def filter(self, record: logging.LogRecord) -> bool:
        first_line = str(record.msg).split("\n", 1)[0]
        exc_type = record.exc_info[0].__name__ if record.exc_info and record.exc_info[0] else ""
        left_out = self.limiter.hit((record.name, record.levelno, first_line, exc_type))
        if left_out is None:
            return False
        if left_out:
            record.repeated = left_out
        return True


# Loggers a peer can make repeat themselves: asyncio's "socket.accept() out of system
# resource" (CPython 3.11 writes it up to 100 times per loop turn while file descriptors
# are exhausted), aiohttp's "Error handling request" (one per malformed request).
_FLOOD_PRONE_LOGGERS = ("asyncio", "aiohttp.server")


def _limit_flood_prone_loggers() -> None:
    for name in _FLOOD_PRONE_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RateLimitFilter) for f in logger.filters):
            logger.addFilter(RateLimitFilter())


def _level_number(level: str) -> int:
    try:
        return _LEVELS[level.strip().lower()]
    except KeyError:
        known = ", ".join(name for name in _LEVELS if name != "warn")
        raise ValueError(f"unknown log level {level!r} (one of {known})") from None


def configure_logging(
    level: str = "info",
    *,
    json: bool = True,
    stream: TextIO | None = None,
    cache_loggers: bool = False,
    background: bool = False,
) -> None:
    """Send structlog and stdlib logging to ``stream`` (default: the current sys.stdout).

    ``json=False`` renders human-readable lines (the demo, a developer's terminal).
    ``cache_loggers`` speeds up hot loggers but freezes them to this configuration; keep it
    off where logging is reconfigured or captured (tests), turn it on in the daemon.
    ``background`` (the daemons): a thread writes the lines (:mod:`.log_output`), so a
    stalled journal never blocks the event loop; call :func:`close_output` at exit.
    """
    global _setup, _output
    threshold = _level_number(level)
    out: TextIO = stream if stream is not None else sys.stdout
    close_output()  # a previous configuration's thread: its lines first
    if background:
        out = BackgroundOutput(out, on_dropped=_warn_dropped)  # type: ignore[assignment]
    _setup, _output = LogSetup(level, json), out

    # Shared by both paths, so stdlib records get the same keys as structlog events.
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
        _add_logger_name,
    ]
    renderer: Processor
    if json:
        renderer = structlog.processors.JSONRenderer(default=str)
        tail: list[Processor] = [
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            structlog.processors.UnicodeDecoder(),
            _lead_with_fixed_keys,
            renderer,
        ]
    else:
        colors = bool(getattr(out, "isatty", lambda: False)())
        renderer = structlog.dev.ConsoleRenderer(colors=colors)
        tail = [structlog.processors.StackInfoRenderer(), renderer]

    # Our own loggers skip the stdlib machinery: filtering by level is then a no-op method
    # call, which matters on the per-event hot path.
    structlog.configure(
        processors=[*shared, *tail],
        wrapper_class=structlog.make_filtering_bound_logger(threshold),
        logger_factory=_NamedWriteLoggerFactory(out),
        context_class=dict,
        cache_logger_on_first_use=cache_loggers,
    )

    # Libraries log through stdlib `logging`: render their records with the same chain.
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            *shared,
            structlog.stdlib.ExtraAdder(),
            _drop_formatter_leftovers,
        ],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *tail,
        ],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    setattr(handler, _HANDLER_MARK, True)

    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(threshold)
    logging.captureWarnings(True)
    _limit_flood_prone_loggers()


def get_logger(name: str | None = None, **initial: Any) -> FilteringBoundLogger:
    """A lazy structlog logger (safe at module level, before configure_logging runs).

    ``name`` (usually ``__name__``) becomes the ``logger`` key, as for stdlib records.
    """
    if name is None:
        return structlog.get_logger(**initial)
    return structlog.get_logger(name, **initial)
