"""Prometheus metrics, read from the running objects at scrape time.

- `PipelineCollector`: AMI ingest, tracker and pipeline counters (nothing is counted twice
  on the hot path: the objects keep plain integers, the collector reads them);
- `DeliveryMetrics`: webhook attempts per target and outcome and their latency (a real
  prometheus_client Counter and Histogram, updated by the delivery workers);
- `BacklogCollector`: per target, rows waiting, the age of the oldest, dead letters (read
  from the database by a background refresh, since a scrape cannot wait on a query).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

# (name, help, kind) of every figure `pipeline_figures` reads
_PIPELINE = (
    ("ami_events", "AMI events received", "counter", "received"),
    ("ami_events_dropped", "AMI events dropped (ingest buffer full)", "counter", "dropped"),
    ("ami_reconnects", "AMI reconnects", "counter", "reconnects"),
    ("ami_resyncs", "CoreShowChannels resyncs done", "counter", "resyncs"),
    ("ami_connected", "1 when logged in to AMI", "gauge", "connected"),
    ("ingest_queue_depth", "AMI events waiting to be tracked", "gauge", "queue"),
    ("calls_up", "Calls in progress", "gauge", "calls_up"),
    ("tracker_faults", "Calls closed early by a tracker fault", "counter", "faults"),
    ("store_failures", "Failed store writes (retried)", "counter", "store_failures"),
    ("database_up", "1 when the last store write succeeded", "gauge", "database_up"),
    ("outage_buffer", "Tracked outputs waiting to be stored", "gauge", "buffered"),
    (
        "outage_buffer_dropped",
        "Pop-up events dropped from a full outage buffer",
        "counter",
        "buffer_dropped",
    ),
    ("leader", "1 while this bridge follows AMI (holds the PBX lock)", "gauge", "leader"),
    ("cel_reads", "Reads of Asterisk's CEL after gaps (backfill)", "counter", "cel_reads"),
    ("cel_read_failures", "Failed reads of Asterisk's CEL (retried)", "counter", "cel_failures"),
    (
        "cel_backfilled_calls",
        "Calls reported from the CEL: unseen, or settled after a gap",
        "counter",
        "cel_calls",
    ),
    (
        "log_lines_dropped",
        "Log lines dropped while the log output (journald) took none",
        "counter",
        "log_dropped",
    ),
)


class PipelineCollector:
    def __init__(self, read: Callable[[], Mapping[str, float]]) -> None:
        self.read = read

    def collect(self) -> Iterator[Metric]:
        v = self.read()
        for name, text, kind, key in _PIPELINE:
            family = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
            yield family(f"bridge_{name}", text, value=float(v.get(key, 0)))


def pipeline_figures(
    ingest: Any = None, tracker: Any = None, pipeline: Any = None, webhooks: Any = None
) -> dict[str, float]:
    """The numbers `PipelineCollector` reports, read off the running objects (any of them
    may be None: a standby bridge has no ingest, tracker or pipeline)."""
    figures: dict[str, float] = {}
    if ingest is not None:
        figures.update(
            received=ingest.received,
            dropped=ingest.dropped,
            reconnects=ingest.reconnects,
            resyncs=getattr(ingest, "resyncs", 0),
            connected=float(ingest.connected),
            queue=len(ingest.buffer),
        )
    if tracker is not None:
        figures["calls_up"] = tracker.open_calls
    if pipeline is not None:
        figures.update(
            store_failures=pipeline.store_failures,
            database_up=float(pipeline.db_ok),
            buffered=pipeline.buffered,
            buffer_dropped=pipeline.dropped_events,
            faults=pipeline.faults,
        )
        backfill = getattr(pipeline, "backfill", None)
        if backfill is not None:
            figures.update(
                cel_reads=backfill.reads,
                cel_failures=backfill.read_failures,
                cel_calls=backfill.reported + backfill.settled,
            )
    if webhooks is not None:  # the delivery workers' Stats
        for outcome in ("sent", "retried", "dead", "expired"):
            figures[f"webhooks_{outcome}"] = getattr(webhooks, outcome)
    return figures


def pipeline_registry(read: Callable[[], Mapping[str, float]]) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(PipelineCollector(read))
    return registry


# Webhook latency: a local CRM answers in milliseconds, a remote one in tens to hundreds.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class DeliveryMetrics:
    """Attempts by target and outcome, latency by target; register on a registry."""

    def __init__(self) -> None:
        self.attempts = Counter(
            "bridge_webhook_attempts",
            "Webhook delivery attempts by target and outcome",
            ("target", "outcome"),
            registry=None,
        )
        self.latency = Histogram(
            "bridge_webhook_latency_seconds",
            "Time from request to answer of webhook deliveries, by target",
            ("target",),
            buckets=LATENCY_BUCKETS,
            registry=None,
        )

    def observe(self, target: str, outcome: str, latency: float | None) -> None:
        self.attempts.labels(target, outcome).inc()
        if latency is not None:
            self.latency.labels(target).observe(latency)

    def collect(self) -> Iterator[Metric]:
        yield from self.attempts.collect()
        yield from self.latency.collect()


class BacklogRow(Protocol):
    @property
    def target(self) -> str: ...
    @property
    def waiting(self) -> int: ...
    @property
    def oldest_age(self) -> float: ...
    @property
    def oldest_history_age(self) -> float: ...
    @property
    def dead(self) -> int: ...


class BacklogCollector:
    """Per target: `bridge_webhook_backlog`, `..._oldest_seconds`, `bridge_webhook_dead`."""

    def __init__(self, read: Callable[[], Sequence[BacklogRow]]) -> None:
        self.read = read

    def collect(self) -> Iterator[Metric]:
        rows = self.read()
        waiting = GaugeMetricFamily(
            "bridge_webhook_backlog", "Webhooks waiting for delivery", labels=["target"]
        )
        oldest = GaugeMetricFamily(
            "bridge_webhook_backlog_oldest_seconds",
            "Age of the oldest webhook waiting for delivery",
            labels=["target"],
        )
        history = GaugeMetricFamily(
            "bridge_webhook_history_oldest_seconds",
            "Age of the oldest call history waiting for delivery",
            labels=["target"],
        )
        dead = GaugeMetricFamily(
            "bridge_webhook_dead", "Dead letters waiting for a re-drive", labels=["target"]
        )
        for r in rows:
            waiting.add_metric([r.target], r.waiting)
            oldest.add_metric([r.target], r.oldest_age)
            history.add_metric([r.target], r.oldest_history_age)
            dead.add_metric([r.target], r.dead)
        yield waiting
        yield oldest
        yield history
        yield dead
