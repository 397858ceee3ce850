"""Which call ids a rating may name: Asterisk's uniqueid shape, and "known" put together."""

from __future__ import annotations

import pytest

from bridge.agi.call_ids import MAX_CALL_ID, is_call_id, known_by_any


@pytest.mark.parametrize(
    "value",
    [
        "1763805600.12",
        "1.0",
        "1763805600.2147483647",
        "pbx1-1763805600.12",  # asterisk.conf systemname = pbx1
        "pbx-east.example.com-1763805600.12",
        "my_pbx-1763805600.12",
    ],
)
def test_asterisk_uniqueids(value: str) -> None:
    assert is_call_id(value)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "1.1;DROP TABLE calls;--",
        "1763805600",
        "1763805600.",
        ".12",
        "1763805600.12 ",
        " 1763805600.12",
        "1763805600.12\n",
        "-1763805600.12",
        "pbx 1-1763805600.12",
        "'1763805600.12'",
        "1763805600.12.3",
        "1763805600,12",
        "١٧٦٣٨٠٥٦٠٠.١٢",  # Arabic-Indic digits are not what Asterisk writes
        "p" * 65 + "-1763805600.12",
        "1" * 21 + ".1",
    ],
)
def test_anything_else(value: str) -> None:
    assert not is_call_id(value)


def test_no_longer_than_asterisk_allows() -> None:
    assert not is_call_id("a" * 64 + "-" + "1" * 20 + "." + "1" * 10 + "x")
    assert MAX_CALL_ID == 150


def verdicts(*answers: bool | None):
    asked: list[int] = []

    def check(n: int, answer: bool | None):
        async def known(callid: str) -> bool | None:
            asked.append(n)
            return answer

        return known

    return known_by_any(*(check(n, a) for n, a in enumerate(answers))), asked


@pytest.mark.parametrize(
    ("answers", "verdict", "asked"),
    [
        ((True, False), True, [0]),  # the tracker knows it: the database is not asked
        ((False, True), True, [0, 1]),
        ((False, False), False, [0, 1]),
        ((False, None), None, [0, 1]),  # the tracker forgot it and Postgres is down
        ((None, True), True, [0, 1]),
        ((), False, []),
    ],
)
async def test_known_by_any(
    answers: tuple[bool | None, ...], verdict: bool | None, asked: list[int]
) -> None:
    known, calls = verdicts(*answers)
    assert await known("1763805600.12") is verdict
    assert calls == asked
