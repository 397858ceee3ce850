"""Where the recorded AMI traces are: env `AMI_TRACES`, else `traces/asterisk22` of this
repository (stdlib only: the benchmark's second venv imports it too)."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TRACES = REPO / "traces"


def traces_dir(version: str = "asterisk22") -> Path:
    """The recorded traces of one lab: `asterisk22` (PJSIP) or `asterisk18` (chan_sip)."""
    if version == "asterisk22" and os.environ.get("AMI_TRACES"):
        return Path(os.environ["AMI_TRACES"])
    return TRACES / version
