"""The lenient reading of CRM `contact` answers: what real CRMs send, and anything at all."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.agi.answer import MAX_NAME, NO_CONTACT, Contact, clean_name, parse_contact_answer


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('{"contact_name": "Ivan Petrov", "responsible": "ivan"}', Contact("Ivan Petrov", "ivan")),
        ("{}", NO_CONTACT),
        ("", NO_CONTACT),
        ("   \n", NO_CONTACT),
        ('{"ok": true}', NO_CONTACT),
        ('{"ok": true, "responsible": "101"}', Contact("", "101")),
        ('{"contact_name": null, "responsible": null}', NO_CONTACT),
        ('{"contact_name": ""}', NO_CONTACT),
        ('{"responsible": "ivan"}', Contact("", "ivan")),
        ('{contact_name: "Ivan"}', Contact("Ivan")),
        ("{contact_name: 'Ivan', responsible: 101}", Contact("Ivan", "101")),
        ("{'contact_name': 'O\\'Brien',}", Contact("O'Brien")),
        ('{"contact_name": "O\'Brien"}', Contact("O'Brien")),
        ("{contact_name: Ivan, responsible: ivan.petrov}", Contact("Ivan", "ivan.petrov")),
        ("{contact_name: Ivan Petrov}", Contact("Ivan Petrov")),
        ('{"contact_name": "Ivan", "responsible": 101.0}', Contact("Ivan", "101")),
        ("{'contact_name': 'Ivan', 'vip': True, 'note': None}", Contact("Ivan")),
        ('[{"contact_name": "Ivan"}]', Contact("Ivan")),
        ("[]", NO_CONTACT),
        ('{"data": {"contact_name": "Ivan", "responsible": "102"}}', Contact("Ivan", "102")),
        ('\ufeff{"contact_name": "Ivan"}', Contact("Ivan")),
        ('{"contact_name": "\\u0418\\u0432\\u0430\\u043d"}', Contact("Иван")),
        ('{"contact_name": "  Ivan \\t Petrov\\r\\n"}', Contact("Ivan Petrov")),
        ('{"contact_name": {"first": "Ivan"}}', NO_CONTACT),
        ('{"contact_name": true}', NO_CONTACT),
        ("contact_name=Ivan+Petrov&responsible=101", Contact("Ivan Petrov", "101")),
        ('{"contact_name": "Ivan", "responsible": "101"', Contact("Ivan", "101")),  # cut off
        ("<html><body>502 Bad Gateway</body></html>", NO_CONTACT),
        ("null", NO_CONTACT),
        ('"Ivan"', NO_CONTACT),
        ("42", NO_CONTACT),
        ("[" * 5000, NO_CONTACT),
    ],
)
def test_answers_real_crms_give(body: str, expected: Contact) -> None:
    assert parse_contact_answer(body) == expected


def test_bytes_and_broken_utf8() -> None:
    assert parse_contact_answer('{"contact_name": "Иван"}'.encode()) == Contact("Иван")
    assert parse_contact_answer(b'{"contact_name": "Iv\xffan"}').name == "Iv\ufffdan"


def test_names_are_one_short_line() -> None:
    assert clean_name("a\nb\x00c\x7fd") == "a b c d"
    assert len(parse_contact_answer(json.dumps({"contact_name": "x" * 500})).name) == MAX_NAME


@given(st.text(max_size=300))
def test_never_raises(body: str) -> None:
    contact = parse_contact_answer(body)
    assert "\n" not in contact.name and len(contact.name) <= MAX_NAME


@given(st.text(max_size=100), st.one_of(st.text(max_size=20), st.integers(0, 10**6)))
def test_well_formed_json_is_read_exactly(name: str, responsible: str | int) -> None:
    body = json.dumps({"contact_name": name, "responsible": responsible}, ensure_ascii=False)
    assert parse_contact_answer(body) == Contact(clean_name(name), clean_name(str(responsible)))
