"""Periods are calendar-aligned in the budget's zone, as UTC instants, across DST changes."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from alerts.periods import period_window

BERLIN, NEW_YORK, KOLKATA = ZoneInfo("Europe/Berlin"), ZoneInfo("America/New_York"), ZoneInfo("Asia/Kolkata")


def test_day_is_23_hours_on_the_spring_dst_change() -> None:
    w = period_window("day", BERLIN, datetime(2026, 3, 29, 12, tzinfo=UTC))
    assert (w.start, w.end) == (datetime(2026, 3, 28, 23, tzinfo=UTC), datetime(2026, 3, 29, 22, tzinfo=UTC))


def test_week_starts_monday_local_midnight() -> None:
    # Sunday 23:30 in New York is Monday 04:30 UTC: still the week that began on the Monday before
    w = period_window("week", NEW_YORK, datetime(2026, 11, 23, 4, 30, tzinfo=UTC))
    assert (w.first_day, w.end_day) == (date(2026, 11, 16), date(2026, 11, 23))
    assert w.start == datetime(2026, 11, 16, 5, tzinfo=UTC)


def test_month_spanning_the_autumn_change() -> None:
    w = period_window("month", BERLIN, datetime(2026, 10, 15, tzinfo=UTC))
    assert (w.start, w.end) == (datetime(2026, 9, 30, 22, tzinfo=UTC), datetime(2026, 10, 31, 23, tzinfo=UTC))
    assert w.days == 31


def test_quarter_and_half_hour_zones() -> None:
    w = period_window("quarter", KOLKATA, datetime(2026, 12, 31, 19, tzinfo=UTC))  # Jan 1st 00:30 in Kolkata
    assert (w.first_day, w.end_day) == (date(2027, 1, 1), date(2027, 4, 1))
    assert w.start == datetime(2026, 12, 31, 18, 30, tzinfo=UTC)


def test_custom_periods_repeat_from_their_start() -> None:
    w = period_window("custom", ZoneInfo("UTC"), datetime(2026, 11, 21, tzinfo=UTC), date(2026, 11, 3), 14)
    assert (w.first_day, w.end_day) == (date(2026, 11, 17), date(2026, 12, 1))
    with pytest.raises(ValueError, match="custom period needs"):
        period_window("custom", ZoneInfo("UTC"), datetime(2026, 11, 21, tzinfo=UTC))


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        period_window("day", BERLIN, datetime(2026, 11, 21))  # noqa: DTZ001
