"""The shared ground-truth traces and the checks their expected files imply."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from bridge.devtools.traces import traces_dir

TRACES = traces_dir()
LAB_CONFIG = TRACES / "lab.toml"

EVENT_TYPES = {"INCOMING", "OUTGOING", "ACCEPTED", "CANCELLED", "COMPLETED", "TRANSFERRED"}


def scenario_names() -> list[str]:
    return sorted(p.name.removesuffix(".expected.json") for p in TRACES.glob("*.expected.json"))


def all_trace_names() -> list[str]:
    return sorted(p.name.removesuffix(".ami.jsonl") for p in TRACES.glob("*.ami.jsonl"))


def expected(name: str) -> dict[str, Any]:
    return json.loads((TRACES / f"{name}.expected.json").read_text())


def by_call(payloads: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Group replay payloads per callid: its history and, per employee, the event types."""
    calls: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"history": [], "events": defaultdict(list)}
    )
    for p in payloads:
        call = calls[p["callid"]]
        if p["cmd"] == "history":
            call["history"].append(p)
        else:
            call["events"][p.get("ext", "")].append(p["type"])
    return dict(calls)


def grammar_violations(types: list[str]) -> list[str]:
    """`(INCOMING | OUTGOING) then (CANCELLED | ACCEPTED [TRANSFERRED] COMPLETED)`, repeated."""
    problems = []
    state = "idle"
    for t in types:
        if state == "idle" and t in ("INCOMING", "OUTGOING"):
            state = "ringing"
        elif state == "ringing" and t == "CANCELLED":
            state = "idle"
        elif state == "ringing" and t == "ACCEPTED":
            state = "talking"
        elif state == "talking" and t == "TRANSFERRED":
            state = "transferred"
        elif state in ("talking", "transferred") and t == "COMPLETED":
            state = "idle"
        else:
            problems.append(f"{t} while {state} in {types}")
            break
    if not problems and state != "idle":
        problems.append(f"sequence left open ({state}): {types}")
    return problems


def compare_with_expected(name: str, payloads: list[dict[str, Any]]) -> list[str]:
    """Everything that differs from `<name>.expected.json`, in plain words."""
    return expected_problems(expected(name)["calls"], payloads)


def expected_problems(want: list[dict[str, Any]], payloads: list[dict[str, Any]]) -> list[str]:
    """Everything in `payloads` that differs from the expected calls `want`."""
    got = by_call(payloads)
    histories = [c["history"] for c in got.values()]
    problems = [f"{len(h)} histories for one call" for h in histories if len(h) != 1]
    external = [c for c in got.values() if c["history"]]
    if len(external) != len(want):
        problems.append(f"{len(external)} calls reported, {len(want)} expected")
    for exp in want:
        phone = exp["history"]["phone"]
        matches = [c for c in external if c["history"][0].get("phone") == phone]
        if len(matches) != 1:
            problems.append(f"call from/to {phone}: {len(matches)} reported")
            continue
        call = matches[0]
        h = call["history"][0]
        eh = exp["history"]
        for key in ("type", "status", "ext"):
            if h.get(key) != eh.get(key):
                problems.append(
                    f"{phone}: history {key} is {h.get(key)!r}, expected {eh.get(key)!r}"
                )
        if "duration" in eh:
            lo, hi = eh["duration"]
            if not lo <= int(h["duration"]) <= hi:
                problems.append(f"{phone}: duration {h['duration']} not in {lo}..{hi}")
        events = {ext: types for ext, types in call["events"].items()}
        if events != exp["events"]:
            problems.append(f"{phone}: events {events}, expected {exp['events']}")
    return problems
