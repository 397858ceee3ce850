"""The Issabel pbxapi dialect (`/pbxapi`) as its clients use it: JWT logins with expiry and
renewal, extensions and ring groups read and written, each write seen by the directory view
at once and applied to the fake Asterisk (or stored, or undone), in Issabel's shapes."""

from __future__ import annotations

from typing import Any

import aiohttp
import jwt
import pytest

from bridge.api.issabel import tokens
from bridge.provision.render import DIALPLAN_FILE, PJSIP_FILE
from bridge.store import directory as store
from bridge.store.directory import Group, User
from tests.support.writes import PASSWORD, Lab, call, lab

pytestmark = pytest.mark.integration
__all__ = ["lab"]

API = "/pbxapi"
FORBIDDEN = {
    "status": "fail",
    "errors": [{"status": "403", "detail": "Forbidden: no valid access token"}],
}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def issabel(lab: Lab, method: str, path: str, status: int, token: str, **kw: Any) -> Any:
    return await call(lab, method, f"{API}/{path}", status, headers=bearer(token), **kw)


# ------------------------------------------------------------------ authentication


async def test_authenticate_gives_hs256_tokens_of_the_pbx_secret(lab: Lab) -> None:
    await lab.login("admin")
    body = await call(
        lab, "POST", f"{API}/authenticate", 200, data={"user": "admin", "password": PASSWORD}
    )
    assert list(body) == ["access_token", "expires_in", "refresh_token", "token_type"]
    assert (body["expires_in"], body["token_type"]) == (3600, "Bearer")
    secret = await lab.pool.fetchval("SELECT secret FROM token_secrets WHERE pbx_id = 'lab'")
    assert len(secret) == 64
    claims = jwt.decode(body["access_token"], bytes(secret), algorithms=["HS256"])
    assert claims["data"] == {"name": "admin"} and claims["exp"] - claims["iat"] == 3600
    assert jwt.get_unverified_header(body["access_token"])["alg"] == "HS256"
    # JSON and `username` are taken too; the token works
    again = await call(
        lab, "POST", f"{API}/authenticate", 200, json={"username": "admin", "password": PASSWORD}
    )
    assert await issabel(lab, "GET", "extensions", 200, again["access_token"]) == {
        "status": "success",
        "results": [],
    }
    # and multipart/form-data, as `curl -F` sends it
    form = aiohttp.FormData({"username": "admin", "password": PASSWORD}, default_to_multipart=True)
    multipart = await call(lab, "POST", f"{API}/authenticate", 200, data=form)
    assert multipart["token_type"] == "Bearer"


@pytest.mark.parametrize(
    "form",
    [
        {"user": "admin", "password": "wrong password"},
        {"user": "nobody", "password": PASSWORD},
        {"user": "admin"},
        {},
        {"user": "billing", "password": PASSWORD},  # a login of another dialect
    ],
)
async def test_wrong_credentials_are_403(lab: Lab, form: dict[str, str]) -> None:
    await lab.login("admin")
    await lab.login("billing", dialects=["billing"])
    body = await call(lab, "POST", f"{API}/authenticate", 403, data=form)
    assert body == {
        "status": "fail",
        "errors": [{"status": "403", "detail": "Invalid user or password"}],
    }


async def test_a_token_is_needed_everywhere_else(lab: Lab) -> None:
    token = await lab.token()
    other = jwt.encode(
        {"iat": 1, "exp": 2**40, "sub": "1", "typ": "access", "data": {"name": "admin"}}, b"k" * 64
    )
    for headers in (
        {},
        {"Authorization": "Bearer"},
        {"Authorization": f"Basic {token}"},
        {"Authorization": "Bearer not.a.token"},
        {"Authorization": f"Bearer {other}"},  # signed with another key
        {"Authorization": f"Bearer {token}x"},
    ):
        for path in ("extensions", "ringgroups/600", "extensions/1001"):
            assert await call(lab, "GET", f"{API}/{path}", 403, headers=headers) == FORBIDDEN
    await call(lab, "DELETE", f"{API}/extensions/1001", 403)


