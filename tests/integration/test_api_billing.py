"""The billing dialect (`/api`, the FusionPBX billing API) as its clients use it: login and
logout with Sanctum tokens, CDR arrays per domain, Laravel's status codes and bodies."""

from __future__ import annotations

import io
import re
from datetime import date, timedelta
from pathlib import Path

import pytest

from bridge.cli import build_parser
from bridge.store import logins
from tests.support.api import Api

pytestmark = pytest.mark.integration

EMAIL, PASSWORD = "billing@example.com", "correct horse battery"
# what every failure carries, as the API's documentation gives its error format
FAILED = {"success": False, "data": ""}
UNAUTHENTICATED = {"message": "Unauthenticated.", **FAILED}
INVALID = "The given data was invalid."

# Every field of a CDR object, in the order of the API's documentation.
CDR_FIELDS = (
    "xml_cdr_uuid domain_uuid extension_uuid sip_call_id domain_name accountcode direction "
    "default_language context caller_id_name caller_id_number caller_destination "
    "source_number destination_number start_epoch start_stamp answer_stamp answer_epoch "
    "end_epoch end_stamp duration mduration billsec billmsec bridge_uuid read_codec "
    "read_rate write_codec write_rate remote_media_ip network_addr record_path record_name "
    "leg originating_leg_uuid pdd_ms rtp_audio_in_mos last_app last_arg voicemail_message "
    "missed_call call_center_queue_uuid cc_side cc_member_uuid cc_queue_joined_epoch "
    "cc_queue cc_member_session_uuid cc_agent_uuid cc_agent cc_agent_type cc_agent_bridged "
    "cc_queue_answered_epoch cc_queue_terminated_epoch cc_queue_canceled_epoch "
    "cc_cancel_reason cc_cause waitsec conference_name conference_uuid conference_member_id "
    "digits_dialed pin_number hangup_cause hangup_cause_q850 sip_hangup_disposition xml"
).split()


async def make_login(api: Api, name: str = EMAIL, **kw) -> logins.Login:
    async with api.pool.acquire() as conn:
        return await logins.create_login(conn, "lab", name, PASSWORD, **kw)


async def log_in(api: Api, email: str = EMAIL, password: str = PASSWORD) -> str:
    async with api.http.post("/api/login", json={"email": email, "password": password}) as r:
        assert r.status == 201, await r.text()
        return str((await r.json())["token"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Accept": "application/json"}


async def test_login_gives_a_sanctum_token_and_the_user(api: Api) -> None:
    made = await make_login(api, display_name="Billing robot")
    async with api.http.post("/api/login", json={"email": EMAIL, "password": PASSWORD}) as r:
        assert r.status == 201
        body = await r.json()
    assert body["success"] is True
    assert re.fullmatch(r"\d+\|[A-Za-z0-9]{40}", body["token"])
    user = body["user"]
    assert list(user) == ["id", "name", "email", "email_verified_at", "created_at", "updated_at"]
    assert user["id"] == made.id and user["name"] == "Billing robot" and user["email"] == EMAIL
    assert user["email_verified_at"] is None
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", user["created_at"])
    # only hashes are kept: neither the password nor the token's secret is in the database
    dump = repr(await api.pool.fetch("SELECT * FROM logins")) + repr(
        await api.pool.fetch("SELECT * FROM login_tokens")
    )
    assert PASSWORD not in dump and body["token"].split("|")[1] not in dump
    assert "$argon2id$" in dump


async def test_a_form_body_logs_in_too(api: Api) -> None:
    await make_login(api)
    async with api.http.post("/api/login", data={"email": EMAIL, "password": PASSWORD}) as r:
        assert r.status == 201 and (await r.json())["success"] is True


@pytest.mark.parametrize(
    ("email", "password"),
    [(EMAIL, "wrong password"), ("nobody@example.com", PASSWORD), (EMAIL.upper(), PASSWORD)],
)
async def test_wrong_credentials_are_200_invalid_credentials(api: Api, email, password) -> None:
    """The original answers `response()->json([...])` without a status: 200."""
    await make_login(api)
    async with api.http.post("/api/login", json={"email": email, "password": password}) as r:
        assert r.status == 200
        assert await r.json() == {"message": "Invalid credentials.", **FAILED}


async def test_a_login_for_another_dialect_cannot_log_in_here(api: Api) -> None:
    await make_login(api, dialects=["issabel"])
    async with api.http.post("/api/login", json={"email": EMAIL, "password": PASSWORD}) as r:
        assert r.status == 200 and (await r.json())["success"] is False


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        (
            {},
            {
                "email": ["The email field is required."],
                "password": ["The password field is required."],
            },
        ),
        ({"email": "", "password": PASSWORD}, {"email": ["The email field is required."]}),
        (
            {"email": 5, "password": ["x"]},
            {
                "email": [
                    "The email must be a string.",
                    "The email must be a valid email address.",
                ],
                "password": ["The password must be a string."],
            },
        ),
        (
            {"email": "not an e-mail", "password": PASSWORD},
            {"email": ["The email must be a valid email address."]},
        ),
        ([EMAIL, PASSWORD], None),  # not an object: no input at all
        ("garbage{", None),
        ("[" * 5000, None),  # nested deeper than the parser goes
    ],
)
async def test_bad_login_input_is_laravel_422(api: Api, body, errors) -> None:
    if isinstance(body, str):
        kw: dict = {"data": body, "headers": {"Content-Type": "application/json"}}
    else:
        kw = {"json": body}
    async with api.http.post("/api/login", **kw) as r:
        assert r.status == 422
        answer = await r.json()
    assert answer["message"] == INVALID
    if errors is None:
        errors = {
            "email": ["The email field is required."],
            "password": ["The password field is required."],
        }
    assert answer["errors"] == errors


