"""Budget periods: calendar-aligned in the budget's own time zone, returned as UTC-aware bounds.

Every boundary is a local midnight, so periods line up with day buckets in that zone and a DST
change makes a day 23 or 25 hours long instead of moving the boundary.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

PERIODS = ("day", "week", "month", "quarter", "custom")


@dataclass(frozen=True)
class Window:
    start: datetime  # UTC
    end: datetime  # UTC, exclusive
    first_day: date  # local dates: [first_day, end_day)
    end_day: date

    @property
    def days(self) -> int:
        return (self.end_day - self.first_day).days


def midnight(day: date, tz: ZoneInfo) -> datetime:
    """The UTC instant of local midnight starting ``day`` in ``tz``."""
    return datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(UTC)


def _add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def period_window(
    period: str,
    tz: ZoneInfo,
    now: datetime,
    custom_start: date | None = None,
    custom_days: int | None = None,
) -> Window:
    """The period containing ``now`` (a custom period not begun yet answers its first window)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    today = now.astimezone(tz).date()
    if period == "day":
        first, end = today, today + timedelta(days=1)
    elif period == "week":  # ISO weeks: Monday to Monday
        first = today - timedelta(days=today.weekday())
        end = first + timedelta(days=7)
    elif period == "month":
        first = today.replace(day=1)
        end = _add_months(first, 1)
    elif period == "quarter":
        first = date(today.year, (today.month - 1) // 3 * 3 + 1, 1)
        end = _add_months(first, 3)
    elif period == "custom":
        if custom_start is None or not custom_days or custom_days < 1:
            raise ValueError("a custom period needs a start date and a length in days")
        elapsed = (today - custom_start).days
        index = max(0, elapsed // custom_days)
        first = custom_start + timedelta(days=index * custom_days)
        end = first + timedelta(days=custom_days)
    else:
        raise ValueError(f"unknown period {period!r}; known: {', '.join(PERIODS)}")
    return Window(midnight(first, tz), midnight(end, tz), first, end)


def day_window(tz: ZoneInfo, now: datetime) -> Window:
    return period_window("day", tz, now)
