"""Where the recorded AMI traces are: env `AMI_TRACES`, else `../shared/ami-traces` beside
the repository (stdlib only: the benchmark's second venv imports it too)."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def traces_dir() -> Path:
    return Path(os.environ.get("AMI_TRACES") or REPO.parent / "shared" / "ami-traces")
