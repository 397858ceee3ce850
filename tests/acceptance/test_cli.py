"""The `crm-bridge` command as a user runs it: subprocesses, per-scenario replays in-process."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import aiohttp
import asyncpg
import pytest

from bridge.cli import main as crm_bridge_main
from bridge.devtools.fake_ami import FakeAmiServer
from bridge.devtools.fake_crm import FakeCrm
from tests.support.agi_client import agi_call, asterisk_env, dialplan_agi
from tests.support.ports import free_port
from tests.support.processes import children, command_line, running
from tests.support.traces import (
    LAB_CONFIG,
    TRACES,
    all_trace_names,
    compare_with_expected,
    grammar_violations,
    scenario_names,
)

CLI = [sys.executable, "-m", "bridge"]


def crm_bridge(*args: str, **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120, **kw)


@pytest.mark.parametrize("name", scenario_names())
def test_replay_gives_the_expected_payloads(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    """In-process (one interpreter start for the set); the load trace below goes
    through a real subprocess, as a user runs it."""
    capsys.readouterr()
    trace = str(TRACES / f"{name}.ami.jsonl")
    assert crm_bridge_main(["replay", trace, "--config", str(LAB_CONFIG)]) == 0
    payloads = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert compare_with_expected(name, payloads) == []
    for p in payloads:
        assert "crm_token" not in p
        assert all(v != "" for v in p.values()), "empty fields are left out"
        if p["cmd"] == "history":
            assert len(p["start"]) == 16 and p["start"].endswith("Z")


def test_replay_of_the_load_trace_keeps_the_grammar() -> None:
    assert "load_mixed" in all_trace_names()
    done = crm_bridge("replay", str(TRACES / "load_mixed.ami.jsonl"), "--config", str(LAB_CONFIG))
    assert done.returncode == 0, done.stderr
    payloads = [json.loads(line) for line in done.stdout.splitlines()]
    histories = [p for p in payloads if p["cmd"] == "history"]
    assert len(histories) == 200 and len({h["callid"] for h in histories}) == 200
    per: dict[tuple[str, str], list[str]] = {}
    for p in payloads:
        if p["cmd"] == "event":
            per.setdefault((p["callid"], p["ext"]), []).append(p["type"])
    assert all(grammar_violations(t) == [] for t in per.values())
    # every call's events come before its history
    position = {h["callid"]: i for i, h in enumerate(payloads) if h["cmd"] == "history"}
    assert all(i < position[p["callid"]] for i, p in enumerate(payloads) if p["cmd"] == "event")


def test_replay_errors_are_plain(tmp_path) -> None:
    done = crm_bridge("replay", str(tmp_path / "nope.jsonl"))
    assert done.returncode == 2 and "no such trace file" in done.stderr
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"t": 0, "raw": "Event: Newchannel\\r\\n"}\nnot json\n')
    done = crm_bridge("replay", str(bad))
    assert done.returncode == 2 and "bad.jsonl:2" in done.stderr
    binary = tmp_path / "capture.pcap"
    binary.write_bytes(b'{"t": 0, "raw": "Event: Newchannel\\r\\n"}\n\xd4\xc3\xb2\xa1\x02\x00\n')
    done = crm_bridge("replay", str(binary))
    assert done.returncode == 2 and "capture.pcap:2: not a trace line" in done.stderr
    assert "Traceback" not in done.stderr


def test_check_config(tmp_path) -> None:
    assert crm_bridge("check-config", "--replay-only", str(LAB_CONFIG)).returncode == 0
    done = crm_bridge("check-config", str(LAB_CONFIG))
    assert done.returncode == 1 and "[asterisk] secret" in done.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text('[pbx]\ntrunks = ["trunk"]\n[crm]\nurl = "ftp://x"\n')
    done = crm_bridge("check-config", "--replay-only", str(bad))
    assert done.returncode == 1  # replay reads [pbx] alone: only its problems
    assert "[pbx] trunks" in done.stderr and "[crm]" not in done.stderr
    done = crm_bridge("check-config", str(bad))
    assert "[pbx] trunks" in done.stderr and "[crm] url" in done.stderr


def test_replay_reads_the_pbx_section_alone(
    tmp_path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """SPEC 7: only [pbx] matters to replay; what is wrong elsewhere (the file or the
    environment) is for the daemon to refuse, not for a support engineer's replay."""
    config = tmp_path / "bridge.toml"
    config.write_text(
        LAB_CONFIG.read_text()
        + '[crm]\nsigning_secret = "whsec_abc"\n[database]\nurl = "mysql://x"\n[nonsense]\na = 1\n'
    )
    monkeypatch.setenv("BRIDGE_CRM__URL", "notaurl")
    monkeypatch.setenv("BRIDGE_AGI__OWN_PROCESS", "perhaps")
    capsys.readouterr()
    trace = str(TRACES / "in_answered.ami.jsonl")
    assert crm_bridge_main(["replay", trace, "--config", str(config)]) == 0
    payloads = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert compare_with_expected("in_answered", payloads) == []

    monkeypatch.setenv("BRIDGE_PBX__REGION", "Atlantis")  # its own section still counts
    with pytest.raises(SystemExit) as refused:
        crm_bridge_main(["replay", trace, "--config", str(config)])
    assert refused.value.code == 2
    err = capsys.readouterr().err
    assert "[pbx] region" in err and "[crm]" not in err and "[agi]" not in err


