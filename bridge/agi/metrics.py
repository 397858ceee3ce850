"""Prometheus view of the AGI server's counters, read at scrape time (nothing on the hot path).

Register it on the daemon's registry:
``registry.register(AgiCollector(server.stats, lambda: server.latency))``.
Counters become ``bridge_<name>_total``-style counter families, the few gauges gauges,
and the round trips per route the histogram ``bridge_agi_round_trip_seconds{route=...}``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.utils import floatToGoString

from .latency import Histogram

__all__ = ["ROUND_TRIP_METRIC", "AgiCollector"]

ROUND_TRIP_METRIC = "bridge_agi_round_trip_seconds"
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
    """Every key of ``read()`` as ``bridge_<key>``; documentation strings name the source.

    ``latency``: the server's round-trip histograms by route (``AgiServer.latency``).
    """

    def __init__(
        self,
        read: Callable[[], Mapping[str, float]],
        latency: Callable[[], Mapping[str, Histogram]] | None = None,
    ) -> None:
        self.read = read
        self.latency = latency

    def collect(self) -> Iterator[Metric]:
        for key, value in sorted(self.read().items()):
            name = f"bridge_{key}"
            if key in GAUGES:
                yield GaugeMetricFamily(name, f"FastAGI {key.replace('_', ' ')}", value=value)
            else:
                yield CounterMetricFamily(name, f"FastAGI {key.replace('_', ' ')}", value=value)
        if self.latency is not None:
            yield self._round_trips(self.latency())

    @staticmethod
    def _round_trips(by_route: Mapping[str, Histogram]) -> Metric:
        family = HistogramMetricFamily(
            ROUND_TRIP_METRIC,
            "FastAGI round trip, connection to close (how long the dialplan waited), by route",
            labels=["route"],
        )
        for route, histogram in sorted(by_route.items()):
            family.add_metric(
                [route],
                [(floatToGoString(bound), count) for bound, count in histogram.cumulative()],
                histogram.total,
            )
        return family
