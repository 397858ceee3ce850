"""Baselines the bridge's own figures are divided by, measured in the same run.

(a) ``panoramisk_parse``   panoramisk 1.4's own parser: the stream, in socket-sized chunks,
                           through ``panoramisk.ami_protocol.AMIProtocol.data_received``
                           (set up as panoramisk's ``Manager.connection_made`` does, utf8),
                           with a dummy factory whose ``dispatch`` only counts.
(b) ``split_and_dict``     the minimal streaming parser: buffer the chunks, split on
                           ``b"\\r\\n\\r\\n"``, decode, split each line at the first ``": "``
                           into a dict.
(c) ``cacofonisk_baselines``  VoIPGRID's cacofonisk 0.7.10 (an AMI call-state tracker on top
                           of panoramisk): its tracking alone (events pre-parsed, untimed) and
                           panoramisk + cacofonisk end to end. cacofonisk is not a dependency of
                           the project: the bench installs it (with panoramisk 1.4) into its own
                           venv ``<repo>/.bench-venv`` on first use, only for the benchmark,
                           and runs ``.bench-venv/bin/python -m bench.cacofonisk_runner`` as a
                           subprocess, which rebuilds the same corpus and prints JSON results.
                           Its separate venv keeps cacofonisk (whose wheel also installs a
                           top-level ``tests`` package) out of the project's ``.venv``.

Every function takes the :class:`bench.corpus.Corpus` (or builds it) and returns
:class:`bench.result.Result` (name, events, seconds, events_per_s, notes, errors, extra).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench.corpus import REPO_ROOT, Corpus, iter_chunks
from bench.result import Result

DEFAULT_CHUNK = 64 * 1024

BENCH_VENV = REPO_ROOT / ".bench-venv"
CACOFONISK_REQUIREMENTS = ("cacofonisk==0.7.10", "panoramisk==1.4")


def chunk_size() -> int:
    """env ``BENCH_CHUNK`` (bytes per simulated socket read) or 64 KiB."""
    raw = os.environ.get("BENCH_CHUNK", "").strip()
    return int(raw) if raw else DEFAULT_CHUNK


# --------------------------------------------------------------------------- (a)


class _CountingFactory:
    """Stands in for panoramisk's Manager: ``dispatch`` only counts events."""

    save_stream = None

    def __init__(self) -> None:
        self.count = 0

    def dispatch(self, message) -> None:
        self.count += 1


class NullTransport:
    """A transport that swallows writes: protocols parse without a socket."""

    def write(self, data) -> None:
        pass

    def close(self) -> None:
        pass


def make_panoramisk_protocol(factory):
    """An ``AMIProtocol`` wired the way ``Manager.connection_made`` wires it."""
    import logging

    from panoramisk.ami_protocol import AMIProtocol

    proto = AMIProtocol()
    proto.connection_made(NullTransport())
    proto.factory = factory
    proto.encoding = "utf8"  # Manager's default encoding
    # Manager passes its own logger; keep panoramisk's per-message debug() calls cheap.
    proto.log = logging.getLogger("bench.panoramisk")
    return proto


def panoramisk_parse(corpus: Corpus, chunk: int | None = None) -> Result:
    """(a) panoramisk 1.4 bare parse rate."""
    from importlib.metadata import version

    chunk = chunk or chunk_size()
    factory = _CountingFactory()
    proto = make_panoramisk_protocol(factory)
    feed = proto.data_received
    t0 = time.perf_counter()
    for piece in iter_chunks(corpus.data, chunk):
        feed(piece)
    seconds = time.perf_counter() - t0
    errors = {}
    if factory.count != corpus.events:
        errors["dispatched != corpus events"] = abs(factory.count - corpus.events)
    return Result.timed(
        "(a) panoramisk parse",
        corpus.events,
        seconds,
        notes=f"panoramisk {version('panoramisk')} AMIProtocol.data_received, "
        f"{chunk // 1024} KiB chunks, counting dispatch ({factory.count:,} events dispatched)",
        errors=errors,
    )


# --------------------------------------------------------------------------- (b)