SUBCOMMANDS = ("run", "deliver", "migrate", "check-config", "replay", "outbox", "targets", "demo")


def test_help_lists_every_subcommand_with_a_line_of_help() -> None:
    done = crm_bridge("--help")
    assert done.returncode == 0, done.stderr
    listing = done.stdout.split("positional arguments:", 1)[1]
    for name in SUBCOMMANDS:
        lines = [line.split() for line in listing.splitlines() if line.split()[:1] == [name]]
        assert lines, f"{name} missing from --help"
        # the help is on the name's line, or on the next one when the name is long
        assert len(lines[0]) > 1 or name == "check-config", f"{name} has no help"


@pytest.mark.parametrize(
    ("args", "default"),
    [
        (("run",), "/etc/crm-bridge/bridge.toml"),
        (("deliver",), "/etc/crm-bridge/bridge.toml"),
        (("outbox",), "/etc/crm-bridge/bridge.toml"),
        (("outbox", "list"), "/etc/crm-bridge/bridge.toml"),
        (("outbox", "retry"), "/etc/crm-bridge/bridge.toml"),
        (("outbox", "enable"), "/etc/crm-bridge/bridge.toml"),
        (("targets",), "/etc/crm-bridge/bridge.toml"),
        (("targets", "list"), "/etc/crm-bridge/bridge.toml"),
        (("targets", "add"), "/etc/crm-bridge/bridge.toml"),
        (("targets", "remove"), "/etc/crm-bridge/bridge.toml"),
        (("check-config",), "/etc/crm-bridge/bridge.toml"),
        (("migrate",), "none"),
        (("replay",), "none"),
    ],
)
def test_config_option_has_help_and_shows_its_default(args: tuple[str, ...], default: str) -> None:
    done = crm_bridge(*args, "--help", env={**os.environ, "COLUMNS": "300"})
    assert done.returncode == 0, done.stderr
    (line,) = [x for x in done.stdout.splitlines() if x.strip().startswith("--config")]
    assert f"(default: {default}" in line


def test_version() -> None:
    from importlib.metadata import version

    done = crm_bridge("--version")
    assert done.returncode == 0
    assert done.stdout == f"crm-bridge {version('asterisk-crm-bridge')}\n"


BAD_CONFIG = """\
[pbx]
trunks = ["PJSIP/trunk-*"]
[asterisk]
port = "5038"
secret = 987654321
[database]
url = "postgresql://bridge:Pa55w0rdValue@127.0.0.1:notaport/bridge"
[crm]
url = "http://127.0.0.1:9/hook"
token = "CrmT0kenValue"
signing_secret = "whsec_SigningSecretS3"
[extra]
x = 1
"""


@pytest.mark.parametrize("command", ["run", "deliver"])
def test_daemon_refuses_to_start_on_what_check_config_reports(tmp_path, command: str) -> None:
    config = tmp_path / "bridge.toml"
    config.write_text(BAD_CONFIG)

    checked = crm_bridge("check-config", str(config))
    done = crm_bridge(command, "--config", str(config))

    assert checked.returncode == 1 and done.returncode == 2
    assert done.stdout == "" and "Traceback" not in done.stderr
    reported = [x for x in checked.stderr.splitlines() if x.startswith("  - ")]
    refused = [x for x in done.stderr.splitlines() if x.startswith("  - ")]
    assert reported == refused and len(refused) == 5
    assert f"crm-bridge {command}: {config}: 5 problem(s), not starting:" in done.stderr
    for words in (
        "[extra]: unknown section",
        '[asterisk] port: "5038" is text, not a whole number',
        "[asterisk] secret: the value (a whole number) is not text",
        "postgresql://bridge:***@127.0.0.1:notaport/bridge",
        "[crm] signing_secret: starts with",
    ):
        assert words in done.stderr
    for secret in ("987654321", "Pa55w0rdValue", "CrmT0kenValue", "SigningSecretS3"):
        assert secret not in done.stderr and secret not in checked.stderr


