"""`crm-bridge replay` on the shapes of every Asterisk still in service: the recorded
Asterisk 18 / chan_sip set as a user runs it (a subprocess, like the Asterisk 22 set in
test_cli.py), and every variant of the tracker's corpus (tests/unit/test_tracker_shapes.py)
through the same command in-process: hundreds of variants, one interpreter start."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bridge.cli import main as crm_bridge_main
from bridge.replay import crm_payloads
from tests.support.traces import grammar_violations
from tests.unit.test_tracker_shapes import (
    LABS,
    VARIANTS,
    Variant,
    variant_run,
    write_config,
    write_trace,
)
from tests.unit.test_tracker_traces import LAB18, Lab

CLI = [sys.executable, "-m", "bridge"]


def crm_bridge(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("name", LAB18.scenarios())
def test_replay_of_the_asterisk18_set_gives_the_expected_payloads(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """In-process (one interpreter start for the set); the load trace below goes
    through a real subprocess, as a user runs it."""
    capsys.readouterr()
    assert crm_bridge_main(["replay", str(LAB18.trace(name)), "--config", str(LAB18.config)]) == 0
    done = capsys.readouterr()
    assert done.err == "", "no tracker fault"
    payloads = [json.loads(line) for line in done.out.splitlines()]
    assert LAB18.problems(name, payloads) == []
    for p in payloads:
        assert "crm_token" not in p
        assert all(v != "" for v in p.values()), "empty fields are left out"
        if p["cmd"] == "history":
            assert len(p["start"]) == 16 and p["start"].endswith("Z")


def test_replay_of_the_asterisk18_load_trace_keeps_its_invariants() -> None:
    done = crm_bridge("replay", str(LAB18.trace("load_mixed")), "--config", str(LAB18.config))
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    payloads = [json.loads(line) for line in done.stdout.splitlines()]
    histories = [p for p in payloads if p["cmd"] == "history"]
    assert len(histories) == 200 and len({h["callid"] for h in histories}) == 200
    assert sum(h["type"] == "in" for h in histories) == 130
    assert all(h.get("phone") for h in histories if h["type"] == "in")
    per: dict[tuple[str, str], list[str]] = {}
    for p in payloads:
        if p["cmd"] == "event":
            per.setdefault((p["callid"], p["ext"]), []).append(p["type"])
    assert all(grammar_violations(t) == [] for t in per.values())
    position = {h["callid"]: i for i, h in enumerate(payloads) if h["cmd"] == "history"}
    assert all(i < position[p["callid"]] for i, p in enumerate(payloads) if p["cmd"] == "event")


# Every variant of every trace is checked in tests/unit/test_tracker_shapes.py; through the
# command, each kind of variant on the busiest scenarios (a queue, a transfer, five calls at
# once), in both labs: the command adds formatting, not tracking.
THROUGH_THE_COMMAND = ("in_queue", "in_blind_transfer", "concurrent")


def command_cases() -> list[object]:
    return [
        pytest.param(lab, name, variant, id=f"{lab}-{name}-{variant.name}")
        for lab in LABS
        for name in THROUGH_THE_COMMAND
        for variant in VARIANTS
        if lab.name in variant.labs
    ]


@pytest.mark.parametrize(("lab", "name", "variant"), command_cases())
def test_replay_of_each_kind_of_variant(
    lab: Lab, name: str, variant: Variant, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The command prints, line for line, what the tracker gives for the variant, which
    gives its original's outcome (checked by the corpus' own tests, again here)."""
    evs, outputs, problems = variant_run(lab, name, variant)
    assert problems == []
    trace, config = tmp_path / "variant.ami.jsonl", tmp_path / "pbx.toml"
    write_trace(trace, evs)
    write_config(config, lab, variant)
    capsys.readouterr()
    assert crm_bridge_main(["replay", str(trace), "--config", str(config)]) == 0
    printed = capsys.readouterr()
    assert [json.loads(line) for line in printed.out.splitlines()] == list(crm_payloads(outputs))
    assert printed.err == ""
