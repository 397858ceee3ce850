"""Click-to-call without a network: what is dialled, which id the call gets, and what
is refused before Asterisk is asked (the AMI side is tests/integration/test_click_to_call.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from bridge.ami.ingest import AmiIngest
from bridge.ami.originate import AmiDialer, Dialable, new_callid
from bridge.api.services import DialError
from bridge.config import ApiSettings, PbxSettings, check_config_file
from bridge.directory_sync import DirectoryView
from bridge.store.directory import Snapshot, User
from bridge.tracker.ids import uid_order


@pytest.mark.parametrize(
    ("raw", "dialled"),
    [
        ("+7 910 123-45-67", "79101234567"),
        ("8 (910) 123-45-67", "79101234567"),  # the national prefix of the region
        ("79101234567", "79101234567"),
        ("+44 20 7946 0958", "442079460958"),
        ("123", None),
        ("", None),
        ("call me", None),
        ("79101234567\r\nAction: Hangup", None),  # never an AMI header of its own
        ("+7 910 123-45-67 ext. 5", None),
    ],
)
def test_dialable_numbers(raw: str, dialled: str | None) -> None:
    assert Dialable("RU")(raw) == dialled


def test_call_ids_look_like_asterisk_ids_but_are_never_one() -> None:
    ids = {new_callid(1795346586.9) for _ in range(1000)}
    assert len(ids) == 1000  # a thousand in a row differ by their counter alone
    for callid in ids:
        seconds, _, counter = callid.partition(".")
        assert seconds == "1795346586" and counter.startswith("0") and len(counter) == 10
        # before Asterisk's ids of that second, after those of the second before
        assert uid_order("1795346585.99999") < uid_order(callid) < uid_order("1795346586.1")


def test_ids_sort_as_asterisk_made_them() -> None:
    made = [
        "1795346585.120",
        "1795346586.0999998554",  # the bridge's own, first of its second
        "1795346586.9",
        "1795346586.10",  # the counter is an integer: 10 after 9
        "pbx1-1795346586.11",  # a systemname in front
        "1795346587.1",
        # not ids of Asterisk's, last, by their text
        "1" * 5000 + ".1",  # too long for a number
        "1795346587.",  # no counter
        "not-an-id",
        "pbx-1795346587.١",  # not ASCII digits
    ]
    assert sorted(reversed(made), key=uid_order) == made


def view() -> DirectoryView:
    v = DirectoryView(PbxSettings())
    v.apply(Snapshot([User("ivanov", ext="1001"), User("bad", ext="10 01")], [], []))
    return v


def dialer(ami: Callable[[], AmiIngest | None] = lambda: None, **api: object) -> AmiDialer:
    return AmiDialer(ami, view().employee, ApiSettings.model_validate(api), "RU")


def test_the_originate_rings_the_employee_then_dials_the_customer() -> None:
    action = dialer().originate("PJSIP", "1001", "79101234567", "1795346586.0001", "74957654321")
    assert action == {
        "Action": "Originate",
        "Channel": "PJSIP/1001",
        "Context": "from-internal",
        "Exten": "79101234567",
        "Priority": "1",
        "CallerID": '"79101234567" <79101234567>',
        "Timeout": "30000",
        "Async": "true",
        "ChannelId": "1795346586.0001",
        "Variable": ["CRM_CALL_ID=1795346586.0001", "CRM_CLID=74957654321"],
    }


def test_channel_template_and_context_from_config() -> None:
    d = dialer(
        click_to_call_channel="Local/{ext}@crm-bridge-ring-all",
        click_to_call_context="outbound",
        click_to_call_ring_time=15,
    )
    action = d.originate("PJSIP", "1001", "79101234567", "1.0")
    assert (action["Channel"], action["Context"], action["Timeout"]) == (
        "Local/1001@crm-bridge-ring-all",
        "outbound",
        "15000",
    )
    assert action["Variable"] == ["CRM_CALL_ID=1.0"]


@pytest.mark.parametrize(
    ("employee", "number", "clid", "status"),
    [
        ("nobody", "+79101234567", None, 400),
        ("bad", "+79101234567", None, 400),  # an extension that is no dial string
        ("ivanov", "12", None, 400),
        ("ivanov", "+79101234567", "x", 400),
        ("ivanov", "+79101234567", None, 503),  # valid, but no AMI link (standby or down)
        ("1001", "+79101234567", "+74957654321", 503),
    ],
)
async def test_refused_before_asterisk_is_asked(
    employee: str, number: str, clid: str | None, status: int
) -> None:
    with pytest.raises(DialError) as refused:
        await dialer().call(employee, number, clid)
    assert refused.value.status == status and refused.value.message


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('click_to_call_channel = "PJSIP/1001"', "must contain {ext}"),
        ('click_to_call_channel = "{tech}/{ext}\\r\\nAction: Hangup"', "not a channel template"),
        ('click_to_call_channel = "{ext}"', 'expected "TECH/..."'),
        ('click_to_call_context = "from internal"', "not a dialplan context name"),
        ("click_to_call_ring_time = 0", "must be greater than 0"),
    ],
)
def test_click_to_call_config_checks(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "bridge.toml"
    path.write_text(f"[api]\n{text}\n")
    problems = check_config_file(path, use_env=False)
    assert len(problems) == 1 and problem in problems[0], problems


def test_company_numbers_in_config(tmp_path: Path) -> None:
    path = tmp_path / "bridge.toml"
    path.write_text(
        "[pbx.numbers]\n"
        '"+74957654321" = "Main line"\n'
        '"74957654324" = { name = "Sales", route = "queue:sales" }\n'
    )
    assert check_config_file(path, use_env=False) == []
    path.write_text('[pbx.numbers]\n"main" = "Main line"\n"74957654324" = { route = "sales" }\n')
    (problem,) = check_config_file(path, use_env=False)
    assert problem.startswith("[pbx] numbers: ")
    assert '"main" is not a phone number' in problem and '"sales" is not a route' in problem
