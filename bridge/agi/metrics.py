"""Prometheus view of the AGI server's counters, read at scrape time (nothing on the hot path).

Register it on the daemon's registry: ``registry.register(AgiCollector(server.stats))``.
Counters become ``bridge_<name>_total``-style counter families, the few gauges gauges.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

__all__ = ["AgiCollector"]

GAUGES = frozenset(
    {
        "agi_active",
        "crm_contact_cache_entries",
        "crm_contact_breaker_open",
        "crm_contact_inflight",
        "rating_sink_pending",
    }
)


class AgiCollector:
    """Every key of ``read()`` as ``bridge_<key>``; documentation strings name the source."""

    def __init__(self, read: Callable[[], Mapping[str, float]]) -> None:
        self.read = read

    def collect(self) -> Iterator[Metric]:
        for key, value in sorted(self.read().items()):
            name = f"bridge_{key}"
            if key in GAUGES:
                yield GaugeMetricFamily(name, f"FastAGI {key.replace('_', ' ')}", value=value)
            else:
                yield CounterMetricFamily(name, f"FastAGI {key.replace('_', ' ')}", value=value)
