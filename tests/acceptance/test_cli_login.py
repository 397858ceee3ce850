"""`crm-bridge login add|list|remove` as an operator runs it (a subprocess), and the login
it makes working against the billing API."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from bridge.store import logins

CLI = [sys.executable, "-m", "bridge"]
PASSWORD = "tr0ub4dor&3-long"

pytestmark = pytest.mark.integration


def crm_bridge(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], input=stdin, capture_output=True, text=True, timeout=120)


@pytest.fixture
def config(pg_dsn: str, tmp_path: Path) -> list[str]:
    path = tmp_path / "ops.toml"
    path.write_text(f'[pbx]\nid = "lab"\n[database]\nurl = "{pg_dsn}"\n')
    assert crm_bridge("migrate", "--config", str(path)).returncode == 0
    return ["--config", str(path)]


async def test_login_add_reads_the_password_from_stdin_and_never_echoes_it(
    config: list[str], pg_dsn: str
) -> None:
    done = crm_bridge(
        "login", *config, "add", "billing@example.com", "--password-stdin",
        "--dialect", "billing", stdin=PASSWORD + "\n",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert PASSWORD not in done.stdout + done.stderr
    assert "billing@example.com" in done.stdout
    conn = await asyncpg.connect(pg_dsn)
    try:
        stored = await conn.fetchrow("SELECT * FROM logins")
        assert stored["password_hash"].startswith("$argon2id$")
        assert PASSWORD not in repr(stored)
        assert await logins.authenticate(conn, "lab", "billing@example.com", PASSWORD, "billing")
        assert not await logins.authenticate(conn, "lab", "billing@example.com", "x", "billing")
        assert not await logins.authenticate(
            conn, "lab", "billing@example.com", PASSWORD, "issabel"
        ), "limited to the billing API"
    finally:
        await conn.close()
    listed = [json.loads(line) for line in crm_bridge("login", *config, "list").stdout.split("\n")
              if line]  # fmt: skip
    assert [(r["name"], r["dialects"]) for r in listed] == [("billing@example.com", ["billing"])]
    assert PASSWORD not in json.dumps(listed)
    again = crm_bridge(
        "login", *config, "add", "billing@example.com", "--password-stdin", stdin=PASSWORD
    )
    assert again.returncode == 2 and "exists" in again.stderr
    assert crm_bridge("login", *config, "remove", "billing@example.com").returncode == 0
    assert crm_bridge("login", *config, "remove", "billing@example.com").returncode == 1
    assert crm_bridge("login", *config, "list").stdout == ""


@pytest.mark.parametrize(
    ("args", "stdin", "says"),
    [
        (("add", "a@example.com", "--password-stdin"), "short\n", "at least 8 characters"),
        (("add", "a@example.com", "--password-stdin"), "", "at least 8 characters"),
        (("add", " spaced ", "--password-stdin"), PASSWORD, "without spaces around it"),
        (("add", "a@example.com"), PASSWORD, "--password-stdin"),  # not a terminal: no prompt
        (("add", "a@example.com", "--password-stdin", "--dialect", "vpbx"), PASSWORD, "invalid"),
    ],
)
def test_bad_logins_are_refused_plainly(config: list[str], args, stdin, says) -> None:
    done = crm_bridge("login", *config, *args, stdin=stdin)
    assert done.returncode == 2
    assert says in done.stderr
    assert "Traceback" not in done.stderr
    assert PASSWORD not in done.stdout + done.stderr


def test_a_login_that_is_no_email_is_noted(config: list[str]) -> None:
    done = crm_bridge("login", *config, "add", "admin", "--password-stdin", stdin=PASSWORD)
    assert done.returncode == 0 and "logs in by e-mail" in done.stderr
    done = crm_bridge(
        "login", *config, "add", "operator", "--password-stdin", "--dialect", "issabel",
        stdin=PASSWORD,
    )  # fmt: skip
    assert done.returncode == 0 and "e-mail" not in done.stderr


def test_help_names_the_login_command() -> None:
    done = crm_bridge("login", "--help")
    assert done.returncode == 0 and "add" in done.stdout and "remove" in done.stdout
    done = crm_bridge("login", "add", "--help")
    assert "--password-stdin" in done.stdout