async def test_a_huge_body_is_refused_without_a_5xx(api: Api) -> None:
    async with api.http.post(
        "/api/login",
        data=io.BytesIO(b"{" + b" " * (2 << 20)),
        headers={"Content-Type": "application/json"},
    ) as r:
        assert r.status == 413 and "message" in await r.json()


async def test_protected_routes_need_a_live_billing_token(api: Api) -> None:
    made = await make_login(api)
    issabel_token = await logins.issue_token(api.pool, made, "issabel")
    key = await api.key("billing-key", dialects=["billing"])
    token = await log_in(api)
    tampered = token[:-1] + ("a" if token[-1] != "a" else "b")
    for headers in (
        {},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        bearer(""),
        bearer("garbage"),
        bearer("99999|" + "x" * 40),
        bearer(tampered),
        bearer(issabel_token),  # a token of the same login, made for another dialect
        bearer(key),  # an API key is not a login token
        {"Token": token},
    ):
        for method, path in (
            ("GET", "/api/calls?domain_name=lab"),
            ("GET", "/api/call_range?domain_name=lab&from=2026-01-01&to=2027-01-01"),
            ("POST", "/api/logout"),
        ):
            async with api.http.request(method, path, headers=headers) as r:
                assert r.status == 401, (headers, path)
                assert await r.json() == UNAUTHENTICATED
    async with api.http.get("/api/calls?domain_name=lab", headers=bearer(token)) as r:
        assert r.status == 200


async def test_logout_revokes_the_token_it_was_given(api: Api) -> None:
    await make_login(api)
    first, second = await log_in(api), await log_in(api)
    async with api.http.post("/api/logout", headers=bearer(first)) as r:
        assert r.status == 200
        assert await r.json() == {"message": "Logged out successfully.", "success": True}
    async with api.http.get("/api/calls?domain_name=lab", headers=bearer(first)) as r:
        assert r.status == 401 and await r.json() == UNAUTHENTICATED
    async with api.http.post("/api/logout", headers=bearer(first)) as r:
        assert r.status == 401
    async with api.http.get("/api/calls?domain_name=lab", headers=bearer(second)) as r:
        assert r.status == 200, "another client of the same login stays logged in"


async def test_removing_a_login_ends_its_sessions(api: Api) -> None:
    await make_login(api)
    token = await log_in(api)
    async with api.pool.acquire() as conn:
        assert await logins.remove_login(conn, "lab", EMAIL)
    async with api.http.get("/api/calls?domain_name=lab", headers=bearer(token)) as r:
        assert r.status == 401


async def test_register_is_closed(api: Api) -> None:
    body = {"name": "x", "email": EMAIL, "password": PASSWORD, "password_confirmation": PASSWORD}
    async with api.http.post("/api/register", json=body) as r:
        assert r.status == 403 and (await r.json())["success"] is False