def test_environment_overrides_are_text_and_work(tmp_path) -> None:
    config = tmp_path / "bridge.toml"
    config.write_text(LAB_CONFIG.read_text())
    env = {
        **os.environ,
        "BRIDGE_ASTERISK__PORT": "5038",
        "BRIDGE_ASTERISK__SECRET": "from-the-env-file",
        "BRIDGE_DATABASE__URL": "postgresql://bridge:pw@127.0.0.1/bridge",
        "BRIDGE_PBX__SEND_INTERNAL": "no",
    }
    done = crm_bridge("check-config", "--config", str(config), env=env)
    assert done.returncode == 0, done.stderr
    done = crm_bridge("check-config", str(config), env={**env, "BRIDGE_ASTERISK__PORT": "x"})
    assert done.returncode == 1
    assert '[asterisk] port: "x" is not a whole number (from BRIDGE_ASTERISK__PORT)' in done.stderr


def test_operator_commands_check_the_config_before_the_database(tmp_path) -> None:
    config = tmp_path / "bridge.toml"
    config.write_text(LAB_CONFIG.read_text() + '[crm]\ntoken = ["CrmT0kenValue"]\n')
    for args in (
        ("targets", "--config", str(config), "list"),
        ("targets", "list", "--config", str(config)),  # --config after the action works too
        ("outbox", "retry", "--all-dead", "--config", str(config)),
        ("migrate", "--config", str(config)),
    ):  # (replay reads [pbx] alone: test_replay_reads_the_pbx_section_alone)
        done = crm_bridge(*args)
        assert done.returncode == 2, (args, done.stderr)
        assert "[crm] token: the value (a list) is not text" in done.stderr
        assert "CrmT0kenValue" not in done.stderr and "Traceback" not in done.stderr


def test_targets_add_checks_url_and_signing_secret_without_echoing_them() -> None:
    done = crm_bridge(
        "targets", "add", "crm2", "https://crm.example/hook", "--signing-secret", "whsec_S3cr3tX"
    )
    assert done.returncode == 2
    assert "--signing-secret: the signing secret starts with" in done.stderr
    assert "S3cr3tX" not in done.stderr
    done = crm_bridge("targets", "add", "crm2", "ftp://user:S3cr3tX@crm.example/hook")
    assert done.returncode == 2 and "not an http(s) URL" in done.stderr
    assert "S3cr3tX" not in done.stderr


def daemon_config(
    path: Path,
    ami_port: int,
    dsn: str,
    crm_url: str,
    token: str,
    agi_port: int,
    api_port: int,
    asterisk_extra: str = "",
) -> Path:
    """The lab's [pbx] plus everything `crm-bridge run` needs, all on localhost."""
    path.write_text(
        LAB_CONFIG.read_text()
        + f"""
[asterisk]
host = "127.0.0.1"
port = {ami_port}
username = "bridge"
secret = "bridge"
{asterisk_extra}
[database]
url = "{dsn}"
[crm]
url = "{crm_url}"
token = "{token}"
[agi]
listen = "127.0.0.1:{agi_port}"
[api]
listen = "127.0.0.1:{api_port}"
"""
    )
    return path


def endpoints(*names: str) -> Callable[[dict[str, str]], list[str]]:
    """Asterisk's answer to PJSIPShowEndpoints (EndpointList events)."""

    def respond(headers: dict[str, str]) -> list[str]:
        aid = f"ActionID: {headers.get('ActionID', '')}\r\n"
        items = [
            f"Event: EndpointList\r\n{aid}ObjectType: endpoint\r\nObjectName: {n}\r\n"
            f"Transport: \r\nAor: {n}\r\nDeviceState: Not in use\r\n"
            for n in names
        ]
        return [
            f"Response: Success\r\n{aid}EventList: start\r\n"
            f"Message: A listing of Endpoints follows\r\n",
            *items,
            f"Event: EndpointListComplete\r\n{aid}EventList: Complete\r\n"
            f"ListItems: {len(names)}\r\n",
        ]

    return respond


