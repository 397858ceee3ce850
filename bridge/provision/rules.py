"""What may be rendered into Asterisk's config files and dialplan, checked value by value.

Everything the renderer writes that came from the directory was written by an API client:
a value that could end a line, start a comment (`;`), open a section (`[`), split an
application's arguments (`,` `|`), close one (`)`), expand a variable or function (`$`,
`{`), or form a dialplan pattern (`_` first) would let that client write Asterisk config or
dialplan of its own. So each kind of value has a short list of what it may be, and anything
else is refused with a message naming the object and the field; nothing is escaped.

The API dialects call `user_problems`, `group_problems` and `number_problems` before they
store a write (a 400 naming the field); the renderer applies the same rules again and
refuses to render what breaks them (`RenderError`).
"""

from __future__ import annotations

import re

from ..store.directory import RECORDING_RULES, Group, Number, User

# Issabel's (FreePBX's) ring strategies -> the one crm-bridge-dial-group rings. The group
# keeps the strategy its client sent; Asterisk gets the nearest the helper has. It cannot
# tell a phone in use from a free one (it only leaves out members in do-not-disturb), so:
# a -prim variant (nobody else rings while the first member is in use) is its base
# strategy; firstavailable and firstnotonphone (ring only the first member free to take
# the call) are hunt, which rings the members in order and passes at once over one that
# is busy or unreachable, so the first free member rings first as they want; unlike them
# it goes on to the next member when that one does not answer.
STRATEGIES = {
    "ringall": "ringall",
    "ringall-prim": "ringall",
    "hunt": "hunt",
    "hunt-prim": "hunt",
    "memoryhunt": "memoryhunt",
    "memoryhunt-prim": "memoryhunt",
    "firstavailable": "hunt",
    "firstnotonphone": "hunt",
}
NOANSWER_KINDS = ("hangup", "busy", "user", "group", "voicemail", "number", "ivr")
MAX_RING_TIME = 600  # seconds

# An extension the bridge provisions: digits only. It names a SIP endpoint and a dialplan
# extension; letters would allow the dialplan's special extensions (s, t, i, h, ...).
EXTENSION = re.compile(r"[0-9]{1,20}")
# A SIP password: no blank, quote, backslash, `;` (a comment), `[` `]` or `#`.
SECRET = re.compile(r"[A-Za-z0-9!$%&()*+,./:=?@^_{|}~-]{8,128}")
# A dialplan context (voicemail.conf contexts too) or a queue's name.
CONTEXT = re.compile(r"[A-Za-z0-9_-]{1,80}")
QUEUE = re.compile(r"[A-Za-z0-9_.-]{1,80}")
TELNUM = re.compile(r"[0-9]{3,20}")
# A name shown on phones (`callerid = "<name>" <ext>`) and written in comments: one line,
# none of the characters that end the quoted name or the line.
_NAME_FORBIDDEN = set('"\\;<>[]')
MAX_NAME = 80


