"""AMI message text -> dict of headers.

AMI messages are `Key: Value` lines ended by `\r\n`, a message ended by a blank line.
Header names keep Asterisk's casing (`Uniqueid`, `DestLinkedid`), so lookups are plain
dict gets: this is the hot path (most traffic is VarSet/Newexten).
"""

from __future__ import annotations

AmiMessage = dict[str, str]


def parse_message(text: str) -> AmiMessage:
    """Parse one message (without its final blank line). Malformed lines are skipped;
    a repeated header keeps its last value."""
    message: AmiMessage = {}
    for line in text.split("\r\n"):
        key, sep, value = line.partition(": ")
        if sep:
            message[key] = value
        elif line.endswith(":"):  # `AccountCode:` with no value and no space
            message[line[:-1]] = ""
    return message
