"""cacofonisk baselines; runs inside ``.bench-venv`` (cacofonisk 0.7.10 + panoramisk 1.4).

    .bench-venv/bin/python -m bench.cacofonisk_runner --events 100000 [--chunk 65536] [--repeat 3]

Rebuilds the corpus (:func:`bench.corpus.build_corpus`, deterministic) and prints a JSON
list of two :class:`bench.result.Result` dicts on stdout:

* ``track_only(corpus)`` -- cacofonisk's tracking with parsing left out. The stream is
  parsed, untimed, into the objects cacofonisk gets in production (panoramisk
  ``Message``, a case-insensitive dict), in batches of ``BATCH`` events to bound memory;
  only the feeding loop is timed, the way cacofonisk's own ``FileRunner`` feeds events:
  ``if event['Event'] in interesting_events: handler.on_event(event)``. The denominator
  is every event of the stream (the uninteresting ones are filtered inside the loop).
* ``panoramisk_pipeline(corpus)`` -- panoramisk + cacofonisk end to end, wired as
  cacofonisk's ``AmiRunner.attach`` wires them (a panoramisk ``Manager`` as the protocol's
  factory, one ``register_event`` per cacofonisk handler, ``AmiRunner.on_event`` ->
  ``EventHandler.on_event``), inside a running asyncio loop; the stream is fed in chunks
  to ``AMIProtocol.data_received``.

Both use cacofonisk's ``EventHandler`` (the tracker its README calls the channel
manager) with a no-op ``BaseReporter``. Its logger gets a counting handler (no output):
cacofonisk logs a warning for every event naming a channel it does not know, and those
counts are reported. cacofonisk is not patched; an exception it raises on an event is
caught per event (in production it would escape ``data_received`` and panoramisk's
transport would drop the AMI connection) and counted as ``ExceptionType in Event``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import re
import sys
import time
from collections import Counter

from bench.baselines import NullTransport
from bench.corpus import Corpus, build_corpus, iter_chunks
from bench.result import Result, bench_repeat, median_run

BATCH = 50_000
LOGGER_NAME = "bench.cacofonisk"


_EVENT_IN_MSG = re.compile(r"""['"]?Event['"]?[=:] ?['"](\w+)['"]""")


class _CountingLogHandler(logging.Handler):
    """Counts cacofonisk's log records by level and message kind (no output)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.counts: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        msg = str(record.msg)
        if " not in mem when processing event" in msg:
            kind = msg.split(" with ", 1)[0]  # "Channel" / "Bridge"
            m = _EVENT_IN_MSG.search(msg)
            key = f"{kind} not in mem, event {m.group(1) if m else '?'}"
        else:
            key = re.sub(r"\d+", "N", msg.split(":", 1)[0])[:60]
        self.counts[f"{record.levelname}: {key}"] += 1


def _logger() -> tuple[logging.Logger, _CountingLogHandler]:
    log = logging.getLogger(LOGGER_NAME)
    for h in list(log.handlers):
        log.removeHandler(h)
    handler = _CountingLogHandler()
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    return log, handler


def _summarise_logs(counts: Counter[str]) -> dict[str, int]:
    return dict(counts.most_common())


def _versions() -> str:
    from importlib.metadata import version

    return f"cacofonisk {version('cacofonisk')}, panoramisk {version('panoramisk')}"


def _handler(log: logging.Logger):
    from cacofonisk import BaseReporter, EventHandler

    return EventHandler(reporter=BaseReporter(), hostname="bench", logger=log)


def _iter_message_batches(corpus: Corpus, size: int):
    """panoramisk Messages (what AmiRunner hands cacofonisk), ``size`` at a time."""
    from panoramisk.message import Message

    batch = []
    data = corpus.data
    start = 0
    sep = b"\r\n\r\n"
    while True:
        end = data.find(sep, start)
        if end < 0:
            break
        msg = Message.from_line(data[start:end].decode("utf8", "ignore").strip())
        start = end + 4
        if msg is not None and "event" in msg:
            batch.append(msg)
            if len(batch) >= size:
                yield batch
                batch = []
    if batch:
        yield batch


def track_only(corpus: Corpus, batch: int = BATCH) -> Result:
    """cacofonisk EventHandler throughput on pre-parsed panoramisk Messages."""
    log, logs = _logger()
    handler = _handler(log)
    interesting = handler.event_handlers().keys()
    on_event = handler.on_event
    errors: Counter[str] = Counter()
    fed = handled = 0
    seconds = 0.0
    for events in _iter_message_batches(corpus, batch):
        t0 = time.perf_counter()
        for event in events:
            if event["Event"] in interesting:
                try:
                    on_event(event)
                except Exception as exc:  # noqa: BLE001 - counted, reported
                    errors[f"{type(exc).__name__} in {event['Event']}"] += 1
                handled += 1
        seconds += time.perf_counter() - t0
        fed += len(events)
    if fed != corpus.events:
        errors["fed != corpus events"] = abs(fed - corpus.events)
    return Result.timed(
        "cacofonisk tracking only",
        corpus.events,
        seconds,
        notes=f"{_versions()}: EventHandler.on_event + no-op BaseReporter on pre-parsed "
        f"panoramisk Messages (parse untimed), FileRunner-style filter; {handled:,} of "
        f"{fed:,} events are ones it handles ({handled / seconds if seconds else 0:,.0f} "
        "handled events/s)",
        errors=dict(errors.most_common()),
        extra={
            "handled_events": handled,
            "handled_events_per_s": handled / seconds if seconds else 0.0,
            "log": _summarise_logs(logs.counts),
        },
    )


async def _pipeline(corpus: Corpus, chunk: int) -> Result:
    from cacofonisk import AmiRunner, BaseReporter, EventHandler
    from panoramisk import Manager
    from panoramisk.ami_protocol import AMIProtocol

    log, logs = _logger()
    reporter = BaseReporter()
    runner = AmiRunner([], reporter, handler=EventHandler, logger=log)
    manager = Manager(loop=asyncio.get_running_loop(), encoding="utf8", log=log)
    handler = EventHandler(reporter=reporter, hostname="bench", logger=log)
    runner.ami_managers[manager] = handler
    errors: Counter[str] = Counter()
    delivered = 0

    def on_event(mgr, event):
        # AmiRunner.on_event, guarded so one exception does not abort the whole chunk.
        nonlocal delivered
        delivered += 1
        try:
            runner.on_event(mgr, event)
        except Exception as exc:  # noqa: BLE001 - counted, reported
            errors[f"{type(exc).__name__} in {event['Event']}"] += 1

    # As AmiRunner.attach: FILTER_EVENTS is True, so one registration per handled event.
    for name in handler.event_handlers().keys():
        manager.register_event(name, on_event)

    # As Manager.connection_made, without a socket and without the Login action.
    proto = AMIProtocol()
    proto.connection_made(NullTransport())
    proto.factory = manager
    proto.log = log
    proto.config = manager.config
    proto.encoding = manager.encoding = manager.config["encoding"]
    manager.protocol = proto
    manager.responses = proto.responses

    feed = proto.data_received
    t0 = time.perf_counter()
    for piece in iter_chunks(corpus.data, chunk):
        feed(piece)
    seconds = time.perf_counter() - t0
    await asyncio.sleep(0)  # let Manager's own FullyBooted coroutines finish
    return Result.timed(
        "(b) panoramisk + cacofonisk",
        corpus.events,
        seconds,
        notes=f"{_versions()}: AMIProtocol.data_received ({chunk // 1024} KiB chunks) -> "
        f"Manager.dispatch -> AmiRunner.on_event -> EventHandler.on_event, no-op reporter; "
        f"{delivered:,} events delivered to cacofonisk",
        errors=dict(errors.most_common()),
        extra={"handled_events": delivered, "log": _summarise_logs(logs.counts)},
    )


def panoramisk_pipeline(corpus: Corpus, chunk: int = 64 * 1024) -> Result:
    """panoramisk parse + cacofonisk tracking, end to end, one loop."""
    return asyncio.run(_pipeline(corpus, chunk))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=None, help="minimum events (BENCH_EVENTS)")
    ap.add_argument("--chunk", type=int, default=64 * 1024)
    ap.add_argument("--repeat", type=int, default=None, help="runs each (BENCH_REPEAT)")
    ap.add_argument("--only", choices=("track", "pipeline"), default=None)
    args = ap.parse_args(argv)
    repeat = args.repeat or bench_repeat()
    corpus = build_corpus(args.events)
    warm = build_corpus(1)  # untimed warm-up passes on one repetition
    results = []
    if args.only in (None, "track"):
        track_only(warm)
        results.append(median_run(lambda: track_only(corpus), repeat))
    if args.only in (None, "pipeline"):
        panoramisk_pipeline(warm, args.chunk)
        results.append(median_run(lambda: panoramisk_pipeline(corpus, args.chunk), repeat))
    json.dump([r.to_dict() for r in results], sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
