"""The round-trip histogram: Prometheus' `le` semantics (a value on a bound counts in it)."""

from __future__ import annotations

from bridge.agi.latency import ROUND_TRIP_BUCKETS, Histogram


def test_bounds_are_inclusive_and_cumulative() -> None:
    histogram = Histogram([0.005, 0.001, 1.5])  # sorted on the way in
    for seconds in (0.0004, 0.001, 0.0011, 0.005, 1.5, 1.51, 30.0):
        histogram.observe(seconds)
    assert histogram.cumulative() == [(0.001, 2), (0.005, 4), (1.5, 5), (float("inf"), 7)]
    assert histogram.count == 7
    assert abs(histogram.total - 33.0175) < 1e-9


def test_default_buckets_frame_the_targets() -> None:
    assert 0.005 in ROUND_TRIP_BUCKETS  # cached p99 target
    assert 1.5 in ROUND_TRIP_BUCKETS and 1.6 in ROUND_TRIP_BUCKETS  # deadline, + 100 ms
    assert list(ROUND_TRIP_BUCKETS) == sorted(set(ROUND_TRIP_BUCKETS))
    assert Histogram().cumulative()[-1] == (float("inf"), 0)
