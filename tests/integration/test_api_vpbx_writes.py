"""The VPBX dialect's writes (`/crmapi/v1`: employees, departments, number routes and
switches, DND, the black list) end to end: each answer's status and body, what the fake
Asterisk was asked, what the directory view knows at once, and the stored-not-applied and
refused paths."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from structlog.testing import capture_logs

from bridge.devtools.fake_ami import Headers
from bridge.provision.render import DIALPLAN_FILE, PJSIP_FILE
from bridge.store import directory as store
from bridge.store.directory import Number, User
from tests.support.writes import PBX, Lab, call, lab

pytestmark = pytest.mark.integration
__all__ = ["lab"]

API = "/crmapi/v1"
MAIN = "74957654321"


async def vpbx(lab: Lab, method: str, path: str, status: int, **kw: Any) -> Any:
    key = lab.keys.get("crm") or await lab.key("crm")
    headers = {"X-API-KEY": key, **kw.pop("headers", {})}
    return await call(lab, method, f"{API}/{path}", status, headers=headers, **kw)


async def seed(lab: Lab) -> None:
    """A phone the bridge provisions (as the Issabel API makes one), an employee Asterisk's
    config names, a company number routed to the first."""
    await store.upsert_user(
        lab.pool,
        PBX,
        User("1001", "Ivan Petrov", "1001", source="api", provisioned=True, secret="s3cret-pass"),
    )
    await store.upsert_user(lab.pool, PBX, User("1002", "Olga", "1002", source="pbx"))
    await store.upsert_number(lab.pool, PBX, Number(MAIN, "Main line", "user", "1001"))
    await lab.prov.apply("seed")
    lab.ami.actions.clear()


# ------------------------------------------------------------------ employees


async def test_an_employee_is_added_seen_at_once_and_never_recorded_when_asked(lab: Lab) -> None:
    await seed(lab)
    body = await vpbx(
        lab,
        "POST",
        "users",
        200,
        json={
            "name": "Anna Smirnova",
            "email": "anna@example.com",
            "mobile": "+7 900 800-44-55",
            "telnum": "84957650002",
            "role": "user",
            "password": "ignored",
            "record": False,
        },
    )
    assert body == {
        "login": "u1003",
        "name": "Anna Smirnova",
        "position": "Manager",
        "email": "anna@example.com",
        "ext": "1003",
        "telnum": "74957650002",
        "role": "user",
        "mobile": "79008004455",
        "mobile_redirect": {"enabled": False},
        "record": False,
    }
    assert await vpbx(lab, "GET", "users/u1003", 200) == body
    assert lab.view.logins["1003"] == "u1003"
    assert lab.agi.resolve("u1003") == "1003" and lab.agi.resolve("74957650002") == "1003"
    assert lab.asterisk.astdb == {"/crm-bridge/norecord/1003": "1"}
    # nothing of Asterisk's config changed: an employee without a phone of the bridge's
    assert lab.actions("Reload") == []

    again = await vpbx(lab, "POST", "users", 400, json={"name": "X", "login": "u1003"})
    assert again == {"message": "Validation error: login: 'u1003' exists"}


async def test_an_edit_changes_only_what_is_sent_and_moves_the_phone(lab: Lab) -> None:
    await seed(lab)
    body = await vpbx(lab, "PATCH", "users/1001", 200, json={"ext": "1010", "position": "Boss"})
    assert (body["login"], body["ext"], body["name"], body["position"]) == (
        "1001",
        "1010",
        "Ivan Petrov",
        "Boss",
    )
    assert "[1010]" in lab.read(PJSIP_FILE) and "[1001]" not in lab.read(PJSIP_FILE)
    assert set(lab.asterisk.phones["res_pjsip.so"]) == {"1010"}
    assert lab.view.logins == {"1010": "1001", "1002": "1002"}
    # a stored field can be emptied
    cleared = await vpbx(lab, "PUT", "users/1001", 200, json={"position": ""})
    assert cleared["position"] == ""
    assert await vpbx(lab, "PUT", "users/nobody", 404, json={"name": "x"}) == {
        "message": "User not found"
    }


async def test_deleting_an_employee_takes_them_out_of_groups_and_astdb(lab: Lab) -> None:
    await seed(lab)
    group = await vpbx(
        lab, "POST", "groups", 200, json={"name": "Sales", "users": [{"login": "1001"}, "1002"]}
    )
    await vpbx(lab, "DELETE", "users/1001/dnd", 204)
    assert lab.asterisk.astdb == {"/crm-bridge/dnd/1001": "1"}

    assert await vpbx(lab, "DELETE", "users/1001", 204) is None

    assert "1001" not in lab.view.logins
    assert lab.asterisk.astdb == {}
    assert "1001" not in lab.asterisk.phones["res_pjsip.so"]
    after = await vpbx(lab, "GET", f"groups/{group['id']}", 200)
    assert [u["login"] for u in after["users"]] == ["1002"]
    # Asterisk's own employee comes back with the next sync: not deleted here
    refused = await vpbx(lab, "DELETE", "users/1002", 400)
    assert "learnt from Asterisk's own config" in refused["message"]


async def test_dnd_state_is_whether_the_employee_receives_calls(lab: Lab) -> None:
    """6.9: `state` is "status of receiving calls"; PUT enables receiving calls (DND off),
    DELETE disables it (DND on: the AstDB key the dialplan reads)."""
    await seed(lab)
    assert await vpbx(lab, "GET", "users/1001/dnd", 200) == {"state": True}
    assert await vpbx(lab, "DELETE", "users/1001/dnd", 204) is None
    assert lab.actions("DBPut")[-1]["Family"] == "crm-bridge/dnd"
    assert lab.asterisk.astdb == {"/crm-bridge/dnd/1001": "1"}
    assert await vpbx(lab, "GET", "users/1001/dnd", 200) == {"state": False}
    assert await vpbx(lab, "PUT", "users/1001/dnd", 204) is None
    assert lab.asterisk.astdb == {}
    assert await vpbx(lab, "GET", "users/1001/dnd", 200) == {"state": True}
    await vpbx(lab, "POST", "users/1001/dnd", 204, json={"state": False})
    assert lab.asterisk.astdb == {"/crm-bridge/dnd/1001": "1"}
    await vpbx(lab, "DELETE", "users/1001/dnd", 204, json={"state": True})
    assert lab.asterisk.astdb == {}
    assert await vpbx(lab, "GET", "users/nobody/dnd", 404) == {"message": "User not found"}


# ------------------------------------------------------------------ departments


async def test_a_department_becomes_a_ring_group_asterisk_runs(lab: Lab) -> None:
    await seed(lab)
    body = await vpbx(
        lab,
        "POST",
        "groups",
        200,
        json={
            "name": "Supply department",
            "call_order": "EVENLY",
            "call_duration": 10,
            "advanced": "off",
            "timeout": {"time": 30, "target": "user", "user": "1002"},
            "users": [
                {"login": "1001", "calls_enable": True},
                {"login": "1002", "calls_enable": False},
            ],
        },
    )
    group_id = body["id"]
    assert body == {
        "id": group_id,
        "name": "Supply department",
        "ext": "600",
        "kind": "ringgroup",
        "call_order": "ALL",  # EVENLY is rendered as ringall
        "call_duration": 0,
        "users": [
            {
                "login": "1001",
                "name": "Ivan Petrov",
                "calls_enable": True,
                "group_head": False,
                "is_absence_active": False,
                "is_forwarding_disabled": False,
            }
        ],
        "timeout": {"time": 30, "target": "user", "user": "1002"},
        "advanced": "off",
        "queue_position": False,
    }
    dialplan = lab.read(DIALPLAN_FILE)
    assert "exten => 600,1,Gosub(crm-bridge-dial-group,600,1(ringall,30,PJSIP,1001))" in dialplan
    assert " same => n,Goto(crm-bridge-extensions,1001,1)" not in dialplan  # 1002 is not ours
    assert " same => n,Goto(from-internal,1002,1)" in dialplan
    assert lab.view.groups["600"] == "Supply department"

    edited = await vpbx(
        lab,
        "PATCH",
        f"groups/{group_id}",
        200,
        json={
            "call_order": "BYORDER",
            "call_duration": 15,
            "ext": "610",
            "users": ["1001", "1002"],
        },
    )
    assert (edited["id"], edited["ext"], edited["call_order"], edited["call_duration"]) == (
        group_id,
        "610",
        "BYORDER",
        15,
    )
    assert edited["timeout"] == {"time": 30, "target": "user", "user": "1002"}
    assert "exten => 610,1,Gosub(crm-bridge-dial-group,610,1(hunt,15,PJSIP,1001&1002))" in (
        lab.read(DIALPLAN_FILE)
    )
    assert lab.view.groups.get("600") is None and lab.view.groups["610"] == "Supply department"

    assert await vpbx(lab, "DELETE", f"groups/{group_id}", 204) is None
    assert "610" not in lab.read(DIALPLAN_FILE)
    assert await vpbx(lab, "GET", f"groups/{group_id}", 404) == {"message": "Group not found"}


@pytest.mark.parametrize(
    ("sent", "message"),
    [
        ({}, "name: required"),
        (
            {"name": "X", "call_order": "RANDOM"},
            "call_order: one of ALL, EVENLY, BYORDER, WATERFALL",
        ),
        ({"name": "X", "call_duration": 7}, "call_duration: one of 5, 10, 15, 20, 25, 30"),
        ({"name": "X", "timeout": {"time": 45}}, "timeout.time: one of 15, 30, 60, 120, 300, 600"),
        ({"name": "X", "timeout": "soon"}, "timeout: must be an object"),
        (
            {"name": "X", "users": [{"login": "ghost"}]},
            "users[0].login: 'ghost' is not an employee",
        ),
        ({"name": "X", "ext": "1001"}, "ext: 1001 is '1001''s extension"),
        ({"name": "X", "ext": "6x0"}, "ext: '6x0' is not 1 to 20 digits"),
        (
            {"name": "X", "advanced": "callback"},
            "advanced: only off (the PBX has no busy message or callback of its own)",
        ),
        (
            {"name": 'Evil"; [x]'},
            "has '\"', ';', '[', ']', which Asterisk's config would read as syntax",
        ),
        ({"name": "Evil\nexten => _X.,1,System(rm)"}, "name: at most 200 printable characters"),
    ],
)
async def test_bad_departments_are_400_with_the_reason(
    lab: Lab, sent: dict[str, Any], message: str
) -> None:
    await seed(lab)
    body = await vpbx(lab, "POST", "groups", 400, json=sent)
    assert message in body["message"]
    assert lab.changes() == []


# ------------------------------------------------------------------ numbers


async def test_a_number_is_routed_and_switched_off_and_on(lab: Lab) -> None:
    await seed(lab)
    group = await vpbx(lab, "POST", "groups", 200, json={"name": "Sales", "users": ["1001"]})
    body = await vpbx(
        lab,
        "POST",
        f"telnums/{MAIN}",
        200,
        json={"type": "group", "group": "Sales", "greeting": False},
    )
    assert (body["telnum"], body["type"], body["group"], body["group_name"], body["disabled"]) == (
        MAIN,
        "group",
        group["id"],
        "Sales",
        False,
    )
    dialplan = lab.read(DIALPLAN_FILE)
    assert f"exten => {MAIN},1,Gosub(crm-bridge-screen,s,1)" in dialplan
    assert " same => n,Goto(crm-bridge-extensions,600,1)" in dialplan

    assert await vpbx(lab, "DELETE", f"telnums/{MAIN}/enabled", 204) is None
    assert f"exten => {MAIN},1,Hangup(21)" in lab.read(DIALPLAN_FILE)
    assert (await vpbx(lab, "GET", f"telnums/{MAIN}", 200))["disabled"] is True
    assert await vpbx(lab, "PUT", f"telnums/{MAIN}/enabled", 204) is None
    assert f"exten => {MAIN},1,Gosub(crm-bridge-screen,s,1)" in lab.read(DIALPLAN_FILE)

    ivr = await vpbx(
        lab,
        "POST",
        "telnums/+7 495 765-43-21",
        200,
        json={"type": "ivr", "ivr": {"name": "main-menu"}},
    )
    assert ivr["type"] == "ivr" and ivr["ivr"]["name"] == "main-menu"
    assert " same => n,Goto(main-menu,s,1)" in lab.read(DIALPLAN_FILE)
    assert lab.view.number_names[MAIN] == "Main line"

    assert await vpbx(
        lab, "POST", "telnums/74950000000", 404, json={"type": "user", "user": "1001"}
    ) == {"message": "Number not found"}
    bad = await vpbx(lab, "POST", f"telnums/{MAIN}", 400, json={"type": "ivr", "ivr": "x,s,1)"})
    assert "is not a context" in bad["message"]
    bad = await vpbx(lab, "POST", f"telnums/{MAIN}", 400, json={"type": "fax"})
    assert bad["message"].startswith("Validation error: type: one of user, group, ivr")


# ------------------------------------------------------------------ black list


async def test_the_black_list_and_anonymous_callers(lab: Lab) -> None:
    await seed(lab)
    assert await vpbx(lab, "GET", "blacklist/telnums", 200) == []
    await vpbx(
        lab,
        "POST",
        "blacklist/telnums",
        204,
        json={"telnum": "+7 (910) 123-45-67", "comment": "Spam"},
    )
    await vpbx(
        lab,
        "POST",
        "blacklist/telnums",
        204,
        json=[{"telnum": "7900800*"}, {"telnum": ["74951112233"], "comment": "x"}],
    )
    assert await vpbx(lab, "GET", "blacklist/telnums?with=statistics", 200) == [
        {"telnum": "74951112233", "comment": "x"},
        {"telnum": "7900800*", "comment": ""},
        {"telnum": "79101234567", "comment": "Spam"},
    ]
    assert lab.asterisk.astdb["/crm-bridge/blacklist/89101234567"] == "79101234567"
    assert lab.asterisk.astdb["/crm-bridge/blacklist-prefix/7900800"] == "7900800*"
    # a multipart form is one entry, as a form-encoded body is
    form = aiohttp.FormData({"telnum": "74951234567", "comment": "form"}, default_to_multipart=True)
    await vpbx(lab, "POST", "blacklist/telnums", 204, data=form)
    listed = await vpbx(lab, "GET", "blacklist/telnums", 200)
    assert {"telnum": "74951234567", "comment": "form"} in listed
    await vpbx(lab, "DELETE", "blacklist/telnums?telnum=74951234567", 204)

    await vpbx(
        lab, "DELETE", "blacklist/telnums", 204, json={"telnum": ["89101234567", "7900800*"]}
    )
    await vpbx(lab, "DELETE", "blacklist/telnums?telnum=74951112233", 204)
    assert await vpbx(lab, "GET", "blacklist/telnums", 200) == []
    assert lab.asterisk.astdb == {}
    assert await vpbx(lab, "DELETE", "blacklist/telnums", 404, json={"telnum": "79101234567"}) == {
        "message": "Number not found"
    }
    bad = await vpbx(lab, "POST", "blacklist/telnums", 400, json={"telnum": "12"})
    assert bad == {"message": "Validation error: '12' has 2 digits (3 to 15)"}
    bad = await vpbx(lab, "POST", "blacklist/telnums", 400, json={"telnum": "7910;DROP"})
    assert "is not a phone number or a range" in bad["message"]

    assert await vpbx(lab, "GET", "blacklist/block-anonymous", 200) == {"state": False}
    await vpbx(lab, "POST", "blacklist/block-anonymous", 204)
    assert lab.asterisk.astdb == {"/crm-bridge/settings/block-anonymous": "1"}
    assert await vpbx(lab, "GET", "blacklist/block-anonymous", 200) == {"state": True}
    await vpbx(lab, "DELETE", "blacklist/block-anonymous", 204)
    assert await vpbx(lab, "GET", "blacklist/block-anonymous", 200) == {"state": False}


# ------------------------------------------------------------------ Asterisk away, or refusing


async def test_while_asterisk_is_away_writes_are_stored_and_say_so(lab: Lab) -> None:
    await seed(lab)
    lab.ami_up = False
    body = await vpbx(lab, "POST", "groups", 202, json={"name": "Night", "users": ["1001"]})
    assert body["message"].startswith("stored, not applied: Asterisk is not reachable over AMI")
    assert body["name"] == "Night" and lab.view.groups[body["ext"]] == "Night"
    dnd = await vpbx(lab, "DELETE", "users/1001/dnd", 202)
    assert dnd == {"message": dnd["message"]} and "stored, not applied" in dnd["message"]
    assert await vpbx(lab, "GET", "users/1001/dnd", 200) == {"state": False}
    assert lab.ami.actions == []

    lab.ami_up = True
    await lab.prov.on_login()
    assert f"exten => {body['ext']},1," in lab.read(DIALPLAN_FILE)
    assert lab.asterisk.astdb == {"/crm-bridge/dnd/1001": "1"}


async def test_a_change_asterisk_refuses_is_undone_and_answered_502(lab: Lab) -> None:
    await seed(lab)
    lab.asterisk.refuse["pbx_config.so"] = "A reload is in progress"
    body = await vpbx(lab, "POST", "groups", 502, json={"name": "Sales", "users": ["1001"]})
    assert body["message"].startswith(
        "Asterisk did not take the change, so it is undone: not applied: reload of "
        "pbx_config.so refused: A reload is in progress; the previous files are back"
    )
    assert await vpbx(lab, "GET", "groups", 200) == {
        "items": [],
        "info": {"search": "", "total": 0, "start": 0, "limit": 0},
    }
    assert "600" not in lab.view.groups
    assert "600" not in lab.read(DIALPLAN_FILE)

    renamed = await vpbx(lab, "PATCH", "users/1001", 502, json={"name": "Ivan Ivanov"})
    assert "it is undone" in renamed["message"]
    assert (await vpbx(lab, "GET", "users/1001", 200))["name"] == "Ivan Petrov"
    assert lab.asterisk.phones["res_pjsip.so"]["1001"][0] == '"Ivan Petrov" <1001>'


async def test_without_provisioning_writes_are_503(lab: Lab) -> None:
    from bridge.provision import PROVISIONING

    lab.server.app._state.pop(PROVISIONING)  # as a bridge that has none wired
    assert await vpbx(lab, "POST", "groups", 503, json={"name": "X"}) == {
        "message": "provisioning is not available on this bridge"
    }


# ------------------------------------------------------------------ hostile input


@pytest.mark.parametrize(
    ("method", "path", "kw"),
    [
        ("POST", "users", {"data": b"{not json", "headers": {"Content-Type": "application/json"}}),
        ("POST", "users", {"json": ["a", "list"]}),
        ("POST", "users", {"json": {"name": ["x"]}}),
        ("POST", "users", {"json": {"name": "X", "ext": 1.5}}),
        ("POST", "users", {"json": {"name": "X", "record": "maybe"}}),
        ("POST", "users", {"json": {"name": "X", "login": "a/b"}}),
        ("POST", "users", {"json": {"name": "X" * 5000}}),
        ("PATCH", "users/1001", {"json": {"name": "Ivan\r\n[1002]"}}),
        ("PATCH", "users/1001", {"json": {"ext": "1001; DROP TABLE directory_users"}}),
        ("POST", "groups", {"json": {"name": "X", "users": "1001"}}),
        (
            "POST",
            "groups",
            {"json": {"name": "X", "timeout": {"target": "group", "group": "nope"}}},
        ),
        ("POST", f"telnums/{MAIN}", {"json": {"type": "user", "user": {"login": "1001"}}}),
        ("POST", "blacklist/telnums", {"json": {"telnum": {"a": 1}}}),
        (
            "POST",
            "blacklist/telnums",
            {"data": b"[1, 2", "headers": {"Content-Type": "application/json"}},
        ),
        ("PUT", "users/1001/dnd", {"json": {"state": "sometimes"}}),
    ],
)
async def test_malformed_writes_are_400_never_5xx(
    lab: Lab, method: str, path: str, kw: dict[str, Any]
) -> None:
    await seed(lab)
    body = await vpbx(lab, method, path, 400, **kw)
    assert set(body) == {"message"} and body["message"]
    assert lab.changes() == []
    assert await vpbx(lab, "GET", "users/1001", 200)


async def test_a_huge_body_is_413(lab: Lab) -> None:
    await seed(lab)
    body = await vpbx(lab, "POST", "users", 413, json={"name": "x" * 200_000})
    assert body == {"message": "Request body too large"}


async def test_every_reader_of_the_directory_sees_a_write_at_once(lab: Lab) -> None:
    """The tracker's `user`/`groupRealName`, the outbox's `telnum`/`telnum_name` and the
    AGI `responsible` routing read the view this process reloads after each write."""
    from bridge.crm.outbox_rows import OutboxRows
    from bridge.tracker.tracker import CallTracker

    await seed(lab)
    tracker = CallTracker(["PJSIP/trunk-*"], ["PJSIP/*"])
    lab.view.attach(tracker)
    view = lab.view
    outbox = OutboxRows(PBX, number_names=view.number_names, direct_numbers=view.direct_numbers)

    anna = {"name": "Anna", "login": "anna", "ext": "1020", "telnum": "74957650020"}
    await vpbx(lab, "POST", "users", 200, json=anna)
    group = await vpbx(
        lab, "POST", "groups", 200, json={"name": "Night shift", "ext": "650", "users": ["anna"]}
    )
    await vpbx(
        lab,
        "POST",
        f"telnums/{MAIN}",
        200,
        json={"type": "group", "group": group["id"], "name": "Ads line"},
    )

    assert tracker.users["1020"] == "anna"
    assert tracker.groups["650"] == "Night shift"
    assert outbox.number_names[MAIN] == "Ads line"
    assert outbox.direct_numbers["1020"] == "74957650020"
    assert lab.agi.resolve("anna") == "1020"


async def test_members_are_added_and_removed_in_bulk(lab: Lab) -> None:
    await seed(lab)
    await vpbx(lab, "POST", "users", 200, json={"name": "Anna", "login": "anna", "ext": "1020"})
    group = await vpbx(lab, "POST", "groups", 200, json={"name": "Sales", "users": ["1002"]})
    path = f"groups/{group['id']}/users"
    assert await vpbx(lab, "PUT", path, 204, json={"add": ["1001", "anna"], "position": 0}) is None
    users = await vpbx(lab, "GET", path, 200)
    assert [u["login"] for u in users["items"]] == ["1001", "anna", "1002"]
    await vpbx(lab, "PUT", path, 204, json={"calls_disable": ["anna"], "remove": ["1002"]})
    assert [u["login"] for u in (await vpbx(lab, "GET", path, 200))["items"]] == ["1001"]
    assert "(ringall,120,PJSIP,1001))" in lab.read(DIALPLAN_FILE)
    bad = await vpbx(lab, "PUT", path, 400, json={"add": ["ghost"]})
    assert bad == {"message": "Validation error: add[0]: 'ghost' is not an employee"}


async def test_an_extension_change_astdb_cannot_follow_is_kept_and_said(lab: Lab) -> None:
    """The DND key follows a new extension; when AstDB cannot be read the change stands
    (it is committed and applied) and the log says why the key did not follow."""
    await seed(lab)
    await vpbx(lab, "DELETE", "users/1001/dnd", 204)

    def unreadable(headers: Headers) -> list[str]:
        aid = headers.get("ActionID", "")
        return [f"Response: Error\r\nActionID: {aid}\r\nMessage: Database is locked\r\n"]

    lab.ami.respond_with("DBGetTree", unreadable)
    with capture_logs() as logs:
        body = await vpbx(lab, "PATCH", "users/1001", 200, json={"ext": "1010"})
    assert body["ext"] == "1010" and lab.view.logins["1010"] == "1001"
    (warning,) = [e for e in logs if e["event"] == "astdb_not_synced"]
    assert "Database is locked" in warning["error"]
    assert lab.asterisk.astdb == {"/crm-bridge/dnd/1001": "1"}, "left as it was"


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("{not json", "not valid JSON"),
        ("[" * 5000, "not valid JSON"),  # nested deeper than the parser goes
        ('"\\ud800"', "a JSON object is expected"),
    ],
)
async def test_a_body_that_is_no_json_object_is_a_400(lab: Lab, raw: str, problem: str) -> None:
    json_type = {"Content-Type": "application/json"}
    answer = await vpbx(lab, "POST", "users", 400, data=raw, headers=json_type)
    assert answer["message"] == f"Validation error: body: {problem}"