@pytest.mark.integration
async def test_run_follows_ami_into_postgres_and_stops_on_sigterm(pg_dsn: str, tmp_path) -> None:
    server = FakeAmiServer(TRACES / "in_ringgroup.ami.jsonl")
    server.respond_with("PJSIPShowEndpoints", endpoints("1001", "1007", "trunk"))
    port = await server.start()
    crm = FakeCrm(
        token="secret-token", contact_answer={"contact_name": "Anna Ivanova", "responsible": "1007"}
    )
    crm_url = await crm.start()
    agi_port, api_port = free_port(), free_port()
    config = daemon_config(
        tmp_path / "bridge.toml", port, pg_dsn, crm_url, "secret-token", agi_port, api_port
    )
    proc = await asyncio.create_subprocess_exec(
        *CLI,
        "run",
        "--config",
        str(config),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "NOTIFY_SOCKET": ""},
    )
    assert proc.stdout is not None
    try:
        async with asyncio.timeout(30):
            while server.logins == 0:
                assert proc.returncode is None, (await proc.stdout.read()).decode()
                await asyncio.sleep(0.05)
            await server.wait_done()
            conn = await asyncpg.connect(pg_dsn)
            try:
                while True:
                    try:
                        status = await conn.fetchval("SELECT status FROM calls")
                    except asyncpg.UndefinedTableError:
                        status = None
                    if status:
                        break
                    await asyncio.sleep(0.05)
            finally:
                await conn.close()
        assert status == "Success"
        async with aiohttp.ClientSession(f"http://127.0.0.1:{api_port}") as http:
            async with http.get("/healthz") as resp:
                assert resp.status == 200
            async with http.get("/readyz") as resp:
                assert resp.status == 200
                assert (await resp.json())["checks"] == {
                    "ami": True,
                    "database": True,
                    "webhooks": True,
                }
            async with http.get("/metrics") as resp:
                metrics = await resp.text()
            assert "bridge_calls_up 0.0" in metrics and "bridge_ami_connected 1.0" in metrics
            assert "bridge_ami_events_total" in metrics
        # each connection says what it is for (/readyz asked both pools just now)
        conn = await asyncpg.connect(pg_dsn)
        try:
            rows = await conn.fetch("SELECT application_name FROM pg_stat_activity")
            names = {r[0] for r in rows}
        finally:
            await conn.close()
        uses = {"crm-bridge", "crm-bridge api", "crm-bridge lock", "crm-bridge listen"}
        assert uses <= names, names
        (history,) = await crm.wait_count("history", 1, timeout=10)
        assert (history.fields["status"], history.fields["ext"]) == ("Success", "1002")
        events = [(r.fields["ext"], r.fields["type"]) for r in crm.requests("event")]
        assert ("1002", "ACCEPTED") in events and ("1001", "CANCELLED") in events
        # the dialplan's look-ups, over FastAGI, against the same daemon
        callid = history.fields["callid"]
        line = dialplan_agi("crm-bridge-contact")
        call = await agi_call(
            agi_port,
            asterisk_env(line, variables={"CHANNEL(linkedid)": callid}, callerid="+79101234567"),
        )
        assert call.set_vars.get("CRM_CONTACT_NAME") == "Anna Ivanova"
        assert call.set_vars.get("CRM_RESPONSIBLE") == "1007", "learnt from PJSIPShowEndpoints"
        crm.contact_answer = {"contact_name": "Anna Ivanova", "responsible": "trunk"}
        call = await agi_call(
            agi_port,
            asterisk_env(
                line, variables={"CHANNEL(linkedid)": callid + "x"}, callerid="+79101234568"
            ),
        )
        assert "CRM_RESPONSIBLE" not in call.set_vars, "a trunk is nobody's phone"
        rating_line = dialplan_agi("crm-bridge-rating")
        await agi_call(
            agi_port,
            asterisk_env(
                rating_line,
                variables={
                    "CRM_RATING": "5",
                    "DIALEDPEERNAME": "PJSIP/1002-00000009",
                    "CHANNEL(linkedid)": callid,
                },
            ),
        )
        (rating,) = await crm.wait_count("rating", 1, timeout=10)
        assert (rating.fields["callid"], rating.fields["rating"], rating.fields["ext"]) == (
            callid,
            "5",
            "1002",
        )
        # the look-ups came from the FastAGI worker, which kept the priority the daemon
        # lowered for itself ([agi] bridge_nice, 5 by default)
        (worker,) = children(proc.pid)
        assert "bridge.agi.worker" in command_line(worker)
        ours = os.getpriority(os.PRIO_PROCESS, os.getpid())
        assert os.getpriority(os.PRIO_PROCESS, proc.pid) == min(19, ours + 5)
        # every thread of it, the log writer's started before the lowering too
        threads = [int(tid) for tid in os.listdir(f"/proc/{proc.pid}/task")]
        assert len(threads) > 1
        assert {os.getpriority(os.PRIO_PROCESS, tid) for tid in threads} == {min(19, ours + 5)}
        assert os.getpriority(os.PRIO_PROCESS, worker) == ours
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(15):
            out, _ = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
        await server.stop()
        await crm.stop()
    assert proc.returncode == 0
    assert not running(worker), "the worker ended with the daemon"
    lines = [json.loads(line) for line in out.decode().splitlines() if line.startswith("{")]
    finished = [x for x in lines if x.get("event") == "call_finished"]
    assert finished and finished[0]["callid"] and finished[0]["status"] == "Success"
    assert all("callid" in x for x in lines if x.get("event") == "call_event")


