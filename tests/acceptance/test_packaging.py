"""The wheel stands alone: built from this checkout, installed into a fresh venv (no
source tree on the path), it migrates a real PostgreSQL from the SQL shipped inside it."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import asyncpg
import pytest

REPO = Path(__file__).resolve().parents[2]


def test_every_package_is_in_the_wheel_list() -> None:
    listed = set(
        tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    found = {
        ".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "bridge").rglob("__init__.py")
    }
    assert found | {"bridge.sql"} == listed


@pytest.mark.integration
def test_installed_wheel_migrates_postgres(pg_dsn: str, tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(REPO)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = dist.glob("asterisk_crm_bridge-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # the dependencies come from the test venv (a path, so its editable bridge is not seen)
    (Path(site) / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    installed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--no-deps",
            "-q",
            str(wheel),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert installed.returncode == 0, installed.stderr
    where = subprocess.run(
        [str(python), "-c", "import bridge; print(bridge.__file__)"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert where.stdout.startswith(site), "the installed copy, not the checkout"
    done = subprocess.run(
        [str(venv / "bin" / "crm-bridge"), "migrate", "--database-url", pg_dsn],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "001_calls.sql" in done.stdout and "008_partitions.sql" in done.stdout
    assert "partitions made: calls_" in done.stdout, "this month's, before a call comes"
    tables = asyncio.run(table_names(pg_dsn))
    assert {"calls", "call_events", "call_legs", "webhook_outbox", "webhook_targets"} <= tables


async def table_names(dsn: str) -> set[str]:
    conn = await asyncpg.connect(dsn)
    try:
        return {r["tablename"] for r in await conn.fetch("SELECT tablename FROM pg_tables")}
    finally:
        await conn.close()
