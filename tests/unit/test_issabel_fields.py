"""The Issabel dialect's pure parts: numbering, no-answer destinations both ways, Issabel's
string values, `reload`, tokens of the wrong kind or key."""

from __future__ import annotations

from dataclasses import replace

import jwt
import pytest

from bridge.api.issabel import body
from bridge.api.issabel.errors import IssabelError, strings
from bridge.api.issabel.records import next_free
from bridge.api.issabel.ringgroups import Where
from bridge.store.directory import Group, Number, Snapshot, User


def test_the_next_free_number_follows_issabel() -> None:
    assert next_free(set(), [], 200) == "200"
    assert next_free({"1001", "1002", "1004"}, ["1001", "1002", "1004"], 200) == "1003"
    assert next_free({"1001", "1002", "1003"}, ["1001", "1002"], 200) == "1004"  # 1003: a group
    assert next_free({"600", "x"}, ["queue-name", "600"], 600) == "601"


WHERE = Where(
    Snapshot(
        [User("ivanov", "Ivan", "1001"), User("anna", "Anna", "1002")],
        [Group(7, "ringgroup", "Sales", "600"), Group(8, "queue", "support", "support")],
        [Number("74957654321")],
    )
)


@pytest.mark.parametrize(
    ("destination", "noanswer"),
    [
        ("app-blackhole,hangup,1", "hangup"),
        ("app-blackhole,busy,1", "busy"),
        ("from-did-direct,1001,1", "user:ivanov"),
        ("ext-group,600,1", "group:7"),
        ("ext-local,vmu1002,1", "voicemail:anna"),
        ("from-internal,79101234567,1", "number:79101234567"),
        ("ivr-main,s,1", "ivr:ivr-main"),
    ],
)
def test_no_answer_destinations_both_ways(destination: str, noanswer: str) -> None:
    assert WHERE.noanswer(destination) == noanswer
    back = "app-blackhole,hangup,1" if noanswer == "hangup" else destination
    assert WHERE.destination(noanswer) == back


@pytest.mark.parametrize(
    "destination",
    ["nonsense", "a,b", "app-blackhole,System(rm),1", "ext-local,vmu9999,1", "x;y,s,1", "c,${X},1"],
)
def test_destinations_the_bridge_cannot_render_are_422(destination: str) -> None:
    with pytest.raises(IssabelError) as refused:
        WHERE.noanswer(destination)
    assert (refused.value.status, refused.value.source) == (422, "destination_if_no_answer")


def test_values_are_strings_as_issabel_gives_them() -> None:
    assert strings({"a": 1, "b": [2, "x"], "c": None, "d": True, "e": False, "f": {"g": 0}}) == {
        "a": "1",
        "b": ["2", "x"],
        "c": "",
        "d": "1",
        "e": "",
        "f": {"g": "0"},
    }


@pytest.mark.parametrize(
    ("given", "apply"),
    [({}, True), ({"reload": True}, True), ({"reload": "1"}, True), ({"reload": 0}, False)]
    + [({"reload": "false"}, False), ({"reload": False}, False), ({"reload": ""}, False)],
)
def test_reload(given: dict[str, object], apply: bool) -> None:
    assert body.reload(dict(given)) is apply


def test_nested_json_is_flattened_into_dotted_names() -> None:
    assert body.flatten({"recording": {"inbound_external": "always"}, "a": {}, "b": [1]}) == {
        "recording.inbound_external": "always",
        "a": {},
        "b": [1],
    }


async def test_tokens_of_another_key_or_kind_are_refused() -> None:
    from bridge.api.issabel.tokens import Tokens
    from bridge.store.logins import Login

    kit = Tokens(None, "lab")
    kit._key = b"k" * 64
    login = Login(3, "lab", "admin", "", ("issabel",), None, None)  # type: ignore[arg-type]
    issued = await kit.issue(login)
    claims = await kit.read(issued["access_token"], "access")
    assert claims is not None and (claims.login_id, claims.name) == (3, "admin")
    assert await kit.read(issued["access_token"], "refresh") is None
    assert await kit.read(issued["refresh_token"], "access") is None
    forged = jwt.encode(
        {"typ": "access", "sub": "3", "data": {"name": "admin"}, "iat": 1, "exp": 2**40}, b"x" * 64
    )
    assert await kit.read(forged, "access") is None
    unsigned = jwt.encode(
        {"typ": "access", "sub": "3", "data": {"name": "admin"}, "iat": 1, "exp": 2**40},
        None,
        algorithm="none",
    )
    assert await kit.read(unsigned, "access") is None
    assert await kit.read("a" * 5000, "access") is None


def test_a_disabled_number_is_rendered_to_refuse_its_calls() -> None:
    from bridge.provision.render import DIALPLAN_FILE, Target, render

    users = [User("ivanov", "Ivan", "1001", source="api", provisioned=True, secret="s3cret-pass")]
    number = Number("74957654321", "Main", "user", "ivanov", source="api", provisioned=True)
    on = render(Snapshot(users, [], [number]), Target()).files[DIALPLAN_FILE]
    off = render(Snapshot(users, [], [replace(number, disabled=True)]), Target()).files[
        DIALPLAN_FILE
    ]
    assert "exten => 74957654321,1,Gosub(crm-bridge-screen,s,1)" in on
    assert (
        "exten => 74957654321,1,Hangup(21)" in off
        and "Goto(crm-bridge-extensions,1001"
        not in off.split("[crm-bridge-numbers]")[1].split("[")[0]
    )