def test_the_readme_says_register_is_closed_and_how_logins_are_made() -> None:
    """Whoever sets up a billing client reads README "Pull APIs": it says `/api/register`
    is closed and gives the command that makes a login, one the CLI takes as written."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = " ".join(readme.split("\n## Pull APIs\n", 1)[1].split("\n## ", 1)[0].split())
    assert "`POST /api/register` is closed" in section and "403" in section
    command = re.search(r"`crm-bridge (login add [^`]*)`", section)
    assert command is not None, "the README names the command that makes a login"
    words = command.group(1).replace("NAME", EMAIL).replace("FILE", "bridge.toml").split()
    args = build_parser().parse_args([*words, "--dialect", "billing"])
    assert (args.action, args.name, args.password_stdin) == ("add", EMAIL, True)


async def test_every_failure_comes_in_the_documented_error_format(api: Api) -> None:
    """`{"message": string, "success": bool, "data": string}` (and 422's `errors`)."""
    await make_login(api)
    token = await log_in(api)
    requests = [
        ("GET", "/api/calls?domain_name=lab", {}, 401),
        ("GET", "/api/nothing-here", bearer(token), 404),
        ("GET", "/api/login", {}, 405),
        ("GET", "/api/calls", bearer(token), 422),
        ("POST", "/api/register", {}, 403),
        ("POST", "/api/login?email=nobody@example.com&password=x", {}, 200),
    ]
    for method, path, headers, status in requests:
        async with api.http.request(method, path, headers=headers) as r:
            assert r.status == status, path
            body = await r.json()
        assert isinstance(body.pop("message"), str), path
        body.pop("errors", None)  # 422's
        assert body == FAILED, path
    huge = io.BytesIO(b"{" + b" " * (2 << 20))
    json_type = {"Content-Type": "application/json"}
    async with api.http.post("/api/login", data=huge, headers=json_type) as r:
        assert r.status == 413 and await r.json() == {"message": "Request body too large", **FAILED}


async def test_calls_answers_every_call_of_the_domain(api: Api) -> None:
    await make_login(api)
    token = await log_in(api)
    async with api.http.get("/api/calls?domain_name=lab", headers=bearer(token)) as r:
        assert r.status == 200 and r.content_type == "application/json"
        cdrs = await r.json()
    stored = await api.pool.fetchval(
        "SELECT count(*) FROM calls WHERE pbx_id = 'lab' AND status IS NOT NULL"
    )
    assert isinstance(cdrs, list) and len(cdrs) == stored > 20
    for c in cdrs:
        assert list(c) == CDR_FIELDS
        assert c["domain_name"] == "lab"
        assert c["direction"] in ("inbound", "outbound", "local")
        assert isinstance(c["duration"], int) and isinstance(c["billsec"], int)
        assert c["duration"] == c["billsec"] + c["waitsec"]
        assert c["start_epoch"].isdigit() and c["end_epoch"].isdigit()
        assert int(c["end_epoch"]) >= int(c["start_epoch"])
        assert c["missed_call"] == (c["direction"] == "inbound" and c["billsec"] == 0)
        assert c["hangup_cause"] and c["hangup_cause_q850"].isdigit()
        if c["answer_stamp"] is None:
            assert c["answer_epoch"] == "0" and c["billsec"] == 0
    starts = [int(c["start_epoch"]) for c in cdrs]
    assert starts == sorted(starts), "oldest first"
    assert len({c["xml_cdr_uuid"] for c in cdrs}) == len(cdrs)
    recorded = [c for c in cdrs if c["record_name"]]
    assert recorded and recorded[0]["record_path"] == "/var/spool/asterisk/monitor"


async def test_causes_of_the_recorded_calls(api: Api) -> None:
    await make_login(api)
    token = await log_in(api)
    async with api.http.get("/api/calls?domain_name=lab", headers=bearer(token)) as r:
        cdrs = await r.json()
    causes = {c["hangup_cause"] for c in cdrs}
    assert {
        "NORMAL_CLEARING",  # answered
        "NO_ANSWER",  # rang out (in_noanswer), 480 (out_unavailable_480)
        "USER_BUSY",  # in_busy, out_busy
        "ORIGINATOR_CANCEL",  # the caller gave up (in_caller_cancel, queue abandon)
        "UNALLOCATED_NUMBER",  # 404 (out_notfound)
        "NORMAL_CIRCUIT_CONGESTION",  # 503 (out_unavailable)
        "NO_USER_RESPONSE",  # carrier unreachable (out_trunk_down)
    } == causes


async def test_domain_name_is_required_and_names_this_pbx_only(api: Api) -> None:
    await make_login(api)
    token = await log_in(api)
    await api.pool.execute(
        "INSERT INTO calls (pbx_id, callid, born, direction, status, started_at, ended_at) "
        "VALUES ('other', 'x.1', call_day('x.1'), 'in', 'Success', now(), now())"
    )
    for query, errors in (
        ("", {"domain_name": ["The domain name field is required."]}),
        ("?domain_name=", {"domain_name": ["The domain name field is required."]}),
        ("?domain_name=other", {"domain_name": ["The selected domain name is invalid."]}),
        ("?domain_name=LAB", {"domain_name": ["The selected domain name is invalid."]}),
    ):
        async with api.http.get(f"/api/calls{query}", headers=bearer(token)) as r:
            assert r.status == 422, query
            assert await r.json() == {"message": INVALID, "errors": errors, **FAILED}
    async with api.http.get("/api/calls?domain_name=lab", headers=bearer(token)) as r:
        assert all(c["domain_name"] == "lab" for c in await r.json())
        assert "x.1" not in await r.text()


async def test_call_range_filters_on_the_end_both_bounds_included(api: Api) -> None:
    await make_login(api)
    token = await log_in(api)
    ends = await api.pool.fetch(
        "SELECT callid, ended_at FROM calls WHERE pbx_id = 'lab' AND status IS NOT NULL "
        "ORDER BY ended_at"
    )
    middle = ends[len(ends) // 2]["ended_at"]

    async def count(frm: str, to: str) -> int:
        url = "/api/call_range"
        params = {"domain_name": "lab", "from": frm, "to": to}
        async with api.http.get(url, params=params, headers=bearer(token)) as r:
            assert r.status == 200, await r.text()
            return len(await r.json())

    def iso(at) -> str:
        return at.isoformat().replace("+00:00", "Z")

    assert await count("2026-11-22", "2026-11-23") == len(ends)
    assert await count("2026-11-23", "2026-11-24") == 0
    assert await count("2026-11-22 00:00:00", "2026-11-22") == 0, "`to` is its midnight"
    assert await count(iso(middle), iso(middle)) == sum(e["ended_at"] == middle for e in ends)
    before = iso(middle - timedelta(microseconds=1))
    after = iso(middle + timedelta(microseconds=1))
    earlier = sum(e["ended_at"] < middle for e in ends)
    assert await count(iso(ends[0]["ended_at"]), before) == earlier
    assert await count(after, "2030-01-01") == sum(e["ended_at"] > middle for e in ends)
    # an offset is honoured: 14:20:17+03:00 is 11:20:17Z
    local = (middle + timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M:%S.%f+03:00")
    assert await count(local, local) == sum(e["ended_at"] == middle for e in ends)
    assert await count("2030-01-01", "2020-01-01") == 0, "a reversed range is empty, not an error"


async def test_call_range_reads_dates_as_php_does(api: Api) -> None:
    """Laravel's `date` rule (strtotime) and PostgreSQL take `Y/m/d`, the American `m/d/Y`
    and `Y-m-d H:i:s` with or without an offset; naive times are UTC, like ISO ones."""
    await make_login(api)
    token = await log_in(api)
    ends = await api.pool.fetch(
        "SELECT ended_at FROM calls WHERE pbx_id = 'lab' AND status IS NOT NULL ORDER BY 1"
    )
    first, last = ends[0]["ended_at"], ends[-1]["ended_at"]
    assert first.date() == last.date() == date(2026, 11, 22)

    async def answer(frm: str, to: str) -> tuple[int, object]:
        params = {"domain_name": "lab", "from": frm, "to": to}
        async with api.http.get("/api/call_range", params=params, headers=bearer(token)) as r:
            return r.status, await r.json()

    every = len(ends)
    for frm, to, count in (
        ("2000/01/01", "2030/01/01", every),
        ("01/01/2000", "01/01/2030", every),
        ("2026/11/22", "11/23/2026", every),
        ("2026/11/23", "2026/11/24", 0),
        ("11/21/2026", "11/22/2026", 0),  # a date is its midnight
        ("2026/11/22 00:00:00", "2026/11/22 23:59:59", every),
        ("11/22/2026 00:00", "11/22/2026 23:59:59", every),
        # naive: UTC; an offset (written or sent as a space, as an unencoded "+") counts
        (first.strftime("%Y-%m-%d %H:%M:%S.%f"), "2026-11-23 00:00:00", every),
        ((first + timedelta(hours=3)).strftime("%Y-%m-%d %H:%M:%S.%f+03:00"), "2030/1/1", every),
        ((first + timedelta(hours=3)).strftime("%Y/%m/%d %H:%M:%S.%f 03:00"), "2030/1/1", every),
        (
            (last + timedelta(hours=3)).strftime("%Y-%m-%d %H:%M:%S.%f+0300"),
            "2030/1/1",
            sum(e["ended_at"] == last for e in ends),
        ),
        ("2026-11-22 23:00:00-05:00", "2030-01-01", 0),
        ("2026/11/22", "9999-12-31 23:59:59.999999", every),  # the last moment: no 500
    ):
        status, body = await answer(frm, to)
        assert status == 200 and isinstance(body, list), (frm, to, body)
        assert len(body) == count, (frm, to)
    for wrong in ("22/11/2026", "2026/13/01", "13/01/2026", "2026/11/22 25:00", "2026/11"):
        status, body = await answer(wrong, "2030-01-01")
        assert isinstance(body, dict), (wrong, status, body)
        assert status == 422 and body["errors"] == {"from": ["The from is not a valid date."]}


async def test_hangup_cause_q850_is_a_q850_code(api: Api) -> None:
    """As FreeSWITCH's switch_channel_cause_q850(): the cause up to INTERWORKING (127),
    NORMAL_CLEARING (16) for its own causes above, such as ORIGINATOR_CANCEL (487)."""
    await make_login(api)
    token = await log_in(api)
    async with api.http.get("/api/calls?domain_name=lab", headers=bearer(token)) as r:
        cdrs = await r.json()
    codes: dict[str, set[str]] = {}
    for c in cdrs:
        codes.setdefault(c["hangup_cause"], set()).add(c["hangup_cause_q850"])
    assert codes["ORIGINATOR_CANCEL"] == {"16"}
    assert codes["NORMAL_CLEARING"] == {"16"} and codes["USER_BUSY"] == {"17"}
    assert codes["NO_ANSWER"] == {"19"} and codes["UNALLOCATED_NUMBER"] == {"1"}
    assert all(1 <= int(code) <= 127 for found in codes.values() for code in found)


@pytest.mark.parametrize(
    ("query", "errors"),
    [
        (
            "domain_name=lab",
            {"from": ["The from field is required."], "to": ["The to field is required."]},
        ),
        (
            "domain_name=lab&from=yesterday&to=2026-13-45",
            {"from": ["The from is not a valid date."], "to": ["The to is not a valid date."]},
        ),
        (
            "from=2026-11-22&to=" + "9" * 5000,
            {
                "domain_name": ["The domain name field is required."],
                "to": ["The to is not a valid date."],
            },
        ),
        ("domain_name=lab&from=%00&to=2026-11-22", {"from": ["The from is not a valid date."]}),
    ],
)
async def test_call_range_validates_its_input(api: Api, query, errors) -> None:
    await make_login(api)
    token = await log_in(api)
    async with api.http.get(f"/api/call_range?{query}", headers=bearer(token)) as r:
        assert r.status == 422
        assert await r.json() == {"message": INVALID, "errors": errors, **FAILED}


async def test_unknown_paths_and_methods_are_json(api: Api) -> None:
    async with api.http.get("/api/nothing-here") as r:
        assert r.status == 404 and "message" in await r.json()
    async with api.http.get("/api/login") as r:
        assert r.status == 405 and "message" in await r.json()
    key = await api.key("native")
    async with api.http.get("/api/v1/calls?limit=1", headers={"X-API-Key": key}) as r:
        assert r.status == 200, "the native API under /api/v1 is not the billing dialect's"
