"""The history window of section 4.5, pure: local days, weeks and months of the PBX's time
zone, daylight-saving days, and where "the PBX's time zone" comes from. (No database: kept
beside the dialect's other tests.)"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from bridge.api.vpbx import periods
from bridge.api.vpbx.periods import Window, history_window, period_window

BERLIN = ZoneInfo("Europe/Berlin")  # summer time ends on Sunday 2026-10-25, 03:00 -> 02:00


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(
    ("period", "since", "until"),
    [
        ("today", utc(2026, 10, 24, 22), utc(2026, 10, 25, 23)),  # a 25-hour day
        ("yesterday", utc(2026, 10, 23, 22), utc(2026, 10, 24, 22)),
        ("this_week", utc(2026, 10, 18, 22), utc(2026, 10, 25, 23)),  # Monday to Sunday
        ("last_week", utc(2026, 10, 11, 22), utc(2026, 10, 18, 22)),
        ("this_month", utc(2026, 9, 30, 22), utc(2026, 10, 31, 23)),
        ("last_month", utc(2026, 8, 31, 22), utc(2026, 9, 30, 22)),
    ],
)
def test_periods_are_local_with_their_daylight_saving(period, since, until) -> None:
    at = utc(2026, 10, 25, 12)  # Sunday, the day summer time ends
    assert period_window(period, at, BERLIN) == Window(since, until)


def test_months_across_a_year() -> None:
    at = utc(2027, 1, 15, 9)
    assert period_window("last_month", at, UTC) == Window(utc(2026, 12, 1), utc(2027, 1, 1))
    assert period_window("this_month", at, UTC) == Window(utc(2027, 1, 1), utc(2027, 2, 1))
    at = utc(2028, 2, 29, 9)  # a leap day
    assert period_window("this_month", at, UTC) == Window(utc(2028, 2, 1), utc(2028, 3, 1))


def test_the_five_rules() -> None:
    now = utc(2026, 11, 22, 15, 30)
    start, end = utc(2026, 11, 20, 8), utc(2026, 11, 21, 18)
    today = Window(utc(2026, 11, 22), utc(2026, 11, 23))
    # 1. a period wins over start and end
    assert history_window("today", start, end, now, UTC) == today
    # 2. start and end
    assert history_window(None, start, end, now, UTC) == Window(start, end)
    # 3. no end: now
    assert history_window(None, start, None, now, UTC) == Window(start, now)
    # 4. no start: the start of end's (local) day
    assert history_window(None, None, end, now, UTC) == Window(utc(2026, 11, 21), end)
    assert history_window(None, None, end, now, ZoneInfo("Asia/Vladivostok")) == Window(
        utc(2026, 11, 21, 14), end
    ), "18:00 UTC is 04:00 of the 22nd in Vladivostok"
    # 5. nothing: today
    assert history_window(None, None, None, now, UTC) == today
    with pytest.raises(ValueError, match="start"):
        history_window(None, end, start, now, UTC)
    with pytest.raises(ValueError, match="period"):
        period_window("fortnight", now, UTC)


@pytest.mark.parametrize(
    ("end", "zone"),
    [
        (datetime(9999, 12, 31, 23, tzinfo=UTC), "Europe/Moscow"),  # local: year 10000
        (datetime(1, 1, 1, 0, 30, tzinfo=UTC), "America/New_York"),  # local: year 0
    ],
)
def test_an_end_at_the_calendars_edge_is_a_plain_error(end: datetime, zone: str) -> None:
    with pytest.raises(ValueError, match="outside the dates"):
        history_window(None, None, end, utc(2026, 11, 28), ZoneInfo(zone))
    assert history_window(None, None, end, utc(2026, 11, 28), UTC).until == end


def test_week_and_month_are_this_week_and_this_month() -> None:
    """The documentation's request example sends `"period": "week"`."""
    at = utc(2026, 10, 25, 12)
    assert period_window("week", at, BERLIN) == period_window("this_week", at, BERLIN)
    assert period_window("month", at, BERLIN) == period_window("this_month", at, BERLIN)


def test_the_pbx_time_zone_is_the_hosts(monkeypatch) -> None:
    periods.zone.cache_clear()
    monkeypatch.setenv("TZ", "Europe/Moscow")
    try:
        assert periods.zone() == ZoneInfo("Europe/Moscow")
        periods.zone.cache_clear()
        monkeypatch.setenv("TZ", ":Asia/Tokyo")
        assert periods.zone() == ZoneInfo("Asia/Tokyo")
        periods.zone.cache_clear()
        monkeypatch.setenv("TZ", "No/Such_Zone")
        assert periods.zone() is not None, "falls back to /etc/localtime or UTC"
    finally:
        periods.zone.cache_clear()
