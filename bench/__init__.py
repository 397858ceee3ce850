"""Throughput benchmark: ``make bench`` = ``.venv/bin/python -m bench``.

Every figure is printed as a ratio against baselines measured in the same run, on the same
AMI byte stream (:mod:`bench.corpus`: the shared real Asterisk 22 traces, repeated to at
least ``BENCH_EVENTS`` events, default 1,000,000):

* :mod:`bench.baselines` -- (a) panoramisk 1.4's parser, (b) a minimal split-and-dict
  parser, (c) cacofonisk's tracker alone and panoramisk + cacofonisk end to end (run in
  ``.bench-venv``, which the bench installs on first use, only for the benchmark; see
  :mod:`bench.cacofonisk_runner`).
* ``bench.ours`` (optional) -- the project's own figures; see :mod:`bench.__main__`.

This package imports only the standard library at import time (``bench.corpus``,
``bench.result`` and ``bench.cacofonisk_runner`` also run inside ``.bench-venv``).
"""

from bench.result import Result

__all__ = ["Result"]