async def test_expiry_is_answered_200_expired_and_renewal_brings_new_tokens(
    lab: Lab, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [1_800_000_000.0]
    monkeypatch.setattr(tokens, "now", lambda: clock[0])
    await lab.login("admin")
    first = await call(
        lab, "POST", f"{API}/authenticate", 200, data={"user": "admin", "password": PASSWORD}
    )
    assert (await issabel(lab, "GET", "extensions", 200, first["access_token"]))[
        "status"
    ] == "success"

    clock[0] += 3600  # the access token's hour is over
    assert await issabel(lab, "GET", "extensions", 200, first["access_token"]) == {
        "status": "expired"
    }

    renewed = await call(
        lab,
        "GET",
        f"{API}/authenticate/renewtoken",
        200,
        params={"refresh_token": first["refresh_token"], "access_token": first["access_token"]},
    )
    assert renewed["status"] == "authorized" and renewed["token_type"] == "Bearer"
    assert renewed["expires_in"] == 3600
    assert (await issabel(lab, "GET", "extensions", 200, renewed["access_token"]))[
        "status"
    ] == "success"

    # a refresh token is no access token, nor the other way round
    await issabel(lab, "GET", "extensions", 403, renewed["refresh_token"])
    bad = {"refresh_token": renewed["access_token"]}
    assert await call(lab, "GET", f"{API}/authenticate/renewtoken", 403, params=bad) == {
        "status": "unauthorized"
    }
    # the refresh token lives a day
    clock[0] += 86400
    assert await call(
        lab,
        "GET",
        f"{API}/authenticate/renewtoken",
        200,
        params={"refresh_token": renewed["refresh_token"]},
    ) == {"status": "expired", "type": "refresh"}


async def test_a_removed_login_loses_its_tokens(lab: Lab) -> None:
    token = await lab.token("robot")
    await issabel(lab, "GET", "ringgroups", 200, token)
    await lab.pool.execute("DELETE FROM logins WHERE name = 'robot'")
    await issabel(lab, "GET", "ringgroups", 403, token)
    await lab.login("robot")  # the same name again is another login
    await issabel(lab, "GET", "ringgroups", 403, token)


# ------------------------------------------------------------------ extensions


async def test_an_extension_is_created_applied_and_seen_at_once(lab: Lab) -> None:
    token = await lab.token()
    async with lab.http.post(
        f"{API}/extensions",
        json={"name": "Some Name", "voicemail": "novm", "ringtimer": "30", "secret": "Secret.123"},
        headers=bearer(token),
    ) as r:
        assert r.status == 201, await r.text()
        assert r.headers["Location"] == str(lab.server.make_url(f"{API}/extensions/200"))
        body = await r.json()
    assert body == {
        "status": "success",
        "results": [
            {
                "extension": "200",
                "name": "Some Name",
                "tech": "pjsip",
                "dial": "PJSIP/200",
                "secret": "Secret.123",
                "context": "crm-bridge-phones",
                "ringtimer": "30",
                "voicemail": "novm",
                "recording_in_internal": "dontcare",
                "recording_in_external": "dontcare",
                "recording_out_internal": "dontcare",
                "recording_out_external": "dontcare",
            }
        ],
        "apply": "applied",
        "message": "Asterisk runs the change",
    }
    assert [a["Module"] for a in lab.actions("Reload")][:1] == ["res_pjsip.so"]
    assert lab.asterisk.phones["res_pjsip.so"]["200"] == ('"Some Name" <200>', "crm-bridge-phones")
    assert "password = Secret.123" in lab.read(PJSIP_FILE)
    # the tracker's names, AGI routing: at once
    assert lab.view.logins["200"] == "200" and lab.agi.resolve("200") == "200"

    listed = await issabel(lab, "GET", "extensions", 200, token)
    assert listed == {
        "status": "success",
        "results": [
            {
                "extension": "200",
                "name": "Some Name",
                "tech": "pjsip",
                "dial": "PJSIP/200",
                "secret": "Secret.123",
                "context": "crm-bridge-phones",
            }
        ],
    }
    one = await issabel(lab, "GET", "extensions/200?fields=*", 200, token)
    assert one["results"] == body["results"]
    some = await issabel(lab, "GET", "extensions/200?fields=ringtimer,nonsense", 200, token)
    assert list(some["results"][0]) == [*listed["results"][0], "ringtimer"]


async def test_put_creates_or_changes_only_what_is_sent(lab: Lab) -> None:
    token = await lab.token()
    async with lab.http.put(
        f"{API}/extensions/1005",
        json={"name": "Daniel", "secret": "unaclave99"},
        headers=bearer(token),
    ) as r:
        assert r.status == 201 and r.headers["Location"].endswith(f"{API}/extensions/1005")
    async with lab.http.put(
        f"{API}/extensions/1005",
        json={"recording": {"inbound_external": "always"}, "extension_options": {"ring_time": 25}},
        headers=bearer(token),
    ) as r:
        assert r.status == 200 and "Location" not in r.headers
        (result,) = (await r.json())["results"]
    assert (result["name"], result["secret"], result["ringtimer"]) == ("Daniel", "unaclave99", "25")
    assert result["recording_in_external"] == "always"
    stored = await store.user(lab.pool, "lab", "1005")
    assert stored is not None and (stored.record_in_external, stored.ring_time) == ("always", 25)
    assert "set_var = CRM_REC_IN_EXTERNAL=always" in lab.read(PJSIP_FILE)
    # a secret is made when none is given
    await issabel(lab, "PUT", "extensions/1006", 201, token, json={})
    made = await store.user(lab.pool, "lab", "1006")
    assert made is not None and made.name == "Extension" and len(made.secret) == 16


async def test_post_takes_the_next_free_number_or_the_one_given(lab: Lab) -> None:
    token = await lab.token()
    await store.upsert_user(lab.pool, "lab", User("1001", "A", "1001", source="pbx"))
    await store.upsert_user(lab.pool, "lab", User("1002", "B", "1002", source="pbx"))
    await store.upsert_group(lab.pool, "lab", Group(0, "ringgroup", "G", "1003", source="pbx"))
    body = await issabel(lab, "POST", "extensions", 201, token, json={"name": "C"})
    assert body["results"][0]["extension"] == "1004"  # 1003 is a ring group's
    given = await issabel(lab, "POST", "extensions", 201, token, json={"extension": "2000"})
    assert given["results"][0]["extension"] == "2000"
    assert await issabel(lab, "POST", "extensions", 409, token, json={"extension": "1003"}) == {
        "status": "fail",
        "errors": [{"status": "409", "detail": "Extension number already in use"}],
    }
    assert (await issabel(lab, "POST", "extensions/3000", 400, token, json={}))["errors"][0][
        "detail"
    ].startswith("We refuse to insert a record if a resource id is passed")
    assert await issabel(lab, "PUT", "extensions", 405, token, json={}) == {
        "status": "fail",
        "errors": [{"status": "405", "detail": "Unable to update. Missing record id"}],
    }
    assert await issabel(lab, "DELETE", "extensions", 405, token) == {
        "status": "fail",
        "errors": [{"status": "405", "detail": "Cannot delete if no ID is supplied"}],
    }
    assert await issabel(lab, "GET", "extensions/4000", 404, token) == {
        "status": "fail",
        "errors": [{"status": "404", "detail": "Record not found"}],
    }
    # Asterisk's own phone is not the bridge's to change
    own = await issabel(lab, "PUT", "extensions/1001", 409, token, json={"name": "X"})
    assert "Asterisk's own config" in own["errors"][0]["detail"]


async def test_delete_takes_comma_lists_all_or_nothing(lab: Lab) -> None:
    token = await lab.token()
    for ext in ("1005", "1006", "1007"):
        await issabel(lab, "PUT", f"extensions/{ext}", 201, token, json={"name": f"N{ext}"})
    missing = await issabel(lab, "DELETE", "extensions/1005,1099", 404, token)
    assert missing["errors"] == [{"status": "404", "detail": "Could not find a record to delete"}]
    assert {u.ext for u in await store.users(lab.pool, "lab")} == {"1005", "1006", "1007"}

    body = await issabel(lab, "DELETE", "extensions/1005,1006", 200, token)
    assert body == {
        "status": "success",
        "results": ["1005", "1006"],
        "apply": "applied",
        "message": "Asterisk runs the change",
    }
    assert set(lab.asterisk.phones["res_pjsip.so"]) == {"1007"}
    assert set(lab.view.logins) == {"1007"}


async def test_reload_false_stores_without_asking_asterisk(lab: Lab) -> None:
    token = await lab.token()
    lab.ami.actions.clear()
    body = await issabel(
        lab, "POST", "extensions", 201, token, json={"name": "Batch", "reload": False}
    )
    assert (body["apply"], body["message"]) == ("stored", "stored, not applied (reload=false)")
    await issabel(lab, "PUT", "extensions/200", 200, token, data={"name": "Batch 2", "reload": "0"})
    assert lab.changes() == [] and lab.read(PJSIP_FILE) == ""
    assert lab.view.logins == {"200": "200"}, "the directory view knows it already"
    assert await lab.prov.provisioner.pending()
    await lab.prov.catch_up()  # the leader's 30 s loop leaves what was kept for later
    assert lab.changes() == [] and lab.read(PJSIP_FILE) == ""
    await issabel(lab, "PUT", "extensions/200", 200, token, json={"reload": True})
    assert '"Batch 2" <200>' in lab.read(PJSIP_FILE)
    assert not await lab.prov.provisioner.pending()


async def test_asterisk_away_stores_and_says_so(lab: Lab) -> None:
    token = await lab.token()
    lab.ami_up = False
    body = await issabel(lab, "POST", "extensions", 201, token, json={"name": "Later"})
    assert body["apply"] == "stored"
    assert body["message"].startswith("stored, not applied: Asterisk is not reachable over AMI")
    lab.ami_up = True
    await lab.prov.on_login()
    assert '"Later" <200>' in lab.read(PJSIP_FILE)


async def test_a_refused_apply_is_an_error_and_the_write_is_undone(lab: Lab) -> None:
    token = await lab.token()
    await issabel(lab, "PUT", "extensions/1005", 201, token, json={"name": "Good"})
    lab.asterisk.refuse["res_pjsip.so"] = "Module not initialized"
    body = await issabel(lab, "PUT", "extensions/1005", 502, token, json={"name": "Bad"})
    (error,) = body["errors"]
    assert body["status"] == "error" and error["status"] == "502"
    assert error["detail"].startswith(
        "Asterisk did not take the change, so it is undone: not applied: reload of "
        "res_pjsip.so refused: Module not initialized"
    )
    assert (await issabel(lab, "GET", "extensions/1005", 200, token))["results"][0][
        "name"
    ] == "Good"
    created = await issabel(lab, "POST", "extensions", 502, token, json={"name": "New"})
    assert created["errors"][0]["status"] == "502"
    assert [u.ext for u in await store.users(lab.pool, "lab")] == ["1005"]
    assert set(lab.view.logins) == {"1005"}


async def test_a_refused_change_of_a_learnt_ring_group_gives_it_back_to_asterisk(
    lab: Lab,
) -> None:
    """Undo is the row as it was, owner included: a group learnt from Asterisk's config and
    changed through the API stays Asterisk's when Asterisk refuses the change."""
    token = await lab.token()
    await store.upsert_user(lab.pool, "lab", User("200", "A", "200", source="pbx"))
    await store.upsert_group(lab.pool, "lab", Group(0, "ringgroup", "Sales", "600", source="pbx"))
    (before,) = await store.groups(lab.pool, "lab")
    lab.asterisk.refuse["pbx_config.so"] = "A reload is in progress"
    body = await issabel(
        lab, "PUT", "ringgroups/600", 502, token, json={"name": "Taken", "extension_list": "200"}
    )
    assert "it is undone" in body["errors"][0]["detail"]
    assert await store.groups(lab.pool, "lab") == [before]
    assert before.source == "pbx" and not before.provisioned


# ------------------------------------------------------------------ ring groups


async def test_ring_groups_are_written_with_issabel_fields(lab: Lab) -> None:
    token = await lab.token()
    for ext in ("200", "201"):
        await issabel(lab, "PUT", f"extensions/{ext}", 201, token, json={"name": f"E{ext}"})
    required = await issabel(lab, "POST", "ringgroups", 422, token, json={"name": "Sales"})
    assert required == {
        "status": "fail",
        "errors": [
            {"status": "422", "source": "extension_list", "detail": "Required field missing"}
        ],
    }
    async with lab.http.post(
        f"{API}/ringgroups",
        json={
            "description": "Sales",
            "strategy": "hunt",
            "ring_time": "15",
            "extension_list": ["200", "201"],
        },
        headers=bearer(token),
    ) as r:
        assert r.status == 201 and r.headers["Location"].endswith(f"{API}/ringgroups/600")
    assert "exten => 600,1,Gosub(crm-bridge-dial-group,600,1(hunt,15,PJSIP,200&201))" in lab.read(
        DIALPLAN_FILE
    )
    assert lab.view.groups["600"] == "Sales"
    listed = await issabel(lab, "GET", "ringgroups", 200, token)
    assert listed == {
        "status": "success",
        "results": [
            {
                "change_callerid": "default",
                "destination": "crm-bridge-extensions,600,1",
                "extension": "600",
                "extension_list": ["200", "201"],
                "fixed_callerid": "",
                "id": "600",
                "name": "Sales",
                "strategy": "hunt",
            }
        ],
    }
    full = (await issabel(lab, "GET", "ringgroups/600?fields=*", 200, token))["results"][0]
    assert (full["ring_time"], full["destination_if_no_answer"], full["announce_id"]) == (
        "15",
        "app-blackhole,hangup,1",
        "0",
    )

    changed = await issabel(
        lab,
        "PUT",
        "ringgroups/600",
        200,
        token,
        json={
            "name": "Sales team",
            "extension_list": "201-200",
            "destination_if_no_answer": "ext-local,vmu200,1",
        },
    )
    assert changed["results"][0]["extension_list"] == ["201", "200"]
    group = next(g for g in await store.groups(lab.pool, "lab") if g.ext == "600")
    assert (group.name, group.members, group.noanswer) == (
        "Sales team",
        ("201", "200"),
        "voicemail:200",
    )
    full = await issabel(lab, "GET", "ringgroups/600?fields=destination_if_no_answer", 200, token)
    assert full["results"][0]["destination_if_no_answer"] == "ext-local,vmu200,1"

    for bad, detail in (
        (
            {"strategy": "random"},
            "Not in list of allowed values (ringall, ringall-prim, hunt, hunt-prim, memoryhunt, "
            "memoryhunt-prim, firstavailable, firstnotonphone)",
        ),
        ({"ring_time": 301}, "Valid range: 1-300"),
        ({"extension_list": ["999"]}, "Not an extension of this PBX: 999"),
        (
            {"destination_if_no_answer": "macro-x,${EVIL},1"},
            "Not a destination the bridge can render",
        ),
    ):
        body = await issabel(lab, "PUT", "ringgroups/600", 422, token, json=bad)
        assert body["errors"][0]["detail"].startswith(detail), body
    assert (await issabel(lab, "POST", "ringgroups", 201, token, json={"extension_list": []}))[
        "results"
    ][0]["extension"] == "601"
    deleted = await issabel(lab, "DELETE", "ringgroups/600,601", 200, token)
    assert deleted["results"] == ["600", "601"]
    assert "600" not in lab.view.groups and "exten => 600" not in lab.read(DIALPLAN_FILE)


async def test_every_documented_strategy_is_kept_and_rung_as_its_nearest(lab: Lab) -> None:
    """Issabel's eight strategies are stored and shown as sent; Asterisk gets the nearest
    the bridge's dialplan rings: the -prim variants as their base, firstavailable and
    firstnotonphone as hunt (the first member that can take the call rings first)."""
    token = await lab.token()
    for ext in ("200", "201"):
        await issabel(lab, "PUT", f"extensions/{ext}", 201, token, json={"name": f"E{ext}"})
    bases = ("ringall", "hunt", "memoryhunt")
    rung = {name: base for base in bases for name in (base, f"{base}-prim")}
    rung |= {"firstavailable": "hunt", "firstnotonphone": "hunt"}
    for number, (strategy, base) in enumerate(rung.items(), start=600):
        sent = {"strategy": strategy, "extension_list": ["200", "201"]}
        await issabel(lab, "PUT", f"ringgroups/{number}", 201, token, json=sent)
        shown = await issabel(lab, "GET", f"ringgroups/{number}", 200, token)
        assert shown["results"][0]["strategy"] == strategy
        dial = f"exten => {number},1,Gosub(crm-bridge-dial-group,{number},1({base},20,"
        assert dial in lab.read(DIALPLAN_FILE), strategy
    await issabel(lab, "PUT", "ringgroups/600", 200, token, json={"strategy": "firstnotonphone"})
    shown = await issabel(lab, "GET", "ringgroups/600?fields=strategy", 200, token)
    assert shown["results"][0]["strategy"] == "firstnotonphone"
    assert "600,1(hunt,20,PJSIP,200&201))" in lab.read(DIALPLAN_FILE)


# ------------------------------------------------------------------ hostile input


@pytest.mark.parametrize(
    ("kw", "status", "detail"),
    [
        (
            {"data": b"{nope", "headers": {"Content-Type": "application/json"}},
            400,
            "Could not decode JSON",
        ),
        ({"json": [1, 2]}, 400, "Could not decode JSON: a JSON object is expected"),
        (
            {
                "data": b"\xff\xfe=\x00",
                "headers": {"Content-Type": "application/x-www-form-urlencoded"},
            },
            400,
            "Could not decode JSON: neither JSON nor form fields",
        ),
        ({"json": {"name": ["x"]}}, 400, "name: must be a string"),
        ({"json": {"ringtimer": "soon"}}, 422, "Only numeric values allowed"),
        ({"json": {"ringtimer": 9999}}, 422, "Valid range: 0-600"),
        ({"json": {"voicemail": "other"}}, 422, "Not in list of allowed values (novm, default)"),
        ({"json": {"tech": "iax2"}}, 422, "Not in list of allowed values (sip, pjsip"),
        (
            {"json": {"recording_in_internal": "yes"}},
            422,
            "Not in list of allowed values (always, dontcare, never)",
        ),
        ({"json": {"reload": "perhaps"}}, 422, "Not in list of allowed values (true, false, 1, 0)"),
        ({"json": {"name": 'Bob" <666>\n[evil]'}}, 400, "user '1005': name has a line break"),
        ({"json": {"name": "Bob;x"}}, 400, "user '1005': name has ';'"),
        ({"json": {"secret": "short"}}, 400, "user '1005': secret must be 8 to 128 letters"),
        (
            {"json": {"secret": "pass word;[x]\nallow=all"}},
            400,
            "user '1005': secret must be 8 to 128",
        ),
        ({"json": {"name": "x" * 300}}, 400, "name: at most 200 characters"),
        ({"json": {"name": "x" * 100_000}}, 413, "Request body too large"),
    ],
)
async def test_malformed_input_is_refused_never_5xx(
    lab: Lab, kw: dict[str, Any], status: int, detail: str, capsys: pytest.CaptureFixture[str]
) -> None:
    token = await lab.token()
    headers = {**bearer(token), **kw.pop("headers", {})}
    body = await call(lab, "PUT", f"{API}/extensions/1005", status, headers=headers, **kw)
    assert body["status"] == "fail"
    assert body["errors"][0]["detail"].startswith(detail), body
    assert await store.user(lab.pool, "lab", "1005") is None
    assert lab.changes() == []
    sent = kw.get("json")
    secret = sent.get("secret") if isinstance(sent, dict) else None
    if secret:
        assert secret not in str(body) and secret not in "".join(capsys.readouterr())


async def test_secrets_are_returned_to_clients_and_never_logged(
    lab: Lab, capsys: pytest.CaptureFixture[str]
) -> None:
    token = await lab.token()
    secret = "Very.Secret-9"
    await issabel(lab, "PUT", "extensions/1005", 201, token, json={"secret": secret})
    lab.asterisk.refuse["res_pjsip.so"] = "Module not initialized"
    await issabel(lab, "PUT", "extensions/1005", 502, token, json={"secret": secret + "x"})
    assert (await issabel(lab, "GET", "extensions", 200, token))["results"][0]["secret"] == secret
    out, err = capsys.readouterr()
    assert "api_request" in out and "provision_rolled_back" in out
    assert secret not in out + err
