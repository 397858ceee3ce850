"""The time window of a history request (section 4.5 of the VPBX documentation).

- `period` set: that period, whatever `start` and `end` say;
- else `start`/`end`; no `end`: now; no `start`: the start of `end`'s day;
- none of the three: today.
`week` and `month` are `this_week` and `this_month`: the documentation's own request
example sends `"period": "week"`, so clients copied from it do too.

Days, weeks (Monday to Sunday) and months are the PBX's: the local time zone of the host
the bridge runs on, which is the one Asterisk writes its CDRs in (the `TZ` environment
variable, else `/etc/localtime`, else UTC). Windows are half-open: a call belongs to
[since, until) by its start.

`now()` and `zone()` are looked up on this module at every request, so tests can replace
them (no sleeping until a day changes).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

PERIODS = ("today", "yesterday", "this_week", "last_week", "this_month", "last_month")
ALIASES = {"week": "this_week", "month": "this_month"}


def now() -> datetime:
    return datetime.now(UTC)


@functools.cache
def zone() -> tzinfo:
    """The host's time zone, with its daylight-saving rules."""
    name = os.environ.get("TZ", "").lstrip(":")
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    try:
        with open("/etc/localtime", "rb") as f:
            return ZoneInfo.from_file(f, key="localtime")
    except (OSError, ValueError):
        return UTC


@dataclass(frozen=True, slots=True)
class Window:
    since: datetime
    until: datetime


def _midnight(day: date, tz: tzinfo) -> datetime:
    return datetime.combine(day, time(), tzinfo=tz).astimezone(UTC)


def _month_start(day: date) -> date:
    return day.replace(day=1)


def _next_month(day: date) -> date:
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1)


def period_window(period: str, at: datetime, tz: tzinfo) -> Window:
    """The local day, week or month `period` (or its alias) names, as seen at `at`."""
    period = ALIASES.get(period, period)
    today = at.astimezone(tz).date()
    monday = today - timedelta(days=today.weekday())
    first, last_first = _month_start(today), _month_start(_month_start(today) - timedelta(days=1))
    days = {
        "today": (today, today + timedelta(days=1)),
        "yesterday": (today - timedelta(days=1), today),
        "this_week": (monday, monday + timedelta(days=7)),
        "last_week": (monday - timedelta(days=7), monday),
        "this_month": (first, _next_month(first)),
        "last_month": (last_first, first),
    }
    if period not in days:
        raise ValueError(f"period: {period!r} is not one of {', '.join(PERIODS)}")
    start, end = days[period]
    return Window(_midnight(start, tz), _midnight(end, tz))


def history_window(
    period: str | None, start: datetime | None, end: datetime | None, at: datetime, tz: tzinfo
) -> Window:
    """The rules of section 4.5; ValueError when `start` comes after `end`, or `end` is
    at the very end (or start) of the calendar."""
    if period is not None:
        return period_window(period, at, tz)
    if start is None and end is None:
        return period_window("today", at, tz)
    until = end if end is not None else at
    try:
        since = start if start is not None else _midnight(until.astimezone(tz).date(), tz)
    except OverflowError:  # the calendar's last (or first) day, moved into `tz`
        raise ValueError("end: outside the dates a call can have") from None
    if since > until:
        raise ValueError("start: must not be after end")
    return Window(since, until)
