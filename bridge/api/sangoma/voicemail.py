"""Finding the voicemail a call left, in Asterisk's file spool (app_voicemail, file storage).

Asterisk keeps each message as `<spool>/<context>/<mailbox>/<folder>/msgNNNN.txt` (its
metadata) beside the audio (`msgNNNN.wav`, `.WAV`, `.gsm`, ...); a message moves from
INBOX to Old (or another folder) once heard. The `.txt` says, in `[message]`:
`callerchan` (the caller's channel, e.g. `PJSIP/trunk-0000002a`), `callerid`
(`"Name" <number>`), `origtime` (Unix seconds when recording began) and, from Asterisk 13
on, `msg_id`.

A message is the call's when it was left while the call was up (`origtime` between the
call's start and end, a second of slack each side) and it comes from the call: its
`callerchan` is one of the call's channels, or else its caller number is the call's
customer. The mailboxes of the employees the call reached are searched first, then every
mailbox, reading only `.txt` files written after the call started. Of several, a message
from the call's own channel wins, then the one left last.
"""

from __future__ import annotations

import configparser
import glob
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

AUDIO = (".wav", ".WAV", ".gsm", ".wav49", ".mp3", ".ogg", ".g722", ".ulaw", ".alaw", ".sln")
_NUMBER = re.compile(r"<([^>]*)>\s*$")
MAX_TXT = 64 * 1024  # bytes of a message's .txt we read
SLACK = 1.0  # seconds


@dataclass(frozen=True, slots=True)
class Message:
    txt: Path
    origtime: float
    callerchan: str
    caller_number: str
    msg_id: str

    def audio(self) -> Path | None:
        for suffix in AUDIO:
            candidate = self.txt.with_suffix(suffix)
            if candidate.is_file():
                return candidate
        return None


def read_message(txt: Path) -> Message | None:
    """The metadata of one message; None when it is not a readable message file."""
    try:
        if txt.stat().st_size > MAX_TXT:
            return None
        text = txt.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(text)
        section = parser["message"]
        origtime = float(section.get("origtime", ""))
    except (configparser.Error, KeyError, ValueError):
        return None
    callerid = section.get("callerid", "").strip()
    found = _NUMBER.search(callerid)
    number = (found.group(1) if found else callerid).strip().strip('"')
    return Message(
        txt, origtime, section.get("callerchan", "").strip(), number, section.get("msg_id", "")
    )


@dataclass(frozen=True, slots=True)
class CallTrace:
    """What ties a message to a call."""

    start: float
    end: float
    channels: frozenset[str]  # every channel of the call
    mailboxes: frozenset[str]  # the employees' extensions it reached
    phone: str  # the customer, E.164 digits


def _messages(spool: Path, mailboxes: Iterable[str] | None, since: float) -> Iterable[Path]:
    """`.txt` files of these mailboxes (None: all) written at or after `since`."""
    patterns = (
        [glob.escape(box) for box in sorted(mailboxes) if box and "/" not in box and box[0] != "."]
        if mailboxes is not None
        else ["*"]
    )
    for box in patterns:
        for txt in spool.glob(f"*/{box}/*/msg*.txt"):
            try:
                if txt.stat().st_mtime >= since:
                    yield txt
            except OSError:
                continue


def find_voicemail(spool: Path, call: CallTrace, normalize: Callable[[str], str]) -> Message | None:
    """The message this call left, with its audio; None when there is none (blocking I/O:
    run it in a thread)."""
    if not spool.is_dir():
        return None
    root = spool.resolve()
    since = call.start - 5.0
    for scope in (call.mailboxes, None):
        if scope is not None and not scope:
            continue
        best: tuple[bool, float, Message] | None = None
        for txt in _messages(spool, scope, since):
            msg = read_message(txt)
            if msg is None or not call.start - SLACK <= msg.origtime <= call.end + SLACK:
                continue
            own_channel = bool(msg.callerchan) and msg.callerchan in call.channels
            same_caller = bool(call.phone) and normalize(msg.caller_number) == call.phone
            if not (own_channel or same_caller):
                continue
            if not txt.resolve().is_relative_to(root) or msg.audio() is None:
                continue
            key = (own_channel, msg.origtime, msg)
            if best is None or key[:2] > best[:2]:
                best = key
        if best is not None:
            return best[2]
    return None
