"""``python -m bench``: run the baselines (and the project's own benchmarks, if any) on
one AMI stream and print events/s with ratios against baselines measured in this run.

Environment (all optional):
  BENCH_EVENTS   minimum events in the stream (default 1,000,000; 100000 for a quick run)
  BENCH_CHUNK    bytes per simulated socket read (default 65536)
  BENCH_REPEAT   runs per benchmark, the median run is reported (default 1)
  AMI_TRACES     traces directory (default <repo>/traces/asterisk22)

Hook for the project's own figures -- ``EXTRA_BENCHMARKS`` below: every callable in it is
called as ``fn(stream: bytes, events: int) -> bench.result.Result`` (a dict with the same
fields is accepted too) on the same stream, after the in-process baselines, one at a time
(``BENCH_REPEAT`` times each, like every benchmark, the median run reported). The
baselines get one untimed warm-up pass on one repetition of the traces first; the hooks
get none (do it inside the callable if wanted).
They are taken from ``bench/ours.py`` if that module exists::

    # bench/ours.py
    from bench.result import Result
    def ours_parse_and_track(stream: bytes, events: int) -> Result: ...
    def ours_end_to_end_postgres(stream: bytes, events: int) -> Result: ...
    BENCHMARKS = [ours_parse_and_track, ours_end_to_end_postgres]

Each row is printed with its ratio to (b) split-and-dict and to the measured
panoramisk + cacofonisk pipeline.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import sys
import time
from collections.abc import Callable
from functools import partial

from bench import baselines
from bench.corpus import bench_events, build_corpus
from bench.result import Result, bench_repeat, median_run

# ---------------------------------------------------------------------------------------
# HOOK: the project's own benchmarks, "(c) our parse + tracker", "(d) ours end to end
# into Postgres", ... Filled from bench.ours.BENCHMARKS when bench/ours.py exists.
EXTRA_BENCHMARKS: list[Callable[[bytes, int], Result]] = []
# ---------------------------------------------------------------------------------------

SPLIT_DICT = "split-and-dict parser"
PIPELINE = "(b) panoramisk + cacofonisk"


def load_extra_benchmarks() -> list[Callable[[bytes, int], Result]]:
    """``bench.ours.BENCHMARKS`` if ``bench/ours.py`` exists (its import errors are not
    swallowed), else ``[]``."""
    if importlib.util.find_spec("bench.ours") is None:
        return []
    mod = importlib.import_module("bench.ours")
    return list(getattr(mod, "BENCHMARKS", []))


def _ratio(r: Result, ref: Result | None) -> str:
    if r.skipped or ref is None or ref.skipped or ref.events_per_s <= 0:
        return "-"
    return f"{r.events_per_s / ref.events_per_s:.2f}x"


def format_table(results: list[Result]) -> str:
    by_name = {r.name: r for r in results}
    b, pipe = by_name.get(SPLIT_DICT), by_name.get(PIPELINE)
    head = ("benchmark", "events/s", "vs split-dict", "vs (b)", "seconds", "errors")
    rows = [head]
    for r in results:
        rate = "skipped" if r.skipped else f"{r.events_per_s:,.0f}"
        errs = sum(r.errors.values())
        rows.append(
            (
                r.name,
                rate,
                _ratio(r, b),
                _ratio(r, pipe),
                f"{r.seconds:.2f}",
                f"{errs:,}" if errs else "0",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = []
    for n, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])]
        cells += [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
        lines.append("  ".join(cells))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def format_details(results: list[Result]) -> str:
    out = []
    for r in results:
        out.append(f"{r.name}: {r.notes}")
        for key, n in r.errors.items():
            out.append(f"    error  {n:>8,}  {key}")
        runs = r.extra.get("runs_events_per_s")
        if runs:
            out.append(f"    runs (events/s): {', '.join(f'{x:,}' for x in runs)}")
        for key, n in r.extra.get("log", {}).items():
            out.append(f"    log    {n:>8,}  {key}")
    return "\n".join(out)


def format_targets(results: list[Result]) -> str:
    """The issue's targets: (d) >= 1.5x (b); (c) >= 50% of split-and-dict."""
    by = {r.name.split(":")[0].split(" ")[0]: r for r in results if not r.skipped}
    split = next((r for r in results if r.name == SPLIT_DICT and not r.skipped), None)
    lines = []
    c, d, b = by.get("(c)"), by.get("(d)"), by.get("(b)")
    if d and b:
        ratio = d.events_per_s / b.events_per_s
        lines.append(
            f"target (d) >= 1.5 x (b): {ratio:.2f}x  {'met' if ratio >= 1.5 else 'MISSED'}"
        )
    if c and split:
        ratio = c.events_per_s / split.events_per_s
        lines.append(
            f"target (c) >= 0.50 x split-and-dict: {ratio:.2f}x  "
            f"{'met' if ratio >= 0.5 else 'MISSED'}"
        )
    return "\n".join(lines)


