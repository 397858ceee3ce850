"""The order of Asterisk's channel ids.

A uniqueid is ``<epoch>.<counter>``, or ``<systemname>-<epoch>.<counter>``: whole seconds
and a process-wide integer counter (``__ast_channel_alloc_ap``), so ``1700000000.10`` was
made after ``1700000000.9``, which a float or a string comparison gets wrong. The ids the
bridge gives its own click-to-call channels have a counter written with a leading zero
(Asterisk never writes one); they come first among the ids of their second, since the
bridge's channel is the one that starts such a call. Anything else sorts last, by text.
"""

from __future__ import annotations

__all__ = ["uid_order"]

_OTHER = (1 << 63, 0, 0)


def uid_order(uid: str) -> tuple[int, int, int, str]:
    """Sort key: (epoch, 0 for the bridge's own ids else 1, counter, the id itself)."""
    stamp = uid.rsplit("-", 1)[-1]
    seconds, dot, counter = stamp.partition(".")
    digits = seconds + counter
    number = seconds.isdigit() and counter.isdigit() and digits.isascii()
    if not (dot and number and len(digits) <= 40):  # int() of thousands of digits raises
        return (*_OTHER, uid)
    own = len(counter) > 1 and counter.startswith("0")
    return (int(seconds), 0 if own else 1, int(counter), uid)
