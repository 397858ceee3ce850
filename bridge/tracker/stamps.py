"""Asterisk's clock in its events: the `Timestamp` header (epoch seconds, microseconds).

Any other text there (`nan`, `inf`, `1e300`, a negative number) is no clock: the event's
time is then when it was received. Taken as is, `nan` makes every comparison false and a
year past 9999 cannot be stored.
"""

from __future__ import annotations

__all__ = ["LATEST", "stamp_of"]

LATEST = float(2**33)  # the year 2242


def stamp_of(text: object, default: float) -> float:
    """The time `text` says, or `default` when it says none a clock could."""
    if not text:  # most events (timestampevents = no): no exception raised for them
        return default
    try:
        value = float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return default
    return value if 0.0 < value < LATEST else default
