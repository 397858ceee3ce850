"""Structured logging: one JSON object per line on stdout, for journald and ops (SPEC 7).

Both our structlog loggers and the stdlib loggers that panoramisk, asyncpg and aiohttp
use end up in the same renderer, so every line has the same shape::

    {"timestamp": "2025-11-22T10:00:00.123456Z", "level": "info", "event": "...",
     "logger": "bridge.tracker", "callid": "1763805600.12", ...}

Call-related code binds ``callid`` (``log.bind(callid=...)`` or
``structlog.contextvars.bind_contextvars(callid=...)``); bound keys are rendered as-is.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, FilteringBoundLogger, Processor

__all__ = ["configure_logging", "get_logger"]

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
) -> None:
    """Send structlog and stdlib logging to ``stream`` (default: the current sys.stdout).

    ``json=False`` renders human-readable lines (the demo, a developer's terminal).
    ``cache_loggers`` speeds up hot loggers but freezes them to this configuration; keep it
    off where logging is reconfigured or captured (tests), turn it on in the daemon.
    """
    threshold = _level_number(level)
    out: TextIO = stream if stream is not None else sys.stdout

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


def get_logger(name: str | None = None, **initial: Any) -> FilteringBoundLogger:
    """A lazy structlog logger (safe at module level, before configure_logging runs).

    ``name`` (usually ``__name__``) becomes the ``logger`` key, as for stdlib records.
    """
    if name is None:
        return structlog.get_logger(**initial)
    return structlog.get_logger(name, **initial)