@pytest.mark.integration
def test_operator_commands(pg_dsn: str, tmp_path) -> None:
    config = tmp_path / "ops.toml"
    config.write_text(f'[pbx]\nid = "lab"\n[database]\nurl = "{pg_dsn}"\n')
    c = ["--config", str(config)]
    done = crm_bridge("migrate", *c)
    assert done.returncode == 0 and "001_calls.sql" in done.stdout, done.stderr
    assert "up to date" in crm_bridge("migrate", *c).stdout
    done = crm_bridge(
        "targets",
        *c,
        "add",
        "billing",
        "https://billing.example/hook",
        "--direction",
        "out",
        "--commands",
        "history",
        "--profile",
        "json",
    )
    assert done.returncode == 0, done.stderr
    (row,) = [json.loads(line) for line in crm_bridge("targets", *c, "list").stdout.splitlines()]
    assert (row["name"], row["direction"], row["commands"], row["profile"]) == (
        "billing",
        "out",
        ["history"],
        "json",
    )
    done = crm_bridge("targets", *c, "add", "bad", "ftp://x")
    assert done.returncode == 2 and "not an http(s) URL" in done.stderr
    done = crm_bridge("outbox", *c, "list", "--dead")
    assert done.returncode == 0 and done.stdout == "" and '"counts": {}' in done.stderr
    done = crm_bridge("outbox", *c, "retry")
    assert done.returncode == 2 and "--all-dead" in done.stderr
    assert crm_bridge("outbox", *c, "retry", "--all-dead").stdout.strip() == "re-driven: 0"
    assert crm_bridge("targets", *c, "remove", "billing").returncode == 0
    assert crm_bridge("targets", *c, "remove", "billing").returncode == 1


@pytest.mark.integration
async def test_two_bridges_on_one_pbx_run_active_standby(pg_dsn: str, tmp_path) -> None:
    """One follows AMI; when it is killed (-9) mid-call the other takes over the call."""
    server = FakeAmiServer(TRACES / "in_answered.ami.jsonl", drop_while_disconnected=False)
    server.pause_after(45)  # the call is answered, then the leader dies
    port = await server.start()
    crm = FakeCrm(token="t")
    crm_url = await crm.start()
    procs, api_ports = [], []
    try:
        for n in range(2):
            api_ports.append(free_port())
            config = daemon_config(
                tmp_path / f"bridge{n}.toml",
                port,
                pg_dsn,
                crm_url,
                "t",
                free_port(),
                api_ports[n],
                "reconnect_max_delay = 0.5",
            )
            procs.append(
                await asyncio.create_subprocess_exec(
                    *CLI,
                    "run",
                    "--config",
                    str(config),
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.DEVNULL,
                    env={**os.environ, "NOTIFY_SOCKET": ""},
                )
            )
            if n == 0:
                async with asyncio.timeout(20):
                    await server.wait_replayed(45)
        roles: dict[int, str] = {}
        async with aiohttp.ClientSession() as http:
            async with asyncio.timeout(20):
                while len(roles) < 2:
                    for n, p in enumerate(api_ports):
                        try:
                            async with http.get(f"http://127.0.0.1:{p}/readyz") as resp:
                                roles[n] = (await resp.json())["role"]
                        except aiohttp.ClientError:
                            await asyncio.sleep(0.1)
        assert roles == {0: "leader", 1: "standby"} and server.logins == 1
        await crm.wait_for(
            lambda: [r.fields["type"] for r in crm.received] == ["INCOMING", "ACCEPTED"], timeout=10
        )
        procs[0].kill()
        await procs[0].wait()
        async with asyncio.timeout(20):
            await server.wait_logins(2)  # the standby took over
        server.resume()
        await crm.wait_count("history", 1, timeout=20)
        await asyncio.sleep(0.5)
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
                await proc.wait()
        await server.stop()
        await crm.stop()
    assert [r.fields["type"] for r in crm.requests("event")] == [
        "INCOMING",
        "ACCEPTED",
        "COMPLETED",
    ], "no event repeated by the new leader"
    (history,) = crm.requests("history")
    assert (history.fields["status"], history.fields["ext"]) == ("Success", "1001")
