"""Call ids the rating route accepts: the shape of an Asterisk uniqueid, a known call.

res_agi passes whatever the dialplan wrote (``${CHANNEL(linkedid)}``), and anyone who can
reach the FastAGI port can write anything there, so the id is checked before it goes
near the database or a CRM. Asterisk builds a uniqueid in ``__ast_channel_alloc_ap`` as
``"%li.%d"`` (epoch seconds, a process-wide counter), or ``"%s-%li.%d"`` with the
``systemname`` of asterisk.conf in front; a linkedid is the uniqueid of the call's first
channel.
"""

from __future__ import annotations

import re

from .ports import KnownCall

__all__ = ["MAX_CALL_ID", "is_call_id", "known_by_any"]

MAX_CALL_ID = 150  # AST_MAX_UNIQUEID
_CALL_ID = re.compile(r"(?:[A-Za-z0-9][A-Za-z0-9_.-]{0,63}-)?[0-9]{1,20}\.[0-9]{1,10}")


def is_call_id(value: str) -> bool:
    """``1763805600.12`` or ``pbx1-1763805600.12``; nothing else (no spaces, quotes, ``;``)."""
    return len(value) <= MAX_CALL_ID and _CALL_ID.fullmatch(value) is not None


def known_by_any(*checks: KnownCall) -> KnownCall:
    """One KnownCall from several, asked in order: the first True wins; None if any could
    not tell and none said True; False only when all of them said False."""

    async def known(callid: str) -> bool | None:
        undecided = False
        for check in checks:
            verdict = await check(callid)
            if verdict:
                return True
            undecided = undecided or verdict is None
        return None if undecided else False

    return known
