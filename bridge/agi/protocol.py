"""The FastAGI wire format, as res_agi.c speaks it (pure functions, no I/O).

Asterisk opens the TCP connection and sends ``agi_network: yes``, ``agi_network_script:
<path>`` and the ``agi_*`` environment (``agi_request`` ... ``agi_arg_N``), one
``key: value`` line each, ended by a blank line. Then the server sends commands, one line
each, and Asterisk answers every command with one reply line: ``200 result=1 (value)``,
``510 Invalid or unknown command``, ``511 Command Not Permitted on a dead channel``, or a
``520-`` block ended by ``520 End of proper usage.``. When the channel hangs up, Asterisk
writes ``HANGUP`` at any moment (also between a command and its reply) and keeps
answering in "dead" mode until the server closes the socket.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "AgiError",
    "AgiGarbage",
    "AgiHangup",
    "AgiReply",
    "arg_list",
    "parse_env_line",
    "parse_reply",
    "quote",
    "script_name",
]

_ENV_LINE = re.compile(r"agi_[a-z0-9_]+")
_REPLY = re.compile(r"(?P<code>\d{3})(?P<sep>[ -]|$)(?P<rest>.*)")
_RESULT = re.compile(r"result=(?P<result>-?\d+)(?P<tail>.*)")
# Characters that would end a command line or confuse Asterisk's argument parser.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class AgiError(Exception):
    """The conversation with Asterisk cannot go on (the session ends, the call does not)."""


class AgiHangup(AgiError):
    """Asterisk closed the connection (the channel is gone, or AGIEXITONHANGUP=yes)."""


class AgiGarbage(AgiError):
    """The peer sent something Asterisk never sends: not worth talking to."""


@dataclass(frozen=True, slots=True)
class AgiReply:
    """One reply: ``code`` 200 with ``result`` and the parenthesised ``data``, or an error."""

    code: int
    result: int | None = None
    data: str | None = None
    text: str = ""

    @property
    def ok(self) -> bool:
        """200 with a non-negative result: the command did what it was asked."""
        return self.code == 200 and self.result is not None and self.result >= 0


def parse_env_line(line: str) -> tuple[str, str]:
    """``agi_callerid: 79101234567`` -> ``("agi_callerid", "79101234567")``.

    Anything else is garbage: Asterisk sends nothing but ``agi_*`` keys before the blank
    line, so a server that tolerated other input would only be tolerating port scanners.
    """
    key, sep, value = line.partition(":")
    if not sep or _ENV_LINE.fullmatch(key) is None:
        raise AgiGarbage(f"not an AGI environment line: {line[:60]!r}")
    return key, value.removeprefix(" ")


def parse_reply(line: str) -> tuple[AgiReply, bool]:
    """Parse one reply line; the flag says a ``NNN-`` continuation block has started."""
    match = _REPLY.fullmatch(line)
    if match is None:
        raise AgiGarbage(f"not an AGI reply: {line[:60]!r}")
    code = int(match["code"])
    rest = match["rest"].strip()
    if match["sep"] == "-":
        return AgiReply(code, text=rest), True
    if code != 200:
        return AgiReply(code, text=rest), False
    result = _RESULT.match(rest)
    if result is None:
        raise AgiGarbage(f"200 reply without result=: {line[:60]!r}")
    tail = result["tail"].strip()
    data: str | None = None
    if tail.startswith("("):
        # `200 result=1 (value)`: the value may itself contain parentheses.
        close = tail.rfind(")")
        data = tail[1:close] if close > 0 else tail[1:]
    return AgiReply(code, int(result["result"]), data, rest), False


def quote(value: str) -> str:
    """One argument for Asterisk's ``parse_args``: double quotes, ``\\`` escapes ``"`` and ``\\``.

    Control characters are dropped, so a CRM answer can never end the command line and
    smuggle a second command (``EXEC System ...``) onto the socket.
    """
    clean = _CONTROL.sub(" ", value)
    return '"' + clean.replace("\\", "\\\\").replace('"', '\\"') + '"'


def script_name(env: dict[str, str]) -> str:
    """The route: ``agi_network_script`` (``contact`` for ``agi://host:4573/contact``).

    Falls back to the path of ``agi_request``; a query string and slashes are dropped.
    """
    script = env.get("agi_network_script", "")
    if not script:
        request = env.get("agi_request", "")
        if request.lower().startswith(("agi://", "hagi://")):
            _, _, script = request.split("://", 1)[1].partition("/")
    return script.split("?", 1)[0].strip().strip("/")


def arg_list(env: dict[str, str]) -> list[str]:
    """``agi_arg_1`` ... ``agi_arg_N`` in order (Asterisk numbers them from 1, no gaps)."""
    args: list[str] = []
    while (value := env.get(f"agi_arg_{len(args) + 1}")) is not None:
        args.append(value)
    return args