def split_and_dict(corpus: Corpus, chunk: int | None = None) -> Result:
    """(b) minimal split-and-dict parser rate."""
    chunk = chunk or chunk_size()
    sep = b"\r\n\r\n"
    parsed = 0
    last: dict[str, str] = {}
    t0 = time.perf_counter()
    buf = b""
    for piece in iter_chunks(corpus.data, chunk):
        buf += piece
        parts = buf.split(sep)
        buf = parts.pop()
        for part in parts:
            msg = {}
            for line in part.decode("utf-8", "replace").split("\r\n"):
                key, found, value = line.partition(": ")
                if found:
                    msg[key] = value
            last = msg
            parsed += 1
    seconds = time.perf_counter() - t0
    errors = {}
    if parsed != corpus.messages:
        errors["parsed != corpus messages"] = abs(parsed - corpus.messages)
    if buf:
        errors["unterminated tail bytes"] = len(buf)
    del last
    return Result.timed(
        "split-and-dict parser",
        corpus.events,
        seconds,
        notes=f"split on \\r\\n\\r\\n, decode, partition(': ') into dict; {chunk // 1024} KiB "
        f"chunks ({parsed:,} messages incl. responses)",
        errors=errors,
    )


# --------------------------------------------------------------------------- (c)


def _venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def ensure_bench_venv(venv: Path = BENCH_VENV, quiet: bool = True) -> Path:
    """Create ``.bench-venv`` with cacofonisk + panoramisk 1.4 unless it already has them.

    Returns the venv's python. Raises ``RuntimeError`` if it cannot be installed.
    """
    py = _venv_python(venv)
    probe = (
        "import cacofonisk, panoramisk; from importlib.metadata import version; "
        "assert version('panoramisk') == '1.4' and version('cacofonisk') == '0.7.10'"
    )
    if py.exists() and subprocess.run([py, "-c", probe], capture_output=True).returncode == 0:
        return py
    print(
        f"bench: installing {' '.join(CACOFONISK_REQUIREMENTS)} into {venv} (benchmark only)",
        file=sys.stderr,
    )
    try:
        if not py.exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        cmd = [str(py), "-m", "pip", "install", "--disable-pip-version-check"]
        if quiet:
            cmd.append("-q")
        subprocess.run([*cmd, *CACOFONISK_REQUIREMENTS], check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise RuntimeError(f"could not install cacofonisk into {venv}: {exc}") from exc
    if subprocess.run([py, "-c", probe], capture_output=True).returncode != 0:
        raise RuntimeError(f"{venv}: cacofonisk still not importable after install")
    return py


def cacofonisk_baselines(
    min_events: int, chunk: int | None = None, repeat: int = 1, timeout: float = 3600.0
) -> list[Result]:
    """(c) cacofonisk tracking alone and panoramisk + cacofonisk end to end.

    Runs ``bench.cacofonisk_runner`` in ``.bench-venv`` (installed on first use); the
    subprocess rebuilds the corpus with ``min_events`` itself (deterministic, so it is
    the same stream). On any failure returns skipped results saying why.
    """
    chunk = chunk or chunk_size()
    names = ("cacofonisk tracking only", "(b) panoramisk + cacofonisk")
    try:
        py = ensure_bench_venv()
    except RuntimeError as exc:
        return [Result.skip(n, str(exc)) for n in names]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    cmd = [
        str(py),
        "-m",
        "bench.cacofonisk_runner",
        "--events",
        str(min_events),
        "--chunk",
        str(chunk),
        "--repeat",
        str(repeat),
    ]
    proc = subprocess.run(
        cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        return [Result.skip(n, "cacofonisk runner failed: " + " | ".join(tail)) for n in names]
    if proc.stderr.strip():
        sys.stderr.write(proc.stderr)
    return [Result.from_dict(d) for d in json.loads(proc.stdout)]


def combined_rate(parse_rate: float, track_rate: float) -> float:
    """Serial pipeline rate from two stage rates: 1 / (1/parse + 1/track)."""
    if parse_rate <= 0 or track_rate <= 0:
        return 0.0
    return 1.0 / (1.0 / parse_rate + 1.0 / track_rate)


def combined_pipeline(parse: Result, track: Result) -> Result:
    """The issue's way of estimating panoramisk + cacofonisk: (a) and cacofonisk tracking
    alone combined as 1/(1/a + 1/track). Derived, not measured; it leaves out panoramisk's
    ``Manager.dispatch`` (pattern matching per registered event), which the measured
    end-to-end figure includes."""
    name = "(b') 1/(1/(a) + 1/track), derived"
    if parse.skipped or track.skipped:
        return Result.skip(name, "needs (a) and cacofonisk tracking only")
    rate = combined_rate(parse.events_per_s, track.events_per_s)
    return Result(
        name=name,
        events=parse.events,
        seconds=parse.seconds + track.seconds,
        events_per_s=rate,
        notes="computed from (a) and (c) tracking only; excludes Manager.dispatch",
    )
