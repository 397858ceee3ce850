"""Provisioning against a real PostgreSQL and the fake Asterisk over real AMI (TCP): the
files written, reloaded and confirmed, rolled back when Asterisk refuses or does not show
the change, stored while Asterisk is away, one apply at a time across processes; the AstDB
runtime state; the view reloaded at once after a write."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from structlog.testing import capture_logs

from bridge.agi.directory import Directory
from bridge.ami.ingest import AmiIngest
from bridge.config import Settings
from bridge.devtools.fake_ami import FakeAmiServer
from bridge.directory_sync import DirectorySync, DirectoryView
from bridge.provision import ApplyError, NotRendered, Provisioning
from bridge.provision.asterisk import Asterisk
from bridge.provision.render import DIALPLAN_FILE, PJSIP_FILE, SIP_FILE, Rendered
from bridge.provision.runtime import Blocked
from bridge.provision.testing import FakeAsteriskConfig
from bridge.store import directory as store
from bridge.store.directory import Group, Number, User
from bridge.store.migrations import migrate

pytestmark = pytest.mark.integration

IVANOV = User(
    "ivanov",
    "Ivan Petrov",
    "1001",
    source="api",
    provisioned=True,
    secret="s3cret-pass",
    voicemail="default",
)
PETROVA = User(
    "petrova",
    "Olga Petrova",
    "1002",
    source="api",
    provisioned=True,
    secret="Another.Pass1",
    record_in_external="always",
)
SUPPORT = Group(
    0,
    "ringgroup",
    "Support",
    "600",
    "hunt",
    15,
    ("ivanov", "petrova"),
    "api",
    provisioned=True,
    noanswer="voicemail:ivanov",
)
MAIN = Number("74957654321", "Main line", "user", "ivanov", source="api", provisioned=True)


@dataclass
class Lab:
    server: FakeAmiServer
    asterisk: FakeAsteriskConfig
    ingest: AmiIngest
    pool: asyncpg.Pool
    folder: Path
    settings: Settings
    ami_up: bool = True

    def provisioning(self, pool: asyncpg.Pool | None = None, **kw: Any) -> Provisioning:
        return Provisioning(self.settings, pool or self.pool, self.link, **kw)

    def link(self) -> AmiIngest | None:
        return self.ingest if self.ami_up and self.ingest.connected else None

    def actions(self, *names: str) -> list[dict[str, str]]:
        return [a for a in self.server.actions if a.get("Action") in names]

    def read(self, name: str) -> str:
        return (self.folder / name).read_text(encoding="utf-8")


def settings_for(dsn: str, port: int, folder: Path, **provision: Any) -> Settings:
    return Settings.model_validate(
        {
            "pbx": {"id": "lab", "region": "RU"},
            "asterisk": {
                "host": "127.0.0.1",
                "port": port,
                "secret": "bridge",
                "username": "bridge",
            },
            "database": {"url": dsn},
            "provision": {"config_dir": str(folder), "confirm_timeout": 1.0, **provision},
        }
    )


@pytest.fixture
async def lab(pg_dsn: str, tmp_path: Path) -> AsyncIterator[Lab]:
    server = FakeAmiServer()
    asterisk = FakeAsteriskConfig(tmp_path).install(server)
    port = await server.start()
    ingest = AmiIngest("127.0.0.1", port, "bridge", "bridge", ping_interval=60)
    await ingest.start()
    async with asyncio.timeout(5):
        await ingest.logged_in.wait()
    pool = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=4)
    async with pool.acquire() as conn:
        await migrate(conn)
    for u in (IVANOV, PETROVA):
        await store.upsert_user(pool, "lab", u)
    support = await store.upsert_group(pool, "lab", SUPPORT)
    await store.upsert_number(pool, "lab", dataclasses.replace(MAIN))
    assert support > 0
    yield Lab(server, asterisk, ingest, pool, tmp_path, settings_for(pg_dsn, port, tmp_path))
    await ingest.stop()
    await server.stop()
    await pool.close()


async def applied_row(pool: asyncpg.Pool) -> asyncpg.Record:
    return await pool.fetchrow("SELECT * FROM provision_applied WHERE pbx_id = 'lab'")


# ------------------------------------------------------------------ apply


async def test_an_apply_writes_reloads_and_sees_the_change(lab: Lab) -> None:
    result = await lab.provisioning().apply("test")

    assert (result.status, result.files) == (
        "applied",
        (DIALPLAN_FILE, PJSIP_FILE, SIP_FILE),
    )
    assert "password = s3cret-pass" in lab.read(PJSIP_FILE)
    assert "exten => 600,1,Gosub(crm-bridge-dial-group,600,1(hunt,15,PJSIP,1001&1002))" in (
        lab.read(DIALPLAN_FILE)
    )
    # the reloads, then the confirmation: the stamp, the helpers, every phone
    assert [a["Module"] for a in lab.actions("Reload")] == [
        "res_pjsip.so",
        "chan_sip.so",  # the other driver's (empty) file is new too: not loaded, tolerated
        "pbx_config.so",
    ]
    shown = [a["Context"] for a in lab.actions("ShowDialPlan")]
    assert shown[0] == "crm-bridge-stamp" and "crm-bridge-dial-user" in shown
    assert sorted(a["Endpoint"] for a in lab.actions("PJSIPShowEndpoint")) == ["1001", "1002"]
    assert lab.asterisk.phones["res_pjsip.so"]["1001"] == (
        '"Ivan Petrov" <1001>',
        "crm-bridge-phones",
    )
    row = await applied_row(lab.pool)
    assert row["digest"] and row["pending_since"] is None and row["last_reason"] == "test"

    lab.server.actions.clear()
    again = await lab.provisioning().apply("again")
    assert again.status == "unchanged" and again.files == ()
    assert lab.actions("Reload", "ShowDialPlan", "PJSIPShowEndpoint") == []


async def test_a_change_rewrites_only_what_changed_and_keeps_the_previous_version(lab: Lab) -> None:
    prov = lab.provisioning()
    await prov.apply("first")
    before = lab.read(PJSIP_FILE)
    await store.upsert_user(lab.pool, "lab", dataclasses.replace(PETROVA, secret="New.Pass.22"))
    lab.server.actions.clear()

    result = await prov.apply("new secret")

    assert result.files == (PJSIP_FILE,)
    assert [a["Module"] for a in lab.actions("Reload")] == ["res_pjsip.so"]
    assert "password = New.Pass.22" in lab.read(PJSIP_FILE)
    assert lab.read(PJSIP_FILE + ".prev") == before


async def test_a_refused_reload_rolls_back_and_reloads_the_previous_files(lab: Lab) -> None:
    prov = lab.provisioning()
    await prov.apply("first")
    good = {name: lab.read(name) for name in (PJSIP_FILE, DIALPLAN_FILE)}
    await store.upsert_user(lab.pool, "lab", dataclasses.replace(IVANOV, name="Ivan Ivanov"))
    lab.asterisk.refuse["pbx_config.so"] = "A reload is in progress"
    lab.server.actions.clear()

    with pytest.raises(ApplyError) as failed:
        await prov.apply("rename")

    assert failed.value.rolled_back
    assert "reload of pbx_config.so refused: A reload is in progress" in failed.value.message
    assert {name: lab.read(name) for name in good} == good
    # the new files were reloaded, then the previous ones again
    assert [a["Module"] for a in lab.actions("Reload")] == [
        "res_pjsip.so",
        "pbx_config.so",
        "res_pjsip.so",
        "pbx_config.so",
    ]
    row = await applied_row(lab.pool)
    assert row["pending_since"] is not None and "in progress" in row["last_error"]
    assert await prov.provisioner.pending()

    del lab.asterisk.refuse["pbx_config.so"]
    assert (await prov.apply("retry")).status == "applied"
    assert '"Ivan Ivanov" <1001>' in lab.read(PJSIP_FILE)
    assert not await prov.provisioner.pending()


async def test_a_config_folder_it_cannot_read_is_said_so_not_taken_for_the_database(
    lab: Lab,
) -> None:
    (lab.folder / PJSIP_FILE).mkdir()  # a file Asterisk's admin made a directory of
    prov = lab.provisioning()

    with pytest.raises(ApplyError, match=f"cannot read {lab.folder}: Is a directory"):
        await prov.apply("first")
    row = await applied_row(lab.pool)
    assert row["pending_since"] is not None and "Is a directory" in row["last_error"]
    assert lab.actions("Reload") == []

    with capture_logs() as logs:  # the login catch-up says what it is, not "database ..."
        await prov.on_login()
    said = [(e["event"], e.get("error", "")) for e in logs if e["log_level"] != "info"]
    assert said == [("provision_not_applied", f"cannot read {lab.folder}: Is a directory")]


async def test_a_change_asterisk_does_not_show_is_rolled_back(lab: Lab) -> None:
    prov = lab.provisioning()
    await prov.apply("first")
    good = lab.read(PJSIP_FILE)
    await store.upsert_user(lab.pool, "lab", dataclasses.replace(IVANOV, name="Ivan Ivanov"))
    lab.asterisk.frozen.add("res_pjsip.so")  # answers "Module Reloaded", reads nothing

    with pytest.raises(ApplyError) as failed:
        await prov.apply("rename")

    assert "did not show the change within 1 s" in failed.value.message
    assert "PJSIP/1001 has caller ID '\"Ivan Petrov\" <1001>'" in failed.value.message
    assert lab.read(PJSIP_FILE) == good


async def test_a_dialplan_that_is_not_included_is_not_applied(lab: Lab) -> None:
    lab.asterisk.frozen.add("pbx_config.so")
    with pytest.raises(ApplyError, match="context crm-bridge-stamp is missing"):
        await lab.provisioning().apply("first")
    lab.asterisk.frozen.clear()
    lab.asterisk.helpers = False
    with pytest.raises(ApplyError, match="no context crm-bridge-dial-user"):
        await lab.provisioning().apply("first")


async def test_without_ami_a_write_is_stored_and_applied_at_the_next_login(lab: Lab) -> None:
    lab.ami_up = False
    prov = lab.provisioning()

    result = await prov.apply("while away")

    assert result.status == "stored" and not result.applied
    assert "stored, not applied" in result.message
    assert not (lab.folder / PJSIP_FILE).exists(), "nothing is written while Asterisk is away"
    assert await prov.provisioner.pending()

    lab.ami_up = True
    await prov.on_login()
    assert not await prov.provisioner.pending()
    assert "[1001]" in lab.read(PJSIP_FILE)


async def test_what_cannot_be_rendered_is_never_written(lab: Lab) -> None:
    await lab.pool.execute(
        "UPDATE directory_users SET name = 'Evil\n[x]' WHERE pbx_id = 'lab' AND login = 'ivanov'"
    )
    with pytest.raises(NotRendered, match="line break"):
        await lab.provisioning().apply("evil")
    assert not (lab.folder / PJSIP_FILE).exists()
    assert lab.actions("Reload") == []


async def test_chan_sip_phones_are_confirmed_with_sipshowpeer(lab: Lab) -> None:
    lab.settings = lab.settings.model_copy(
        update={"asterisk": lab.settings.asterisk.model_copy(update={"channel_driver": "sip"})}
    )
    lab.asterisk.modules = {"chan_sip.so", "pbx_config.so"}

    result = await lab.provisioning().apply("sip")

    assert result.status == "applied"
    assert sorted(a["Peer"] for a in lab.actions("SIPshowpeer")) == ["1001", "1002"]
    assert "type = friend" in lab.read(SIP_FILE)
    assert "Gosub(crm-bridge-dial-user,1001,1(SIP/1001,20,1001@default))" in lab.read(DIALPLAN_FILE)


async def test_a_removed_phone_must_be_gone_from_asterisk(lab: Lab) -> None:
    prov = lab.provisioning()
    await prov.apply("first")
    await store.delete_user(lab.pool, "lab", "petrova")
    lab.asterisk.frozen.add("res_pjsip.so")
    with pytest.raises(ApplyError, match="PJSIP/1002 is still there"):
        await prov.apply("petrova left")
    lab.asterisk.frozen.clear()
    assert (await prov.apply("petrova left")).status == "applied"
    assert "1002" not in lab.asterisk.phones["res_pjsip.so"]


async def test_two_applies_take_turns_across_processes(lab: Lab, pg_dsn: str) -> None:
    """Two Provisioners on two pools (as two processes): the advisory lock serialises
    them, and whatever was written last is what the files say."""
    other_pool = await asyncpg.create_pool(pg_dsn, min_size=1, max_size=2)
    spans: list[tuple[str, str]] = []
    try:
        first, second = lab.provisioning(), lab.provisioning(other_pool)
        for name, prov in (("a", first), ("b", second)):
            original = prov.provisioner._confirm

            async def confirm(
                asterisk: Asterisk,
                rendered: Rendered,
                old_phones: set[str],
                *,
                _name: str = name,
                _orig: Callable[[Asterisk, Rendered, set[str]], Awaitable[None]] = original,
            ) -> None:
                spans.append((_name, "in"))
                await asyncio.sleep(0.2)  # a slow Asterisk: the other one must wait
                await _orig(asterisk, rendered, old_phones)
                spans.append((_name, "out"))

            prov.provisioner._confirm = confirm  # type: ignore[method-assign]

        async def rename(prov: Provisioning, name: str) -> None:
            await store.upsert_user(lab.pool, "lab", dataclasses.replace(IVANOV, name=name))
            await prov.apply(f"rename to {name}")

        await asyncio.gather(rename(first, "Ivan A"), rename(second, "Ivan B"))
    finally:
        await other_pool.close()
    assert [s[1] for s in spans] == ["in", "out", "in", "out"], spans
    stored = await store.user(lab.pool, "lab", "ivanov")
    assert stored is not None
    assert f'callerid = "{stored.name}" <1001>' in lab.read(PJSIP_FILE)
    assert lab.asterisk.phones["res_pjsip.so"]["1001"][0] == f'"{stored.name}" <1001>'


async def test_after_a_write_the_view_knows_it_at_once(lab: Lab) -> None:
    view = DirectoryView(lab.settings.pbx, Directory({}))
    sync = DirectorySync(lab.settings.pbx, lab.pool, view)
    prov = lab.provisioning(reload_view=sync.reload)
    newcomer = User(
        "sidorov", "Petr Sidorov", "1005", source="api", provisioned=True, secret="Sidorov.Pass1"
    )
    await store.upsert_user(lab.pool, "lab", newcomer)

    result = await prov.after_write("extension 1005 created")

    assert result.status == "applied"
    assert view.logins["1005"] == "sidorov"
    assert view.groups["600"] == "Support"
    assert view.number_names["74957654321"] == "Main line"
    employee = view.employee("sidorov")
    assert employee is not None and employee.ext == "1005"

    stored = await prov.after_write("batch", apply=False)
    assert stored.status == "stored" and await prov.provisioner.pending()


async def test_a_disabled_provisioner_does_nothing(lab: Lab) -> None:
    lab.settings = lab.settings.model_copy(
        update={"provision": lab.settings.provision.model_copy(update={"config_dir": ""})}
    )
    assert (await lab.provisioning().apply("x")).status == "disabled"
    assert lab.actions("Reload") == []


# ------------------------------------------------------------------ AstDB


async def test_dnd_goes_to_astdb_and_is_read_back(lab: Lab) -> None:
    prov = lab.provisioning()

    assert (await prov.set_dnd("ivanov", True)).applied
    assert lab.asterisk.astdb == {"/crm-bridge/dnd/1001": "1"}
    assert lab.actions("DBPut")[-1] == {
        "Action": "DBPut",
        "ActionID": lab.actions("DBPut")[-1]["ActionID"],
        "Family": "crm-bridge/dnd",
        "Key": "1001",
        "Val": "1",
    }
    assert await prov.get_dnd("ivanov") and await prov.get_dnd("1001")
    assert lab.actions("DBGet")[-1]["Key"] == "1001"
    assert not await prov.get_dnd("petrova")

    assert (await prov.set_dnd("1001", False)).applied
    assert lab.asterisk.astdb == {}
    assert lab.actions("DBDel")[-1]["Family"] == "crm-bridge/dnd"
    assert not await prov.get_dnd("ivanov")


async def test_the_black_list_in_every_form_a_carrier_presents(lab: Lab) -> None:
    prov = lab.provisioning()

    await prov.block("+7 (910) 123-45-67", "spam")
    await prov.block("7900800*")

    assert lab.asterisk.astdb == {
        "/crm-bridge/blacklist/79101234567": "79101234567",
        "/crm-bridge/blacklist/89101234567": "79101234567",
        "/crm-bridge/blacklist/9101234567": "79101234567",
        "/crm-bridge/blacklist-prefix/7900800": "7900800*",
        "/crm-bridge/blacklist-prefix/8900800": "7900800*",
    }
    assert await prov.blocked() == [Blocked("7900800*", ""), Blocked("79101234567", "spam")]
    assert (await prov.unblock("89101234567")) is not None
    assert await prov.unblock("79101234567") is None
    assert await prov.blocked() == [Blocked("7900800*", "")]

    assert (await prov.set_block_anonymous(True)).applied
    assert lab.asterisk.astdb["/crm-bridge/settings/block-anonymous"] == "1"
    assert await prov.get_block_anonymous()
    await prov.set_block_anonymous(False)
    assert not await prov.get_block_anonymous()


async def test_recording_settings_and_exceptions(lab: Lab) -> None:
    prov = lab.provisioning()
    await prov.set_recording(external=True)
    await prov.set_recording_exception("petrova", True)

    assert lab.asterisk.astdb == {
        "/crm-bridge/settings/record-external": "1",
        "/crm-bridge/norecord/1002": "1",
    }
    recording = await prov.get_recording()
    assert (recording.external, recording.internal, recording.exceptions) == (
        True,
        False,
        ("petrova",),
    )


async def test_astdb_writes_while_asterisk_is_away_are_synced_at_login(lab: Lab) -> None:
    prov = lab.provisioning()
    lab.asterisk.astdb["/crm-bridge/dnd/1002"] = "1"  # stale: nobody asked for it
    lab.ami_up = False

    assert not (await prov.set_dnd("ivanov", True)).applied
    result = await prov.block("79101234567")
    assert not result.applied and "stored, not applied" in result.message
    assert await prov.get_dnd("ivanov"), "the stored wish answers while Asterisk is away"
    assert await prov.blocked() == [Blocked("79101234567", "")]

    lab.ami_up = True
    await prov.on_login()

    assert lab.asterisk.astdb == {
        "/crm-bridge/dnd/1001": "1",
        "/crm-bridge/blacklist/79101234567": "79101234567",
        "/crm-bridge/blacklist/89101234567": "79101234567",
        "/crm-bridge/blacklist/9101234567": "79101234567",
    }


async def test_before_asterisk_16_every_key_is_written_again(lab: Lab) -> None:
    lab.asterisk.tree = False
    prov = lab.provisioning()
    await prov.set_dnd("ivanov", True)
    lab.asterisk.astdb.clear()  # e.g. astdb.sqlite3 lost
    assert (await prov.runtime.sync()).applied
    assert lab.asterisk.astdb == {"/crm-bridge/dnd/1001": "1"}
    assert await prov.blocked() == []


async def test_unknown_employees_and_bad_numbers_are_refused(lab: Lab) -> None:
    from bridge.provision import BadNumber, UnknownEmployee

    prov = lab.provisioning()
    with pytest.raises(UnknownEmployee):
        await prov.set_dnd("nobody", True)
    for bad in ("abc", "12", "7900*800", "791012345678901234", "79101234567\nx"):
        with pytest.raises(BadNumber):
            await prov.block(bad)
    assert lab.actions("DBPut") == []


# ------------------------------------------------------------------ the daemon and the CLI


async def test_the_daemon_applies_at_login_and_serves_provisioning(lab: Lab, pg_dsn: str) -> None:
    from aiohttp import web

    from bridge.provision import PROVISIONING
    from tests.support.bridge import bridge_settings, leading, running_bridge

    await lab.pool.execute("INSERT INTO provision_dnd (pbx_id, login) VALUES ('lab', 'petrova')")
    settings = bridge_settings(
        pg_dsn,
        lab.server.port,
        "http://127.0.0.1:9/crm",
        provision={"config_dir": str(lab.folder), "confirm_timeout": 2.0},
    )
    async with running_bridge(settings) as bridge:
        await leading(bridge)
        async with asyncio.timeout(10):
            while not (lab.folder / PJSIP_FILE).exists() or lab.asterisk.astdb == {}:
                await asyncio.sleep(0.05)
        assert bridge.provisioning is not None
        assert lab.asterisk.astdb == {"/crm-bridge/dnd/1002": "1"}
        async with asyncio.timeout(10):
            while await bridge.provisioning.provisioner.pending() or lab.asterisk.dialplan == {}:
                await asyncio.sleep(0.05)
        assert "crm-bridge-stamp" in lab.asterisk.dialplan
        request = type("R", (), {"config_dict": {PROVISIONING: bridge.provisioning}})()
        from bridge.provision import provisioning_of

        assert provisioning_of(request) is bridge.provisioning
        assert isinstance(PROVISIONING, web.AppKey)


async def test_crm_bridge_apply_as_a_subprocess(lab: Lab, pg_dsn: str, tmp_path: Path) -> None:
    import sys

    config = tmp_path / "bridge.toml"
    config.write_text(
        f"""
