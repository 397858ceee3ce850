"""Rendering the directory as Asterisk config: golden files written by hand, and every way an
API client might try to write config or dialplan of its own."""

from __future__ import annotations

import dataclasses
import hashlib
import re
from pathlib import Path

import pytest

from bridge.provision import rules
from bridge.provision.render import (
    DIALPLAN_FILE,
    FILES,
    PJSIP_FILE,
    SIP_FILE,
    Target,
    render,
)
from bridge.provision.rules import RenderError
from bridge.store.directory import Group, Number, Snapshot, User
from tests.unit.provision_directory import GROUPS, NUMBERS, SNAPSHOT, USERS

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "provision"
CASES = {
    # chan_pjsip, no template, both of the PBX's contexts hooked
    "pjsip": Target(),
    # chan_sip with the lab's template, inbound calls routed by the admin
    "sip": Target(driver="sip", endpoint_template="phone", inbound_context=""),
    # a template, no internal context (routes into the PBX's own dialplan are left out),
    # another inbound context
    "pjsip-template": Target(
        endpoint_template="phone-tpl", internal_context="", inbound_context="from-pstn"
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("name", FILES)
def test_rendered_files_are_the_golden_ones(case: str, name: str) -> None:
    rendered = render(SNAPSHOT, CASES[case])
    expected = (GOLDEN / case / name).read_text(encoding="utf-8")
    assert rendered.files[name] == expected.replace("NoOp(STAMP)", f"NoOp({rendered.stamp})")


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_stamp_is_the_digest_of_the_dialplan_above_it(case: str) -> None:
    rendered = render(SNAPSHOT, CASES[case])
    text = rendered.files[DIALPLAN_FILE]
    body, _, stamp_section = text.partition("\n[crm-bridge-stamp]\n")
    assert hashlib.sha256(body.encode()).hexdigest()[:16] == rendered.stamp
    assert stamp_section.endswith(f"exten => s,1,NoOp({rendered.stamp})\n")


def test_what_names_nobody_is_left_out_with_a_warning() -> None:
    assert render(SNAPSHOT, Target()).warnings == (
        "group 3 (Hunt line): member 'kim' has no extension",
        "group 11 (No box) no-answer: user 'sidorov' has no voicemail",
        "number 74957654328: user 'kim' has no extension",
    )
    without_internal = render(SNAPSHOT, CASES["pjsip-template"]).warnings
    assert any("user 'sidorov' (extension 1004) is not provisioned" in w for w in without_internal)


def test_phones_are_what_asterisk_will_report() -> None:
    phones = render(SNAPSHOT, Target()).phones
    assert sorted(phones) == ["1001", "1002", "1003"]
    assert phones["1001"].name == "Ivan Petrov"
    assert phones["1003"].name == ""
    assert {p.context for p in phones.values()} == {"crm-bridge-phones"}


def test_the_same_directory_renders_the_same_bytes() -> None:
    shuffled = Snapshot(USERS[::-1], GROUPS[::-1], NUMBERS[::-1])
    assert render(shuffled, Target()).files == render(SNAPSHOT, Target()).files
    assert render(shuffled, Target()).digest == render(SNAPSHOT, Target()).digest


def test_nothing_provisioned_still_renders_every_file() -> None:
    rendered = render(Snapshot([User("1004", "Petr", "1004")], [], []), Target())
    assert set(rendered.files) == set(FILES)
    assert "[1004]" not in rendered.files[PJSIP_FILE]
    assert "exten => 1004" not in rendered.files[DIALPLAN_FILE]
    assert "[crm-bridge-extensions]" in rendered.files[DIALPLAN_FILE]


# ------------------------------------------------------------------ injection

PHONE = User("ivanov", "Ivan", "1001", source="api", provisioned=True, secret="s3cret-pass")
RING = Group(2, "ringgroup", "Support", "600", "ringall", 20, ("ivanov",), "api", provisioned=True)
LINE = Number("74957654321", "Main", "user", "ivanov", source="api", provisioned=True)


def attempt(**changes: object) -> list[str]:
    """The problems of the one-phone, one-group, one-number directory with `changes`
    applied: user.field / group.field / number.field."""
    parts: dict[str, dict[str, object]] = {"user": {}, "group": {}, "number": {}}
    for key, value in changes.items():
        kind, _, field = key.partition("__")
        parts[kind][field] = value
    snapshot = Snapshot(
        [dataclasses.replace(PHONE, **parts["user"])],  # type: ignore[arg-type]
        [dataclasses.replace(RING, **parts["group"])],  # type: ignore[arg-type]
        [dataclasses.replace(LINE, **parts["number"])],  # type: ignore[arg-type]
    )
    with pytest.raises(RenderError) as refused:
        render(snapshot, Target())
    return refused.value.problems


ATTACKS: dict[str, list[str | int]] = {
    # a new line would start a section or an option of the attacker's
    "user__name": [
        "Ivan\n[evil]\ntype=endpoint",
        'Ivan" <666>',
        "Ivan; comment",
        "Ivan\\",
        "Ivan <1001>",
        "Ivan\r",
        "Ivan\x00",
        "Ivan [x]",
        "x" * 81,
        " Ivan",
    ],
    "user__secret": [
        "pass\npermit=0.0.0.0",
        "pass;word12",
        "pass word12",
        'pass"word12',
        "pass[word]1",
        "short",
        "",
        "pass#word12",
    ],
    "user__ext": [
        "1001\n[evil]",
        "_X.",
        "1001,1,Hangup()",
        "s",
        "1001)",
        "10 01",
        "${EXTEN}",
        "1" * 21,
        "",
    ],
    "user__voicemail": ["default)", "de,fault", "${X}", "default\n", "a/b"],
    "user__record_in_external": ["yes", "always\n"],
    "user__ring_time": [-1, 601],
    "user__login": ["ivanov\n[evil]"],
    "group__name": ["Support\nexten => 600,1,Hangup()", "Sales; x"],
    "group__ext": ["600,1,Dial(SIP/evil)", "_6XX", "6 00"],
    "group__strategy": ["random", "ringall)"],
    "group__ring_time": [0, 601],
    "group__noanswer": [
        "number:791611122,33",
        "number:7916)",
        "ivr:ivr-main,s,1)",
        "ivr:${EVIL}",
        "group:2)",
        "user:",
        "voicemail",
        "goto:somewhere",
        "hangup:now",
    ],
    "number__telnum": ["749576543\n21", "_X.", "7495)"],
    "number__name": ["Main\n[x]"],
    "number__route_type": ["queue", "app"],
    "number__route_to": [""],
}


@pytest.mark.parametrize(
    ("field", "value"), [(f, v) for f, values in ATTACKS.items() for v in values]
)
def test_what_could_write_config_or_dialplan_is_refused(field: str, value: object) -> None:
    problems = attempt(**{field: value})
    assert problems, f"{field}={value!r} rendered"
    kind = field.partition("__")[0]
    assert any(p.startswith(kind) for p in problems), problems


def test_ivr_route_and_queue_names_are_checked_too() -> None:
    assert attempt(number__route_type="ivr", number__route_to="ivr-main,s,1)")
    assert attempt(number__route_type="group", number__route_to="2)")
    queue = Group(1, "queue", "Q", "sales", provisioned=True, source="api")
    with pytest.raises(RenderError, match="only ring groups"):
        render(Snapshot([PHONE], [queue], []), Target())


def test_two_phones_on_one_extension_are_refused() -> None:
    twin = dataclasses.replace(PHONE, login="twin")
    with pytest.raises(RenderError, match="extension 1001 is 'ivanov'"):
        render(Snapshot([PHONE, twin], [], []), Target())
    clash = dataclasses.replace(RING, ext="1001")
    with pytest.raises(RenderError, match="extension 1001"):
        render(Snapshot([PHONE], [clash], []), Target())


def test_unprovisioned_objects_are_not_held_to_provisioning_rules() -> None:
    learnt = User("1005", "Learnt", "1005", source="pbx")  # no secret: Asterisk's own
    rendered = render(Snapshot([PHONE, learnt], [RING], [LINE]), Target())
    assert "[1005]" not in rendered.files[PJSIP_FILE]


def test_a_valid_directory_renders_only_safe_lines() -> None:
    """Every rendered line is a comment, a section, an option or a dialplan line whose
    values come from the rules' alphabets."""
    for target in CASES.values():
        for name, text in render(SNAPSHOT, target).files.items():
            for line in text.splitlines():
                ok = (
                    line == ""
                    or line.startswith("; ")
                    or re.fullmatch(r"\[[a-z0-9-]+\](\([a-z-]+\))?", line)
                    or re.fullmatch(r"[a-z_]+ = .+", line)
                    or re.fullmatch(r"(exten => [0-9s]+,1| same => n),[A-Za-z]+\(.*\)", line)
                    or re.fullmatch(r"include => [a-z-]+", line)
                )
                assert ok, f"{name}: {line!r}"


def test_the_rules_are_what_the_api_checks_before_storing() -> None:
    assert rules.user_problems(PHONE) == []
    assert rules.group_problems(RING) == []
    assert rules.number_problems(LINE) == []
    assert rules.noanswer_problem("number:79161112233") is None
    assert rules.user_problems(dataclasses.replace(PHONE, secret="")) == [
        "user 'ivanov': has no secret; a phone is never provisioned without one"
    ]
    assert SIP_FILE in FILES
