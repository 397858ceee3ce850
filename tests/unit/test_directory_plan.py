"""The directory without I/O: what Asterisk's answers mean, what a sync plans to write, and
the in-memory view handing the directory to the tracker and the AGI routes."""

from __future__ import annotations

import pytest

from bridge.agi.directory import Directory
from bridge.ami.directory_source import (
    Endpoint,
    Queue,
    member_ext,
    name_from_callerid,
    queues_from,
)
from bridge.ami.trace import trace_events
from bridge.config import CompanyNumber, PbxSettings
from bridge.directory_sync import DirectoryView, plan_groups, plan_numbers, plan_users
from bridge.store.directory import Group, Number, Snapshot, User
from bridge.tracker.channels import ChannelClassifier
from bridge.tracker.model import CallEvent, CallRecord
from tests.support.traces import TRACES
from tests.unit.test_tracker_traces import lab_tracker

CLASSIFY = ChannelClassifier(["PJSIP/trunk-*", "SIP/trunk*"], ["PJSIP/*", "SIP/*"]).classify


@pytest.mark.parametrize(
    ("callerid", "name"),
    [
        ('"Ivan Petrov" <1001>', "Ivan Petrov"),  # ast_callerid_merge: name and number
        ('"Ivan \\"Vanya\\" Petrov" <1001>', 'Ivan "Vanya" Petrov'),  # ast_escape_quoted
        ("Ivan Petrov <1001>", "Ivan Petrov"),
        ("Ivan Petrov", "Ivan Petrov"),  # a name alone
        ("1001", ""),  # a number alone
        ('"1001" <1001>', ""),  # a name that only repeats the number
        ("<unknown>", ""),  # PJSIP's text for no caller ID
        ("", ""),  # chan_sip's
        ('"Olga Smirnova" <>', "Olga Smirnova"),
    ],
)
def test_name_from_callerid(callerid: str, name: str) -> None:
    assert name_from_callerid(callerid) == name


def test_queue_members_by_state_interface_or_local_channel() -> None:
    freepbx = {"Location": "Local/1001@queue-members/n", "StateInterface": "PJSIP/1001"}
    assert member_ext(freepbx, CLASSIFY, ()) == "1001"
    plain = {"Location": "SIP/1002", "StateInterface": "SIP/1002"}
    assert member_ext(plain, CLASSIFY, ()) == "1002"
    local_only = {
        "Location": "Local/1003@from-queue/n",
        "StateInterface": "Local/1003@from-queue/n",
    }
    assert member_ext(local_only, CLASSIFY, {"1003"}) == "1003"
    assert member_ext(local_only, CLASSIFY, ()) == "", "a Local member names a known phone only"
    trunk = {"Location": "PJSIP/trunk", "StateInterface": "PJSIP/trunk"}
    assert member_ext(trunk, CLASSIFY, ()) == ""


def test_queues_from_queue_status_events() -> None:
    events = [
        {"Response": "Success", "EventList": "start", "Message": "Queue status will follow"},
        {"Event": "QueueParams", "Queue": "sales", "Strategy": "rrmemory"},
        {"Event": "QueueMember", "Queue": "sales", "Location": "PJSIP/1001"},
        {"Event": "QueueMember", "Queue": "sales", "Location": "PJSIP/1002"},
        {"Event": "QueueEntry", "Queue": "sales", "Channel": "PJSIP/trunk-00000001"},
        {"Event": "QueueParams", "Queue": "empty", "Strategy": "ringall"},
        {"Event": "QueueStatusComplete", "EventList": "Complete", "ListItems": "5"},
    ]
    assert queues_from(events, CLASSIFY, ()) == [
        Queue("sales", "rrmemory", ("1001", "1002")),
        Queue("empty", "ringall", ()),
    ]


PHONES = [Endpoint("1001", "Ivan Petrov", "PJSIP"), Endpoint("1002", "Olga Smirnova", "PJSIP")]


def test_config_users_win_and_take_the_phones_names() -> None:
    users = plan_users(PHONES, {"1001": "ivanov", "1009": "sidorov"})
    assert users == [
        User("ivanov", "Ivan Petrov", "1001", source="config"),
        User("sidorov", "", "1009", source="config"),  # in the config, not (yet) in Asterisk
        User("1002", "Olga Smirnova", "1002", source="pbx"),
    ]


def test_users_when_asterisk_was_not_read() -> None:
    assert plan_users(None, {"1001": "ivanov"}) == [User("ivanov", "", "1001", source="config")]


def test_a_login_given_twice_in_the_config_is_taken_once() -> None:
    users = plan_users([], {"1001": "ivanov", "1002": "ivanov"})
    assert [(u.login, u.ext) for u in users] == [("ivanov", "1001")]