def _peak_rss() -> str:
    if importlib.util.find_spec("bench.ours") is None:
        return ""
    from bench.ours import peak_rss_1000_calls

    r = peak_rss_1000_calls()
    verdict = "met" if r["peak_mb"] <= 150 else "MISSED"
    return (
        f"peak RSS with {r['open_calls']:,} concurrent calls open: {r['peak_mb']:.1f} MB "
        f"(interpreter + traces before the calls: {r['base_mb']:.1f} MB; "
        f"target <= 150 MB: {verdict})"
    )


def _as_result(obj) -> Result:
    return obj if isinstance(obj, Result) else Result.from_dict(dict(obj))


def _bench_result(fn: Callable[[bytes, int], Result], data: bytes, events: int) -> Result:
    """One of the project's own benchmarks, run on the corpus."""
    return _as_result(fn(data, events))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=None, help="minimum events (BENCH_EVENTS)")
    ap.add_argument("--chunk", type=int, default=None, help="read size (BENCH_CHUNK)")
    ap.add_argument("--repeat", type=int, default=None, help="runs each (BENCH_REPEAT)")
    ap.add_argument("--no-cacofonisk", action="store_true", help="skip the (c) baselines")
    ap.add_argument("--json", metavar="PATH", help="also write all results as JSON")
    args = ap.parse_args(argv)
    # the bridge's own log lines (a call finished, a webhook sent) are not figures
    from bridge.observability.logs import configure_logging

    configure_logging("warning", json=False, stream=sys.stderr)

    events = args.events if args.events is not None else bench_events()
    chunk = args.chunk or baselines.chunk_size()
    repeat = args.repeat or bench_repeat()

    t0 = time.perf_counter()
    corpus = build_corpus(events)
    print(
        f"corpus: {corpus.describe()}, built in {time.perf_counter() - t0:.1f}s; "
        f"{chunk:,}-byte reads; {repeat} run(s) each",
        flush=True,
    )

    results: list[Result] = []

    warm = build_corpus(1)  # one repetition (~14k events) for untimed warm-up passes

    def run(label: str, fn: Callable[[], Result], warmup: Callable[[], object] | None) -> Result:
        print(f"  running {label} ...", file=sys.stderr, flush=True)
        if warmup is not None:
            warmup()
        r = median_run(fn, repeat)
        results.append(r)
        return r

    parse = run(
        "(a) panoramisk parse",
        lambda: baselines.panoramisk_parse(corpus, chunk),
        lambda: baselines.panoramisk_parse(warm, chunk),
    )
    run(
        "split-and-dict parser",
        lambda: baselines.split_and_dict(corpus, chunk),
        lambda: baselines.split_and_dict(warm, chunk),
    )

    extras = EXTRA_BENCHMARKS + load_extra_benchmarks()
    for fn in extras:
        label = getattr(fn, "__name__", repr(fn))
        # No warm-up pass for the project's own benchmarks (they may write to a database):
        # warm up inside the callable if wanted.
        run(label, partial(_bench_result, fn, corpus.data, corpus.events), None)

    if args.no_cacofonisk:
        caco = [Result.skip(n, "--no-cacofonisk") for n in ("cacofonisk tracking only", PIPELINE)]
    else:
        print("  running cacofonisk in .bench-venv ...", file=sys.stderr, flush=True)
        caco = baselines.cacofonisk_baselines(events, chunk, repeat)
    results.extend(caco)
    track = next((r for r in caco if "tracking only" in r.name), None)
    if track is not None:
        results.append(baselines.combined_pipeline(parse, track))

    # Baselines first, then the project's own rows.
    own = {id(r) for r in results[2 : 2 + len(extras)]}
    ordered = [r for r in results if id(r) not in own] + [r for r in results if id(r) in own]

    print()
    print(format_table(ordered))
    print()
    print(format_details(ordered))
    print()
    print(format_targets(ordered))
    rss = _peak_rss()
    if rss:
        print(rss)
    for module, report in (
        ("bench.delivery", "delivery_report"),
        ("bench.agi", "agi_report"),
        ("bench.api", "api_report"),
        ("bench.backfill", "backfill_report"),
    ):
        if importlib.util.find_spec(module) is not None:
            print(f"\n{module}:", flush=True)
            print(getattr(importlib.import_module(module), report)(), flush=True)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(
                {
                    "corpus": corpus.describe(),
                    "chunk": chunk,
                    "repeat": repeat,
                    "results": [r.to_dict() for r in ordered],
                },
                fh,
                indent=2,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
