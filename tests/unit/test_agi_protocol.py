"""The FastAGI wire format: environment lines, replies, and quoting for parse_args."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.agi.protocol import (
    AgiGarbage,
    arg_list,
    parse_env_line,
    parse_reply,
    quote,
    script_name,
)
from tests.support.agi_client import parse_args


@pytest.mark.parametrize(
    ("line", "code", "result", "data"),
    [
        ("200 result=1", 200, 1, None),
        ("200 result=0", 200, 0, None),
        ("200 result=-1", 200, -1, None),
        ("200 result=1 (1763805600.12)", 200, 1, "1763805600.12"),
        ("200 result=1 (a (b) c)", 200, 1, "a (b) c"),
        ("200 result=1 ()", 200, 1, ""),
        ("200 result=1 (timeout) endpos=0", 200, 1, "timeout"),
        ("510 Invalid or unknown command", 510, None, None),
        ("511 Command Not Permitted on a dead channel", 511, None, None),
    ],
)
def test_replies(line: str, code: int, result: int | None, data: str | None) -> None:
    reply, continued = parse_reply(line)
    assert (reply.code, reply.result, reply.data, continued) == (code, result, data, False)


def test_reply_flags() -> None:
    assert parse_reply("200 result=1")[0].ok
    assert not parse_reply("200 result=-1")[0].ok
    assert not parse_reply("511 Command Not Permitted on a dead channel")[0].ok
    reply, continued = parse_reply("520-Invalid command syntax.  Proper usage follows:")
    assert continued and reply.code == 520


@pytest.mark.parametrize("line", ["", "HTTP/1.1 200 OK", "20 result=1", "200 ok", "abc"])
def test_garbage_replies(line: str) -> None:
    with pytest.raises(AgiGarbage):
        parse_reply(line)


def test_environment_lines() -> None:
    assert parse_env_line("agi_callerid: 89101234567") == ("agi_callerid", "89101234567")
    assert parse_env_line("agi_accountcode: ") == ("agi_accountcode", "")
    assert parse_env_line("agi_request: agi://127.0.0.1:4573/contact") == (
        "agi_request",
        "agi://127.0.0.1:4573/contact",
    )
    for line in ("GET / HTTP/1.1", "Host: pbx", "agi_callerid 123", "AGI_X: 1", ""):
        with pytest.raises(AgiGarbage):
            parse_env_line(line)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"agi_network_script": "contact"}, "contact"),
        ({"agi_network_script": "contact?x=1"}, "contact"),
        ({"agi_network_script": "/rating/"}, "rating"),
        ({"agi_request": "agi://127.0.0.1:4573/rating"}, "rating"),
        ({"agi_request": "agi://127.0.0.1:4573"}, ""),
        ({}, ""),
    ],
)
def test_script_name(env: dict[str, str], expected: str) -> None:
    assert script_name(env) == expected


def test_arguments_in_order_without_gaps() -> None:
    env = {"agi_arg_2": "b", "agi_arg_1": "a", "agi_arg_4": "d"}
    assert arg_list(env) == ["a", "b"]


@given(st.text())
def test_quote_survives_asterisks_argument_parser(value: str) -> None:
    """What Asterisk's parse_args makes of our SET VARIABLE is exactly the value we meant."""
    argv = parse_args(f"SET VARIABLE CRM_CONTACT_NAME {quote(value)}")
    expected = "".join(" " if ord(c) < 32 or ord(c) == 127 else c for c in value)
    assert argv == ["SET", "VARIABLE", "CRM_CONTACT_NAME", expected]
    assert "\n" not in quote(value)