def test_groups_queues_named_by_config_and_ring_groups() -> None:
    queues = [Queue("sales", "ringall", ("1001", "1002"))]
    config = {"sales": "Sales dept", "600": "Support", "74957654324": "Queue line"}
    groups = plan_groups(queues, [], config, {"1001": "ivanov"})
    assert groups == [
        Group(0, "queue", "Sales dept", "sales", "ringall", members=("ivanov", "1002")),
        Group(0, "ringgroup", "Support", "600", source="config"),  # a DID is no ring group
    ]


def test_config_names_of_known_queues_are_no_ring_groups_while_asterisk_is_unread() -> None:
    groups = plan_groups(None, ["sales"], {"sales": "Sales dept", "600": "Support"}, {})
    assert [(g.kind, g.ext) for g in groups] == [("ringgroup", "600")]


def test_numbers_with_their_routes_resolved() -> None:
    users = [User("ivanov", "Ivan Petrov", "1001")]
    groups = [Group(7, "queue", "Sales", "sales"), Group(8, "ringgroup", "Support", "600")]
    numbers = {
        "74957654321": CompanyNumber(name="Main line"),
        "74957654322": CompanyNumber(name="Ivanov direct", route="user:1001"),
        "74957654323": CompanyNumber(name="Support", route="group:600"),
        "74957654324": CompanyNumber(name="Sales", route="queue:sales"),
        "74957654326": CompanyNumber(name="Menu", route="ivr:main"),
        "74957654329": CompanyNumber(name="Nobody", route="user:nobody"),
    }
    planned = plan_numbers(numbers, "74957650000", users, groups)
    assert [(n.telnum, n.name, n.route_type, n.route_to) for n in planned] == [
        ("74957654321", "Main line", "", ""),
        ("74957654322", "Ivanov direct", "user", "ivanov"),
        ("74957654323", "Support", "group", "8"),
        ("74957654324", "Sales", "group", "7"),
        ("74957654326", "Menu", "ivr", "main"),
        ("74957654329", "Nobody", "", ""),  # an unknown route is logged and left out
        ("74957650000", "", "", ""),  # main_number is a company number too
    ]


def snapshot(
    users: list[User], groups: list[Group] | None = None, numbers: list[Number] | None = None
) -> Snapshot:
    return Snapshot(users, groups or [], numbers or [])


def test_view_starts_from_the_config_then_follows_the_database() -> None:
    pbx = PbxSettings.model_validate(
        {
            "users": {"1001": "ivanov"},
            "groups": {"600": "Support"},
            "numbers": {"74957654321": "Main line"},
        }
    )
    agi = Directory(pbx.users)
    view = DirectoryView(pbx, agi)
    assert view.logins == {"1001": "ivanov"} and view.number_names == {"74957654321": "Main line"}
    names = view.number_names  # handed out once (the outbox keeps it)
    view.apply(
        snapshot(
            [User("ivanov", ext="1005", source="api"), User("1002", ext="1002", telnum="74950001")],
            [Group(1, "queue", "Sales dept", "sales")],
            [Number("74957654321", "Head office", source="api")],
        )
    )
    assert view.logins == {"1005": "ivanov", "1002": "1002"}
    assert view.groups == {"600": "Support", "sales": "Sales dept"}
    assert names == {"74957654321": "Head office"}, "updated in place"
    assert agi.resolve("ivanov") == "1005" and agi.resolve("74950001") == "1002"
    assert agi.login("1005") == "ivanov"


def test_employee_lookup_by_login_or_extension_with_its_technology() -> None:
    view = DirectoryView(PbxSettings(extensions=["SIP/*"]))
    view.apply(snapshot([User("ivanov", ext="1001"), User("Petrova", ext="1002")]))
    view.learn_techs([Endpoint("1001", "", "PJSIP")])
    assert view.employee("ivanov") == view.employee("1001")
    ivanov, petrova = view.employee("ivanov"), view.employee("petrova")
    assert ivanov is not None and ivanov.tech == "PJSIP"  # as Asterisk listed it
    assert petrova is not None and petrova.tech == "SIP"  # none seen: `[pbx] extensions` says SIP
    assert view.employee("nobody") is None and view.employee("") is None


def test_the_tracker_names_employees_as_the_directory_does_after_a_refresh() -> None:
    """The tracker is handed mappings; a refresh between two calls changes the next one's
    `user` without a new tracker."""
    view = DirectoryView(PbxSettings())
    tracker = lab_tracker()
    view.attach(tracker)
    view.apply(snapshot([User("ivanov", ext="1001")]))
    outputs = [
        o for t, ev in trace_events(TRACES / "click_to_call.ami.jsonl") for o in tracker.feed(ev, t)
    ]
    events = [o for o in outputs if isinstance(o, CallEvent)]
    (record,) = [o for o in outputs if isinstance(o, CallRecord)]
    assert {e.user for e in events} == {"ivanov"} and record.user == "ivanov"
