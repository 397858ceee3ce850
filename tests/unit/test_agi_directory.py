"""`responsible` -> extension: logins, extensions, direct numbers; nothing else gets through."""

from __future__ import annotations

import pytest

from bridge.agi.directory import Directory

DIRECTORY = Directory(
    {"101": "ivan", "102": "Maria.Sidorova@example.com"},
    direct={"+7 (495) 765-43-21": "102", "84951112233": "103"},
    region="RU",
)


@pytest.mark.parametrize(
    ("responsible", "expected"),
    [
        ("101", "101"),
        (" 102 ", "102"),
        ("ivan", "101"),
        ("IVAN", "101"),
        ("maria.sidorova@example.com", "102"),
        ("74957654321", "102"),
        ("+7 495 765-43-21", "102"),
        ("8 (495) 765 43 21", "102"),
        ("74951112233", "103"),
        ("103", "103"),  # known through its direct number
        ("+101", "101"),
        ("104", None),
        ("79101234567", None),
        ("petr", None),
        ("", None),
        (None, None),
        ("101; Dial(PJSIP/999)", None),
        ("PJSIP/101", None),
        ("101&102", None),
    ],
)
def test_resolve(responsible: str | None, expected: str | None) -> None:
    assert DIRECTORY.resolve(responsible) == expected


def test_login_of_an_extension_falls_back_to_the_extension() -> None:
    assert DIRECTORY.login("102") == "Maria.Sidorova@example.com"
    assert DIRECTORY.login("555") == "555"


def test_empty_directory_resolves_nothing() -> None:
    assert Directory({}).resolve("101") is None
