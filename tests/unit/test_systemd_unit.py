"""The shipped unit says what SPEC 7 and the README promise, and lets the daemon write
where it must under its own hardening."""

from __future__ import annotations

from pathlib import Path

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "crm-bridge.service"


def directives() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "[")) and "=" in line:
            key, value = line.split("=", 1)
            found.setdefault(key, []).append(value)
    return found


def test_notify_watchdog_and_restart_on_failure() -> None:
    d = directives()
    assert d["Type"] == ["notify"] and d["Restart"] == ["on-failure"]
    assert int(d["WatchdogSec"][0]) > 0
    assert d["ExecStart"][0].endswith("crm-bridge run --config /etc/crm-bridge/bridge.toml")
    assert d["RestartPreventExitStatus"] == ["2"]  # a bad config is not fixed by restarting


def test_provisioning_can_write_the_asterisk_config_it_renders() -> None:
    d = directives()
    assert d["ProtectSystem"] == ["strict"]  # everything read-only unless named
    writable = [path.lstrip("-") for value in d["ReadWritePaths"] for path in value.split()]
    readme = (UNIT.parents[1] / "README.md").read_text()
    assert 'config_dir = "/etc/asterisk"' in readme
    assert "/etc/asterisk" in writable
