"""CRM `contact` answers: every known form is read; anything else names nobody and says why."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.agi.answer import (
    MARKUP,
    MAX_NAME,
    NO_CONTACT,
    Contact,
    clean_text,
    parse_contact_answer,
    read_contact_answer,
)
from bridge.agi.loose_json import MAX_DEPTH
from bridge.agi.wire import MAX_ANSWER_BYTES


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        # the spec's JSON, and its "nobody"
        ('{"contact_name": "Ivan Petrov", "responsible": "ivan"}', Contact("Ivan Petrov", "ivan")),
        ('{"contact_name": "Иван Петров \\"VIP\\""}', Contact('Иван Петров "VIP"')),
        ("{}", NO_CONTACT),
        ("", NO_CONTACT),
        ("   \n", NO_CONTACT),
        ('{"contact_name": null, "responsible": null}', NO_CONTACT),
        ('{"contact_name": ""}', NO_CONTACT),
        ('{"responsible": "ivan"}', Contact("", "ivan")),
        ('{"contact_name": "Ivan", "responsible": 101.0}', Contact("Ivan", "101")),
        ('{"contact_name": "\\u0418\\u0432\\u0430\\u043d"}', Contact("Иван")),
        ('\ufeff{"contact_name": "Ivan"}', Contact("Ivan")),
        # {"ok": true}: no contact_name, no contact
        ('{"ok": true}', NO_CONTACT),
        ('{"ok": true, "responsible": "101"}', Contact("", "101")),
        # unquoted keys, single quotes, trailing commas, Python words, unquoted values
        ('{contact_name: "Ivan"}', Contact("Ivan")),
        ("{contact_name: 'Ivan', responsible: 101}", Contact("Ivan", "101")),
        ("{'contact_name': 'O\\'Brien',}", Contact("O'Brien")),
        ('{"contact_name": "O\'Brien"}', Contact("O'Brien")),
        ("{contact_name: Ivan, responsible: ivan.petrov}", Contact("Ivan", "ivan.petrov")),
        ("{contact_name: Ivan Petrov}", Contact("Ivan Petrov")),
        ("{'contact_name': 'Ivan', 'vip': True, 'note': None}", Contact("Ivan")),
        ("{'contact_name': '\\ud83d\\ude00 Ivan'}", Contact("\U0001f600 Ivan")),
        ("{\n  contact_name: 'Ivan',\n  tags: ['a', 'b',],\n}\n", Contact("Ivan")),
        # a list, one level of nesting
        ('[{"contact_name": "Ivan"}]', Contact("Ivan")),
        ('[{"contact_name": "Ivan"}, {"contact_name": "Petr"}]', Contact("Ivan")),
        ("[]", NO_CONTACT),
        ('{"data": {"contact_name": "Ivan", "responsible": "102"}}', Contact("Ivan", "102")),
        ("{result: {contact_name: 'Ivan'}, status: ok}", Contact("Ivan")),
        # form-encoded
        ("contact_name=Ivan+Petrov&responsible=101", Contact("Ivan Petrov", "101")),
        ("contact_name=%D0%98%D0%B2%D0%B0%D0%BD&responsible=", Contact("Иван")),
        ("ok=1", NO_CONTACT),
        # names are cleaned into one printable line
        ('{"contact_name": "  Ivan \\t Petrov\\r\\n"}', Contact("Ivan Petrov")),
        ('{"contact_name": "Ivan\\u00a0Petrov\\u202e"}', Contact("Ivan Petrov")),
        ('{"contact_name": "Ivan\\nSET VARIABLE X 1"}', Contact("Ivan SET VARIABLE X 1")),
        (json.dumps({"contact_name": "x" * MAX_NAME}), Contact("x" * MAX_NAME)),
    ],
)
def test_known_forms_are_read(body: str, expected: Contact) -> None:
    answer = read_contact_answer(body)
    assert (answer.contact, answer.rejected) == (expected, "")


TRUNCATED = ('{"contact_name": "Ivan", "notes": "' + "x" * MAX_ANSWER_BYTES + '"}').encode()


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ('{"contact_name": "Broken, <html> {{{', "not JSON, even leniently: unterminated string"),
        ('{"contact_name": "Ivan", "responsible": "101"', "expected '}' at character 45"),
        ('{"contact_name": "Ivan"', "expected '}'"),
        (TRUNCATED[:MAX_ANSWER_BYTES], f"the body reached the {MAX_ANSWER_BYTES}-byte read limit"),
        ("<html><body>502 Bad Gateway</body></html>", "neither JSON nor a form-encoded body"),
        ("Ivan Petrov", "neither JSON nor a form-encoded body"),
        ("contact_name=Ivan Petrov", "neither JSON nor a form-encoded body"),
        ("<b>contact_name=Ivan", "neither JSON nor a form-encoded body"),
        ("contact_name=Ivan&&x", "neither JSON nor a form-encoded body"),
        ("null", "the answer is a null, not an object"),
        ('"Ivan"', "the answer is a string, not an object"),
        ("42", "the answer is a number, not an object"),
        ("[1, 2]", "the answer is a number, not an object"),
        ("[[{}]]", "the answer is a list, not an object"),
        ("[" * 5000, f"nested deeper than {MAX_DEPTH} levels"),
        ("[" * 5000 + "]" * 5000, f"nested deeper than {MAX_DEPTH} levels"),
        ('{"contact_name": "Ivan"} {"contact_name": "Petr"}', "text after the end of the answer"),
        ('{"contact_name": "Ivan"}<script>', "text after the end of the answer"),
        ("{contact_name: Ivan <b>}", "expected '}'"),
        ("{contact_name: 'Iv\\x41n'}", "bad escape in a string"),
        ("{contact-name; 'Ivan'}", "expected ':'"),
        ('{"contact_name": "<b>Ivan</b>"}', "contact_name contains markup characters"),
        ('{"contact_name": "Ivan {{name}}"}', "contact_name contains markup characters"),
        ("contact_name=%3Cscript%3E", "contact_name contains markup characters"),
        ('{"contact_name": "Ivan", "responsible": "<101>"}', "responsible contains markup"),
        (json.dumps({"contact_name": "x" * (MAX_NAME + 1)}), "longer than 80 characters (81)"),
        ('{"contact_name": {"first": "Ivan"}}', "contact_name is a object, not text"),
        ('{"contact_name": true}', "contact_name is a boolean, not text"),
        ('{"contact_name": ["Ivan"]}', "contact_name is a list, not text"),
        (b'{"contact_name": "Iv\xffan"}', "the body is not UTF-8"),
    ],
)
def test_anything_else_names_nobody_and_says_why(body: str | bytes, reason: str) -> None:
    answer = read_contact_answer(body)
    assert answer.contact == NO_CONTACT
    assert reason in answer.rejected, answer.rejected


def test_the_read_limit_counts_bytes_not_characters() -> None:
    name = json.dumps({"contact_name": "Иван"}, ensure_ascii=False)  # 4 letters, 8 bytes
    size = len(name.encode())
    assert read_contact_answer(name, limit=size + 1).contact == Contact("Иван")
    assert read_contact_answer(name, limit=size).rejected.startswith("the body reached")
    assert read_contact_answer(name.encode(), limit=size).contact == NO_CONTACT


def test_bytes_are_utf8() -> None:
    assert parse_contact_answer('{"contact_name": "Иван"}'.encode()) == Contact("Иван")


def test_clean_text() -> None:
    assert clean_text("a\nb\x00c\x7fd") == "a bcd"
    assert clean_text(" Ivan\t\tPetrov ") == "Ivan Petrov"
    assert clean_text("Ivan") == "Ivan"


@given(st.one_of(st.text(max_size=300), st.binary(max_size=300)))
def test_never_raises_and_names_are_safe(body: str | bytes) -> None:
    answer = read_contact_answer(body)
    for value in (answer.contact.name, answer.contact.responsible):
        assert value == clean_text(value) and len(value) <= MAX_NAME
        assert not MARKUP.intersection(value)
    assert answer.rejected == "" or answer.contact == NO_CONTACT


NAMES = st.text(
    st.characters(blacklist_characters=sorted(MARKUP), blacklist_categories=["Cs"]), max_size=60
)


@given(NAMES, st.one_of(NAMES, st.integers(0, 10**6)))
def test_well_formed_json_is_read_exactly(name: str, responsible: str | int) -> None:
    body = json.dumps({"contact_name": name, "responsible": responsible}, ensure_ascii=False)
    assert read_contact_answer(body) == read_contact_answer(body.encode())
    assert parse_contact_answer(body) == Contact(clean_text(name), clean_text(str(responsible)))


@given(NAMES)
def test_single_quoted_unquoted_key_answers_read_as_json_would(name: str) -> None:
    escaped = json.dumps(name)[1:-1].replace("'", "\\'")
    assert parse_contact_answer(f"{{contact_name: '{escaped}',}}") == Contact(clean_text(name))
