"""Wire payloads per profile, against the field lists of SPEC section 4."""

from __future__ import annotations

import json
from urllib.parse import parse_qsl

import pytest

from bridge.crm import profiles, signing
from bridge.crm.payloads import event_fields, history_fields, without_empty
from bridge.tracker.model import CallEvent, CallRecord

EVENT = CallEvent(
    callid="1795346461.28",
    seq=3,
    type="TRANSFERRED",
    at=1795346464.0,
    direction="in",
    phone="79101234567",
    diversion="74957654321",
    ext="1001",
    user="ivan",
    group="sales",
    second_callid="1795346470.40",
)
RECORD = CallRecord(
    callid="1795346414.0",
    direction="in",
    status="Success",
    phone="79101234567",
    diversion="74957654321",
    ext="1001",
    user="ivan",
    group="",
    start=1795346414.34,
    answered=1795346415.39,
    end=1795346417.42,
    duration=2,
    wait=1,
)


def form(request: profiles.WireRequest) -> list[tuple[str, str]]:
    return parse_qsl(request.body.decode(), keep_blank_values=True)


def test_vpbx_history_has_exactly_the_spec_fields_in_order() -> None:
    request = profiles.encode("vpbx", history_fields(RECORD), "tok")
    assert request.content_type == "application/x-www-form-urlencoded"
    assert request.headers == {"X-CRM-Token": "tok"}
    assert form(request) == [
        ("cmd", "history"),
        ("crm_token", "tok"),
        ("type", "in"),
        ("user", "ivan"),
        ("ext", "1001"),
        ("groupRealName", ""),
        ("telnum", ""),
        ("phone", "79101234567"),
        ("diversion", "74957654321"),
        ("start", "20261122T112014Z"),
        ("duration", "2"),
        ("wait", "1"),
        ("callid", "1795346414.0"),
        ("link", ""),
        ("status", "Success"),
        ("rating", ""),
        ("missedStatus", ""),
    ]


def test_vpbx_event_carries_second_callid_only_when_transferred() -> None:
    fields = dict(form(profiles.encode("vpbx", event_fields(EVENT), "tok")))
    assert list(fields) == list(profiles.FIELDS["event"])
    assert fields["second_callid"] == "1795346470.40" and fields["groupRealName"] == "sales"
    plain = event_fields(EVENT) | {"type": "ACCEPTED", "second_callid": ""}
    assert "second_callid" not in dict(form(profiles.encode("vpbx", plain, "tok")))


@pytest.mark.parametrize(
    ("cmd", "left_out"),
    [
        ("history", {"rating", "wait", "missedStatus"}),
        ("event", {"direction", "telnum_name", "second_callid"}),
        ("contact", {"diversion"}),
    ],
)
def test_legacy_leaves_out_exactly_the_newer_fields(cmd: str, left_out: set[str]) -> None:
    fields = {
        "cmd": cmd,
        "type": "TRANSFERRED",
        "callid": "1.1",
        "phone": "7910",
        "second_callid": "2.2",
        "diversion": "7495",
        "wait": 3,
        "direction": "in",
    }
    sent = dict(form(profiles.encode("vpbx-legacy", fields, "tok")))
    assert set(sent) == set(profiles.FIELDS[cmd]) - left_out


def test_legacy_receivers_get_no_rating_command() -> None:
    assert profiles.sends("vpbx", "rating") and profiles.sends("json", "rating")
    assert not profiles.sends("vpbx-legacy", "rating")


def test_json_profile_is_the_same_fields_with_numbers_as_numbers() -> None:
    request = profiles.encode("json", history_fields(RECORD), "tok")
    assert request.content_type == "application/json"
    body = json.loads(request.body)
    sent = dict(form(profiles.encode("vpbx", history_fields(RECORD), "tok")))
    assert (body["duration"], body["wait"]) == (2, 1)
    assert "rating" not in body and "missedStatus" not in body, "empty numbers left out"
    assert {k: str(v) for k, v in body.items()} == {
        k: v for k, v in sent.items() if k not in ("rating", "missedStatus")
    }
    marked = history_fields(RECORD, rating="4", missed_status="2")
    body = json.loads(profiles.encode("json", marked, "tok").body)
    assert (body["rating"], body["missedStatus"]) == (4, 2)


def test_unknown_profile_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown CRM profile"):
        profiles.encode("soap", history_fields(RECORD), "tok")


def test_replay_leaves_empty_fields_out_but_keeps_zero() -> None:
    missed = CallRecord(
        **{
            **{f: getattr(RECORD, f) for f in RECORD.__slots__},
            "status": "missed",
            "duration": 0,
            "answered": None,
        }
    )
    fields = without_empty(history_fields(missed))
    assert fields["duration"] == 0 and "link" not in fields and "groupRealName" not in fields


def test_standard_webhooks_reference_vector() -> None:
    """The test vector published with the Standard Webhooks specification."""
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = b'{"test": 2432232314}'
    sig = signing.signature(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
    assert sig == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    headers = signing.signature_headers(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body)
    assert signing.verify(secret, headers, body)
    assert not signing.verify(secret, headers, body + b" ")
