"""How long the dialplan was held: FastAGI round trips, connection to close, per route.

A plain bucket array per route, filled on the hot path with one bisect and two additions
(no prometheus_client objects, no locks); :class:`bridge.agi.metrics.AgiCollector` turns it
into a Prometheus histogram at scrape time.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable

__all__ = ["ROUND_TRIP_BUCKETS", "Histogram"]

# Around the targets: a cached look-up within 5 ms, every look-up within the 1.5 s
# contact deadline (+100 ms), the server's hard deadline (contact_timeout + 3 s) below 5 s.
ROUND_TRIP_BUCKETS: tuple[float, ...] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    1.5,
    1.6,
    2.5,
    5.0,
)


class Histogram:
    """Observations in seconds; ``counts[i]`` holds those <= ``bounds[i]`` and > the bound
    before (the last slot: above every bound)."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: Iterable[float] = ROUND_TRIP_BUCKETS) -> None:
        self.bounds = tuple(sorted(bounds))
        self.counts = [0] * (len(self.bounds) + 1)
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(self.bounds, seconds)] += 1
        self.total += seconds

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound, observations <= it), ending with (inf, all): Prometheus' shape."""
        out, running = [], 0
        for bound, n in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += n
            out.append((bound, running))
        return out
