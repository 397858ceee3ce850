"""Ports for servers that must be told theirs before they start (a daemon's config, a CRM
revived where the old one was).

A port the kernel hands out for `bind(0)` goes back to its pool the moment the probing
socket closes: until the server binds it, another test process's `bind(0)` or outgoing
connection may take it. These come from below the kernel's ephemeral range instead, each
xdist worker from its own slice, in turn, so neither the kernel nor another worker hands
them out.
"""

from __future__ import annotations

import itertools
import os
import socket
from pathlib import Path

__all__ = ["free_port"]

_FIRST, _LAST = 10_000, 20_000  # the tests' PostgreSQL clusters take theirs from 20000 up


def _ephemeral() -> range:
    try:
        low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        low, high = 32768, 60999  # Linux's default
    return range(low, high + 1)


def _slice() -> range:
    """This worker's share of 10000-19999 (empty when the ephemeral range covers it)."""
    workers = max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1))
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    n = int(worker) % workers if worker.isdigit() else 0
    size = (_LAST - _FIRST) // workers
    ports = range(_FIRST + n * size, _FIRST + (n + 1) * size)
    ephemeral = _ephemeral()
    return ports if ports.stop <= ephemeral.start or ports.start > ephemeral.stop else range(0)


_PORTS = _slice()
_turn = itertools.count(os.getpid())  # a rerun does not start where the last did


def free_port() -> int:
    """A port nothing listens on now, from this worker's slice (or one the kernel hands
    out, on a machine whose ephemeral range leaves no room)."""
    for _ in range(len(_PORTS)):
        port = _PORTS[next(_turn) % len(_PORTS)]
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
