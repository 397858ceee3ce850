"""The pure parts of provisioning's state: black-list entries and their AstDB keys, the
desired AstDB, the rendered files on disk (atomic, the previous version kept), the caller
IDs Asterisk prints, and the shipped dialplan reading the keys the bridge writes."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from bridge.provision.asterisk import callerid_parts
from bridge.provision.files import EMPTY, ConfigDir
from bridge.provision.runtime import (
    BadNumber,
    Blocked,
    blacklist_entry,
    blacklist_keys,
    desired,
)

SHIPPED = Path(__file__).resolve().parents[2] / "config" / "asterisk" / "crm_bridge_dialplan.conf"


@pytest.mark.parametrize(
    ("raw", "entry"),
    [
        ("79101234567", "79101234567"),
        ("+7 (910) 123-45-67", "79101234567"),
        ("89101234567", "79101234567"),
        ("8 910 123 45 67", "79101234567"),
        ("7900800*", "7900800*"),
        ("+7 900 800*", "7900800*"),
        ("90080022", "90080022"),
        ("112", "112"),
    ],
)
def test_black_list_entries(raw: str, entry: str) -> None:
    assert blacklist_entry(raw, "RU") == entry


@pytest.mark.parametrize(
    "raw", ["", "abc", "12", "79*00", "*", "7910\n1234567", "7910;1234567", "1" * 16, "+*"]
)
def test_what_the_black_list_refuses(raw: str) -> None:
    with pytest.raises(BadNumber):
        blacklist_entry(raw, "RU")


def test_every_form_a_carrier_may_present() -> None:
    assert blacklist_keys("79101234567", "RU") == [
        "blacklist/79101234567",
        "blacklist/89101234567",
        "blacklist/9101234567",
    ]
    assert blacklist_keys("7900800*", "RU") == [
        "blacklist-prefix/7900800",
        "blacklist-prefix/8900800",
    ]
    assert blacklist_keys("4930123456", "DE") == [
        "blacklist/4930123456",
        "blacklist/030123456",
        "blacklist/30123456",
    ]
    assert blacklist_keys("90080022", "RU") == ["blacklist/90080022"]  # not a Russian number
    assert blacklist_keys("12015550123", "US")[:2] == [
        "blacklist/12015550123",
        "blacklist/2015550123",
    ]


def test_the_desired_astdb() -> None:
    assert desired(
        {"ivanov": "1001", "kim": ""},
        dnd=["ivanov", "kim"],
        norecord=["ivanov"],
        blacklist=[Blocked("7900800*")],
        block_anonymous=True,
        record_external=False,
        record_internal=True,
        region="RU",
    ) == {
        "dnd/1001": "1",
        "norecord/1001": "1",
        "blacklist-prefix/7900800": "7900800*",
        "blacklist-prefix/8900800": "7900800*",
        "settings/block-anonymous": "1",
        "settings/record-internal": "1",
    }


@pytest.mark.parametrize(
    ("shown", "parts"),
    [
        ('"Ivan Petrov" <1001>', ("Ivan Petrov", "1001")),
        ('"" <1003>', ("", "1003")),  # chan_sip without a name
        ("1003", ("", "1003")),  # PJSIP without a name
        ("<1003>", ("", "1003")),
        ('"Ivan \\"Vanya\\"" <1001>', ('Ivan "Vanya"', "1001")),
    ],
)
def test_caller_ids_as_asterisk_prints_them(shown: str, parts: tuple[str, str]) -> None:
    assert callerid_parts(shown) == parts


# ------------------------------------------------------------------ files


def test_files_are_replaced_with_the_previous_version_kept(tmp_path: Path) -> None:
    folder = ConfigDir(tmp_path)
    assert folder.write({"a.conf": "one\n"}) == {"a.conf": None}
    assert (tmp_path / "a.conf").stat().st_mode & 0o777 == 0o640, "it holds passwords"
    os.chmod(tmp_path / "a.conf", 0o644)
    first = (tmp_path / "a.conf").stat()

    previous = folder.write({"a.conf": "two\n"})

    assert previous == {"a.conf": "one\n"}
    assert folder.read("a.conf") == "two\n" and folder.read("a.conf.prev") == "one\n"
    after = (tmp_path / "a.conf").stat()
    assert after.st_mode & 0o777 == 0o644, "the admin's mode is kept"
    assert after.st_mtime_ns > first.st_mtime_ns, "Asterisk must see it changed"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == [], "no temp file"
    assert folder.changes({"a.conf": "two\n", "b.conf": "x"}) == {"b.conf": "x"}


def test_a_restore_puts_the_previous_files_back(tmp_path: Path) -> None:
    folder = ConfigDir(tmp_path)
    folder.write({"a.conf": "one\n"})
    previous = folder.write({"a.conf": "two\n", "new.conf": "new\n"})
    before = (tmp_path / "a.conf").stat().st_mtime_ns

    folder.restore(previous)

    assert folder.read("a.conf") == "one\n"
    assert folder.read("new.conf") == EMPTY, "an #included file must keep existing"
    assert (tmp_path / "a.conf").stat().st_mtime_ns > before


def test_a_failed_write_leaves_every_file_as_it_was(tmp_path: Path) -> None:
    folder = ConfigDir(tmp_path)
    folder.write({"a.conf": "one\n"})
    (tmp_path / "b.conf").mkdir()  # cannot be replaced by a file
    with pytest.raises(OSError):
        folder.write({"a.conf": "two\n", "b.conf": "x\n"})
    assert folder.read("a.conf") == "one\n"


# ------------------------------------------------------------------ the shipped dialplan


def test_the_shipped_dialplan_reads_the_keys_the_bridge_writes() -> None:
    text = SHIPPED.read_text(encoding="utf-8")
    read = set(re.findall(r"DB_EXISTS\(crm-bridge/([a-z-]+)/", text))
    assert read == {"dnd", "norecord", "blacklist", "blacklist-prefix", "settings"}
    keys = desired(
        {"a": "1"},
        ["a"],
        ["a"],
        [Blocked("79101234567"), Blocked("7900800*")],
        True,
        True,
        True,
        "RU",
    )
    assert {key.partition("/")[0] for key in keys} == read
    for setting in ("block-anonymous", "record-external"):
        assert f"settings/{setting}" in keys and f"crm-bridge/settings/{setting}" in text
    assert "crm-bridge/settings/record-${CRM_REC_KIND}" in text  # record-internal/-external
    for context in (
        "crm-bridge-screen",
        "crm-bridge-dial-user",
        "crm-bridge-dial-group",
        "crm-bridge-record",
        "crm-bridge-record-out",
    ):
        assert f"\n[{context}]\n" in text


def test_the_shipped_dialplan_lines_are_well_formed() -> None:
    """Every line of a context is `exten => X,1,App(...)` or `same => n[(label)],App(...)`
    with balanced parentheses, and every label a GotoIf names exists in its context."""
    text = SHIPPED.read_text(encoding="utf-8")
    for context in re.split(r"\n\[", text)[1:]:
        name, _, body = context.partition("]\n")
        labels = set(re.findall(r"same => n\(([a-z]+)\)", body))
        for line in body.splitlines():
            if not line or line.startswith(";"):
                continue
            start = r"(exten => (s|_X!|_X.),1| same => n(\([a-z]+\))?)"
            assert re.fullmatch(start + r",\w+\(.*\)", line), line
            assert line.count("(") == line.count(")"), line
            assert line.count("${") <= line.count("}"), line
        named = set(re.findall(r"\?([a-z]+)\)", body)) | set(re.findall(r"Goto\(([a-z]+)\)", body))
        assert named <= labels, (name, named - labels)


def test_the_shipped_dialplan_leaves_a_message_only_in_a_mailbox_that_exists() -> None:
    """Issabel's `voicemail: default` names `<ext>@default` whether or not voicemail.conf
    has it, and VoiceMail() hangs up on a mailbox it does not have: so crm-bridge-dial-user
    asks VM_INFO (Asterisk 14+) first and, without one, returns to the no-answer path."""
    text = SHIPPED.read_text(encoding="utf-8")
    body = text.split("\n[crm-bridge-dial-user]\n")[1].split("\n\n")[0]
    lines = [line for line in body.splitlines() if not line.startswith(";")]
    check = ' same => n,GotoIf($["${VM_INFO(${ARG3},exists)}" = "0"]?done)'
    voicemail = [i for i, line in enumerate(lines) if "VoiceMail(" in line]
    assert voicemail, "the helper leaves messages"
    for i in voicemail:
        assert check in lines[:i], "VM_INFO is asked before VoiceMail()"
        asked = lines.index(check)
        assert not any("Goto(" in line or "n(" in line for line in lines[asked + 1 : i])
    assert any(re.fullmatch(r" same => n\(done\),Return\(\)", line) for line in lines)


def test_the_directory_shows_no_provisioning_field_where_it_did_not_before() -> None:
    from bridge.store.directory import Group, Number, User

    user = User("ivanov", "Ivan", "1001", provisioned=True, secret="s3cret-pass")
    assert set(user.as_dict()) == {
        "login",
        "name",
        "ext",
        "telnum",
        "mobile",
        "email",
        "position",
        "source",
    }
    assert "s3cret-pass" not in repr(user)
    assert user.provisioning()["secret"] == "s3cret-pass"
    assert "noanswer" not in Group(1, "ringgroup", "G", "600", noanswer="busy").as_dict()
    assert "provisioned" not in Number("74957654321").as_dict()