class RenderError(ValueError):
    """The directory holds something that cannot be rendered safely; `problems` says what,
    one line each."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


def name_problem(name: str) -> str | None:
    if len(name) > MAX_NAME:
        return f"is longer than {MAX_NAME} characters"
    if not name.isprintable():
        return "has a line break or another control character"
    bad = sorted(set(name) & _NAME_FORBIDDEN)
    if bad:
        return (
            f"has {', '.join(repr(c) for c in bad)}, which Asterisk's config would read as syntax"
        )
    if name != name.strip():
        return "starts or ends with a space"
    return None


def _check(
    problems: list[str], what: str, field: str, value: str, ok: re.Pattern[str], rule: str
) -> None:
    if not ok.fullmatch(value):
        problems.append(f"{what}: {field} {value!r} {rule}")


def user_problems(u: User) -> list[str]:
    """Why this employee cannot be provisioned ([] when it can); only provisioned employees
    are rendered, but their name is checked whatever they are, as it is shown by phones."""
    what = f"user {u.login!r}"
    problems: list[str] = []
    if not u.login.isprintable():
        problems.append(f"{what}: login has a line break or another control character")
    problem = name_problem(u.name)
    if problem:
        problems.append(f"{what}: name {problem}")
    if not u.provisioned:
        return problems
    if not u.ext:
        problems.append(f"{what}: has no extension, so it has no phone to provision")
    else:
        _check(problems, what, "ext", u.ext, EXTENSION, "is not 1 to 20 digits")
    if not u.secret:
        problems.append(f"{what}: has no secret; a phone is never provisioned without one")
    else:
        if not SECRET.fullmatch(u.secret):
            problems.append(
                f"{what}: secret must be 8 to 128 letters, digits or !$%&()*+,./:=?@^_{{|}}~- "
                "(no blank, quote, backslash, ';', '[', ']' or '#')"
            )
    if not 0 <= u.ring_time <= MAX_RING_TIME:
        problems.append(f"{what}: ring_time {u.ring_time} is not between 0 and {MAX_RING_TIME}")
    if u.voicemail:
        _check(problems, what, "voicemail", u.voicemail, CONTEXT, "is not a context")
    for field in (
        "record_in_internal",
        "record_in_external",
        "record_out_internal",
        "record_out_external",
    ):
        value = getattr(u, field)
        if value not in RECORDING_RULES:
            problems.append(f"{what}: {field} {value!r} is not one of {', '.join(RECORDING_RULES)}")
    return problems


def group_problems(g: Group) -> list[str]:
    what = f"group {g.id} ({g.name!r})"
    problems: list[str] = []
    problem = name_problem(g.name)
    if problem:
        problems.append(f"{what}: name {problem}")
    if not g.provisioned:
        return problems
    if g.kind != "ringgroup":
        problems.append(f"{what}: only ring groups are provisioned (this is a {g.kind})")
    _check(problems, what, "ext", g.ext, EXTENSION, "is not 1 to 20 digits")
    if g.strategy not in STRATEGIES:
        problems.append(f"{what}: strategy {g.strategy!r} is not one of {', '.join(STRATEGIES)}")
    if not 1 <= g.ring_time <= MAX_RING_TIME:
        problems.append(f"{what}: ring_time {g.ring_time} is not between 1 and {MAX_RING_TIME}")
    problem = noanswer_problem(g.noanswer)
    if problem:
        problems.append(f"{what}: noanswer {g.noanswer!r} {problem}")
    return problems


def noanswer_problem(value: str) -> str | None:
    """`''`/`hangup`, `busy`, `user:<login>`, `group:<id>`, `voicemail:<login>`,
    `number:<digits>` or `ivr:<context>`."""
    if value in ("", "hangup", "busy"):
        return None
    kind, sep, target = value.partition(":")
    if not sep or kind not in NOANSWER_KINDS or kind in ("hangup", "busy"):
        return (
            "is not a destination (hangup, busy, user:<login>, group:<id>, voicemail:<login>, "
            "number:<digits> or ivr:<context>)"
        )
    if kind == "group" and not target.isdigit():
        return "names no group id"
    if kind == "number" and not TELNUM.fullmatch(target):
        return "is not a number of 3 to 20 digits"
    if kind == "ivr" and not CONTEXT.fullmatch(target):
        return "is not a context name"
    if kind in ("user", "voicemail") and not target:
        return "names no login"
    return None


def number_problems(n: Number) -> list[str]:
    what = f"number {n.telnum!r}"
    problems: list[str] = []
    problem = name_problem(n.name)
    if problem:
        problems.append(f"{what}: name {problem}")
    if not n.provisioned:
        return problems
    _check(problems, what, "telnum", n.telnum, TELNUM, "is not 3 to 20 digits")
    if n.route_type not in ("user", "group", "ivr"):
        problems.append(f"{what}: route_type {n.route_type!r} is not one of user, group, ivr")
    elif n.route_type == "ivr":
        _check(problems, what, "route_to", n.route_to, CONTEXT, "is not a context")
    elif n.route_type == "group" and not n.route_to.isdigit():
        problems.append(f"{what}: route_to {n.route_to!r} is not a group id")
    elif not n.route_to:
        problems.append(f"{what}: route_to names nobody")
    return problems
