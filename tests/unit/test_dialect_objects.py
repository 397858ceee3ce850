"""The pure parts of the Sangoma and billing dialects: hangup causes, CDR and call
objects, the Sangoma wire profile, voicemail metadata, Laravel validation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bridge.api.billing.cdr import cdr, hangup_cause
from bridge.api.billing.laravel import ValidationFailed, date, email, string, validate
from bridge.api.sangoma.voicemail import CallTrace, find_voicemail, read_message
from bridge.crm import profiles
from bridge.crm.outbox_rows import OutboxRows, Target
from bridge.crm.sangoma_call import CallFacts, call_object, webhook_body
from bridge.store.targets import Subscription
from bridge.tracker.model import CallEvent, CallRecord

T0 = datetime(2026, 11, 22, 11, 20, 14, 342000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("status", "answered", "cause", "dial_status", "expected"),
    [
        ("Success", True, 16, "ANSWER", ("NORMAL_CLEARING", 16)),
        ("missed", False, 17, "BUSY", ("USER_BUSY", 17)),  # the phone was busy
        ("missed", False, 16, "NOANSWER", ("NO_ANSWER", 19)),  # rang out, caller hung up
        ("missed", False, 127, "CANCEL", ("ORIGINATOR_CANCEL", 487)),  # caller gave up
        ("missed", False, 0, "CANCEL", ("ORIGINATOR_CANCEL", 487)),  # abandoned a queue
        ("Cancel", False, 127, "CANCEL", ("ORIGINATOR_CANCEL", 487)),
        ("NotFound", False, 1, "NOANSWER", ("UNALLOCATED_NUMBER", 1)),  # SIP 404
        ("missed", False, 19, "NOANSWER", ("NO_ANSWER", 19)),  # SIP 480
        ("NotAvailable", False, 18, "NOANSWER", ("NO_USER_RESPONSE", 18)),  # timer B
        ("NotAvailable", False, 34, "CONGESTION", ("NORMAL_CIRCUIT_CONGESTION", 34)),
        ("NotAllowed", False, 21, "", ("CALL_REJECTED", 21)),
        ("NotAvailable", False, None, "CHANUNAVAIL", ("SUBSCRIBER_ABSENT", 20)),
        ("NotAllowed", False, None, "", ("CALL_REJECTED", 21)),
        ("missed", False, 99_999, "", ("NORMAL_UNSPECIFIED", 99_999)),
    ],
)
def test_hangup_causes(status, answered, cause, dial_status, expected) -> None:
    assert hangup_cause(status, answered, cause, dial_status) == expected


def call_row(**kw) -> dict:
    row = {
        "callid": "1.0",
        "direction": "in",
        "status": "Success",
        "phone": "79101234567",
        "diversion": "74957654321",
        "ext": "1001",
        "user_login": "ivan",
        "group_name": "",
        "started_at": T0,
        "answered_at": T0 + timedelta(seconds=1.051),
        "ended_at": T0 + timedelta(seconds=3.079),
        "duration": 2,
        "wait": 1,
        "recording": "",
        "rating": None,
        "missed_status": None,
        "closed_by": "hangup",
        "phone_name": "",
    }
    return row | kw


def test_a_cdr_rounds_down_like_asterisk() -> None:
    c = cdr(call_row(), [], domain="lab", names={"ivan": "Ivan Petrov"})
    assert (c["duration"], c["mduration"], c["billsec"], c["billmsec"]) == (3, 3079, 2, 2028)
    assert c["waitsec"] == 1
    assert (c["start_epoch"], c["answer_epoch"]) == ("1795346414", "1795346415")
    assert c["start_stamp"] == "2026-11-22 11:20:14+00"
    assert (c["caller_id_number"], c["destination_number"]) == ("79101234567", "1001")
    out = cdr(call_row(direction="out"), [], domain="lab", names={"ivan": "Ivan Petrov"})
    assert (out["caller_id_name"], out["caller_id_number"]) == ("Ivan Petrov", "1001")
    assert out["destination_number"] == "79101234567" and out["missed_call"] is False


def test_an_inbound_cdr_names_the_caller_as_the_carrier_did() -> None:
    named = cdr(call_row(phone_name="Ivan Sidorov"), [], domain="lab")
    assert (named["caller_id_name"], named["caller_id_number"]) == ("Ivan Sidorov", "79101234567")
    unnamed = cdr(call_row(), [], domain="lab")
    assert (unnamed["caller_id_name"], unnamed["caller_id_number"]) == ("79101234567",) * 2


def test_an_unanswered_cdr_and_a_recording() -> None:
    c = cdr(
        call_row(status="missed", answered_at=None, recording="/var/spool/x/a.wav"),
        [],
        domain="lab",
    )
    assert (c["billsec"], c["waitsec"], c["answer_epoch"], c["answer_stamp"]) == (0, 3, "0", None)
    assert c["missed_call"] is True and c["hangup_cause"] == "NO_ANSWER"
    assert (c["record_path"], c["record_name"]) == ("/var/spool/x", "a.wav")


def test_an_internal_call_is_answered_by_the_called_phone() -> None:
    legs = [
        {"uniqueid": "1.0", "kind": "extension", "ext": "1001", "dial_status": "",
         "answered_at": T0 + timedelta(seconds=1), "ended_at": T0, "started_at": T0,
         "cause": 16},
        {"uniqueid": "1.1", "kind": "extension", "ext": "1002", "dial_status": "ANSWER",
         "answered_at": T0 + timedelta(seconds=1.6), "ended_at": T0, "started_at": T0,
         "cause": 16},
    ]  # fmt: skip
    c = cdr(call_row(direction="internal", status="missed", answered_at=None), legs, domain="lab")
    assert c["direction"] == "local" and c["billsec"] == 1 and c["missed_call"] is False
    assert (c["caller_id_number"], c["destination_number"]) == ("1001", "1002")
    assert c["hangup_cause"] == "NORMAL_CLEARING"


def record(**kw) -> CallRecord:
    base = dict(
        callid="1.0",
        direction="in",
        status="Success",
        phone="79101234567",
        diversion="74957654321",
        ext="1001",
        user="ivan",
        group="sales",
        start=100.9,
        answered=102.0,
        end=105.95,
        duration=4,
        wait=1,
        recording="/var/spool/asterisk/monitor/r.wav",
    )
    return CallRecord(**(base | kw))  # type: ignore[arg-type]


def test_the_sangoma_call_object() -> None:
    body = call_object(CallFacts.of_record(record()))
    assert body["uuid"] == body["linkedid"] == "1.0"
    assert (body["src"], body["dst"], body["did"]) == ("79101234567", "1001", "74957654321")
    assert (body["start"], body["answer"], body["end"]) == (100, 102, 105)
    assert (body["duration"], body["billsec"]) == (5, 3)
    assert (body["disposition"], body["missed"], body["recordingfile"]) == (
        "ANSWERED",
        False,
        "r.wav",
    )
    out = call_object(CallFacts.of_record(record(direction="out", status="Busy", answered=None)))
    assert (out["src"], out["dst"], out["disposition"], out["billsec"]) == (
        "1001",
        "79101234567",
        "BUSY",
        0,
    )
    event = CallEvent("1.0", 1, "INCOMING", 101.5, "in", "79101234567", "74957654321", "1001", "i")
    start = webhook_body(CallFacts.of_event(event), "start")
    assert start["event"] == "start" and start["start"] == 101
    assert all(start[k] is None for k in ("answer", "end", "duration", "billsec", "status"))
    late = webhook_body(CallFacts.of_record(record()).started(), "start")
    assert late["start"] == 100 and late["end"] is None


def target(profile: str, commands: tuple[str, ...], direction: str = "both") -> Target:
    return Target(
        1, "lab", "t", "http://x", "", profile, frozenset(commands), direction, None, True
    )


def test_sangoma_targets_get_only_sangoma_commands_and_others_never_do() -> None:
    assert profiles.sends("sangoma", "call_start") and profiles.sends("sangoma", "call_end")
    assert not profiles.sends("sangoma", "history") and not profiles.sends("vpbx", "call_end")
    rows = OutboxRows("lab").rows(
        [record()],
        [target("sangoma", ("call_start", "call_end")), target("vpbx", ("history",))],
    )
    assert [(r[1], r[3]) for r in rows] == [(1, "call_start"), (1, "call_end"), (1, "history")]
    wire = profiles.encode("sangoma", {"event": "end", "uuid": "1.0"}, "ignored")
    assert wire.content_type == "application/json" and wire.headers == {}
    assert wire.body == b'{"event":"end","uuid":"1.0"}'
    bad = Subscription("s", "http://x", profile="sangoma", commands=("history",))
    assert any("call_start" in p for p in bad.problems())
    assert Subscription("s", "http://x", profile="sangoma", commands=("call_end",)).problems() == []


def test_voicemail_metadata(tmp_path: Path) -> None:
    txt = tmp_path / "msg0000.txt"
    txt.write_text(
        '[message]\ncallerchan=PJSIP/trunk-0000002a\ncallerid="Ivan" <+79101234567>\n'
        "origtime=1795346427\nmsg_id=1795346427-00000000\n"
    )
    msg = read_message(txt)
    assert msg is not None
    assert (msg.callerchan, msg.caller_number, msg.origtime) == (
        "PJSIP/trunk-0000002a",
        "+79101234567",
        1795346427.0,
    )
    assert msg.audio() is None
    (tmp_path / "msg0000.gsm").write_bytes(b"x")
    assert msg.audio() == tmp_path / "msg0000.gsm"
    for garbage in ("no section", "[message]\norigtime=soon\n", "\x00\xff", "[message]\n"):
        txt.write_text(garbage)
        assert read_message(txt) is None, garbage
    txt.write_text("[message]\norigtime=1\n" + "x" * 70_000)
    assert read_message(txt) is None, "oversized"
    assert read_message(tmp_path / "missing.txt") is None


def test_no_spool_no_voicemail(tmp_path: Path) -> None:
    trace = CallTrace(0.0, 10.0, frozenset(), frozenset({"1001"}), "")
    assert find_voicemail(tmp_path / "nowhere", trace, str) is None


def test_laravel_validation_messages() -> None:
    assert validate({"email": "a@b.c"}, {"email": (string, email)}) == {"email": "a@b.c"}
    with pytest.raises(ValidationFailed) as failed:
        validate(
            {"email": "  ", "from": "2026-02-30", "to": 7},
            {"email": (string, email), "from": (date,), "to": (date,)},
        )
    assert failed.value.errors == {
        "email": ["The email field is required."],
        "from": ["The from is not a valid date."],
        "to": ["The to is not a valid date."],
    }
