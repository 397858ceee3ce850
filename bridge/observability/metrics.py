"""Prometheus metrics of the call pipeline, read from the running objects at scrape time."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily


class PipelineCollector:
    """Reads counters off the ingest, tracker and pipeline: no bookkeeping on the hot path."""

    def __init__(self, read: Callable[[], dict[str, float]]) -> None:
        self.read = read

    def collect(self):  # type: ignore[no-untyped-def]
        v = self.read()
        yield CounterMetricFamily("bridge_ami_events", "AMI events received", value=v["received"])
        yield CounterMetricFamily(
            "bridge_ami_events_dropped", "AMI events dropped (buffer full)", value=v["dropped"]
        )
        yield CounterMetricFamily("bridge_ami_reconnects", "AMI reconnects", value=v["reconnects"])
        yield GaugeMetricFamily(
            "bridge_ami_connected", "1 when logged in to AMI", value=v["connected"]
        )
        yield GaugeMetricFamily("bridge_ingest_queue_depth", "AMI events waiting", value=v["queue"])
        yield GaugeMetricFamily("bridge_calls_up", "Calls in progress", value=v["calls_up"])
        yield CounterMetricFamily(
            "bridge_store_failures", "Failed store writes (retried)", value=v["store_failures"]
        )


def pipeline_figures(
    ingest: Any, tracker: Any, pipeline: Any = None, webhooks: Any = None
) -> dict[str, float]:
    """The numbers `PipelineCollector` reports, read off the running objects."""
    figures = {
        "received": ingest.received,
        "dropped": ingest.dropped,
        "reconnects": ingest.reconnects,
        "connected": float(ingest.connected),
        "queue": len(ingest.buffer),
        "calls_up": tracker.open_calls,
        "store_failures": pipeline.store_failures if pipeline is not None else 0,
    }
    if webhooks is not None:  # the delivery workers' Stats
        for outcome in ("sent", "retried", "dead", "expired"):
            figures[f"webhooks_{outcome}"] = getattr(webhooks, outcome)
    return figures


def pipeline_registry(read: Callable[[], dict[str, float]]) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(PipelineCollector(read))
    return registry