[pbx]
id = "lab"
[asterisk]
port = {lab.server.port}
username = "bridge"
secret = "bridge"
[database]
url = "{pg_dsn}"
[provision]
config_dir = "{lab.folder}"
confirm_timeout = 2.0
""",
        encoding="utf-8",
    )
    await lab.pool.execute(
        "INSERT INTO provision_blacklist (pbx_id, telnum) VALUES ('lab', '74950000000')"
    )

    async def run(*args: str) -> tuple[int, str, str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bridge",
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode is not None
        return process.returncode, out.decode(), err.decode()

    code, out, err = await run("apply", "--config", str(config))
    assert code == 0, err
    assert out.startswith("applied: Asterisk runs the change (extensions_crm_bridge.conf")
    assert "[1001]" in lab.read(PJSIP_FILE)
    assert lab.asterisk.astdb["/crm-bridge/blacklist/74950000000"] == "74950000000"

    code, out, err = await run("apply", "--config", str(config))
    assert (code, out.strip()) == (0, "unchanged: Asterisk already runs this (no file changed)")

    lab.asterisk.refuse["res_pjsip.so"] = "Module not initialized"
    await store.upsert_user(lab.pool, "lab", dataclasses.replace(IVANOV, secret="Changed.Pass1"))
    code, out, err = await run("apply", "--config", str(config))
    assert code == 1
    assert "reload of res_pjsip.so refused: Module not initialized" in err
    assert "the previous files are back" in err
    assert "password = s3cret-pass" in lab.read(PJSIP_FILE)

    config.write_text(config.read_text().replace(f'config_dir = "{lab.folder}"', 'config_dir = ""'))
    code, out, err = await run("apply", "--config", str(config))
    assert code == 2 and "provisioning is off" in err


async def test_the_leader_catches_up_with_what_a_standby_stored(lab: Lab) -> None:
    standby = lab.provisioning()
    lab.ami_up = False  # a standby bridge has no AMI link
    assert (await standby.after_write("created on the standby")).status == "stored"
    assert not (await standby.set_dnd("petrova", True)).applied

    lab.ami_up = True
    leader = lab.provisioning()
    await leader.catch_up()

    assert not await leader.provisioner.pending()
    assert "[1002]" in lab.read(PJSIP_FILE)
    assert lab.asterisk.astdb == {"/crm-bridge/dnd/1002": "1"}
    lab.server.actions.clear()
    await leader.catch_up()  # nothing pending: no reload
    assert lab.actions("Reload") == []


async def test_a_learnt_group_an_api_client_provisions_stays_its_own(lab: Lab) -> None:
    settings = lab.settings.pbx.model_copy(update={"groups": {"700": "Old group"}})
    sync = DirectorySync(settings, lab.pool, DirectoryView(settings, Directory({})))
    assert await sync.refresh(None)
    learnt = {g.ext: g for g in await store.groups(lab.pool, "lab")}["700"]
    assert learnt.source == "config"
    await store.upsert_group(
        lab.pool,
        "lab",
        dataclasses.replace(
            learnt,
            name="New group",
            members=("ivanov",),
            ring_time=25,
            source="api",
            provisioned=True,
            noanswer="busy",
        ),
    )
    assert await sync.refresh(None)
    group = {g.ext: g for g in await store.groups(lab.pool, "lab")}["700"]
    assert (group.source, group.name, group.members, group.ring_time, group.noanswer) == (
        "api",
        "New group",
        ("ivanov",),
        25,
        "busy",
    )
    assert group.provisioned
