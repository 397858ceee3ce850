"""Ports for servers that must be told theirs before they start (a daemon's config, a CRM
revived where the old one was).

A port the kernel hands out for `bind(0)` goes back to its pool the moment the probing
socket closes: until the server binds it, another test process's `bind(0)` or outgoing
connection may take it. These come from below the kernel's ephemeral range instead, each
xdist worker from its own slice, in turn, so neither the kernel nor another worker hands
them out (the tests' PostgreSQL clusters take theirs from 20000 up).
"""

from __future__ import annotations

import itertools
import os
import socket

__all__ = ["free_port"]

_FIRST, _SLICE, _SLICES = 10_000, 3_000, 3


def _slice() -> range:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    start = _FIRST + (int(worker) if worker.isdigit() else 0) % _SLICES * _SLICE
    return range(start, start + _SLICE)


_PORTS = _slice()
_turn = itertools.count(os.getpid() % _SLICE)  # a rerun does not start where the last did


def free_port() -> int:
    """A port nothing listens on now, from this worker's slice."""
    for _ in range(_SLICE):
        port = _PORTS[next(_turn) % _SLICE]
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {_PORTS}")
