"""End-of-period spend forecast: actual so far plus a weekday-aware daily rate with a linear trend.

Method (see docs/alerts.md): from up to 28 complete local days before today,
- level: the mean of the last 7 days (one of each weekday, so seasonality cancels out);
- trend: (mean of the last 7 days - mean of the 7 before) / 7 per day, when 14 days are known;
- weekday index: each day's spend over its centred 7-day moving average, averaged per weekday
  and normalised to a mean of 1 (classical decomposition; exact for a linear trend);
- each remaining day t (0 = today) is projected at
  ``max(RATE_FLOOR * level, level + trend * (t + 4)) * index[weekday]``, today's only for its part
  still to come: a falling trend never takes a day below a quarter of the run-rate, so the forecast
  never drops to (or below) what is already spent while money is still being spent.
Fewer than 14 days: no trend, no weekday index. No complete day at all: no forecast.
:func:`forecast_detail` also says which of these methods produced the figure and the 7-day run-rate.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

HISTORY_DAYS = 28
RATE_FLOOR = Decimal("0.25")  # a projected day is never below this share of the run-rate
_ZERO = Decimal(0)
# What produced a forecast, in words a reader of the page understands.
METHODS = {
    "actual": "the period is over: this is what was spent",
    "average": "spent so far plus, for each day left, the average of the complete days so far",
    "trend": (
        "spent so far plus, for each day left, the 7-day run-rate adjusted by the trend of the last"
        " 14 days and the weekday pattern (never below a quarter of the run-rate)"
    ),
}


@dataclass(frozen=True)
class Forecast:
    """A projected end-of-period spend and how it was reached."""

    total: Decimal
    spent: Decimal  # actual spend so far in the period
    run_rate: Decimal | None  # mean daily spend of the last 7 complete days (fewer when fewer are known)
    method: str  # a key of METHODS

    @property
    def explanation(self) -> str:
        return METHODS[self.method]


def _mean(values: list[Decimal]) -> Decimal:
    return sum(values, _ZERO) / len(values) if values else _ZERO


def weekday_index(history: list[tuple[date, Decimal]]) -> dict[int, Decimal]:
    """Weekday factors (Monday = 0) from the centred 7-day moving average; 1 where unknown."""
    ratios: dict[int, list[Decimal]] = {}
    for i in range(3, len(history) - 3):
        average = _mean([v for _, v in history[i - 3 : i + 4]])
        if average > 0:
            ratios.setdefault(history[i][0].weekday(), []).append(history[i][1] / average)
    if len(ratios) < 7:
        return {w: Decimal(1) for w in range(7)}
    factors = {w: _mean(r) for w, r in ratios.items()}
    norm = _mean(list(factors.values()))
    return {w: (f / norm if norm > 0 else Decimal(1)) for w, f in factors.items()}


def _history_days(daily: Mapping[date, Decimal], today: date) -> int:
    """How many complete days the rates learn from: since the first day with spend, at most 28."""
    known = [d for d in daily if d < today and daily[d] > 0]
    return (today - max(min(known), today - timedelta(days=HISTORY_DAYS))).days if known else 0


def daily_rates(daily: Mapping[date, Decimal], today: date) -> tuple[Decimal, Decimal, dict[int, Decimal]] | None:
    """(level, trend per day, weekday index) from the complete days before ``today``, or None."""
    days = _history_days(daily, today)
    if not days:
        return None
    first = today - timedelta(days=days)
    history = [
        (first + timedelta(days=i), daily.get(first + timedelta(days=i), _ZERO)) for i in range((today - first).days)
    ]
    if len(history) < 14:
        return _mean([v for _, v in history]), _ZERO, {w: Decimal(1) for w in range(7)}
    last, before = [v for _, v in history[-7:]], [v for _, v in history[-14:-7]]
    return _mean(last), (_mean(last) - _mean(before)) / 7, weekday_index(history)


def forecast_spend(
    daily: Mapping[date, Decimal],
    first_day: date,
    end_day: date,
    today: date,
    today_elapsed: Decimal,
) -> Decimal | None:
    """Projected spend over [first_day, end_day): the actual so far plus the projected rest.

    ``daily`` maps local days to spend (today's partial); ``today_elapsed`` is the share of today
    gone (0..1). None when there is no complete day to learn a rate from."""
    found = forecast_detail(daily, first_day, end_day, today, today_elapsed)
    return None if found is None else found.total


def run_rate(daily: Mapping[date, Decimal], today: date) -> Decimal | None:
    """Mean daily spend of the last 7 complete days before ``today`` (from the first day with spend)."""
    known = [d for d in daily if d < today and daily[d] > 0]
    if not known:
        return None
    first = max(min(known), today - timedelta(days=7))
    return _mean([daily.get(first + timedelta(days=i), _ZERO) for i in range((today - first).days)])


def forecast_detail(
    daily: Mapping[date, Decimal],
    first_day: date,
    end_day: date,
    today: date,
    today_elapsed: Decimal,
) -> Forecast | None:
    """:func:`forecast_spend` with its method and the 7-day run-rate beside it."""
    actual = sum((v for d, v in daily.items() if first_day <= d <= today), _ZERO)
    rate = run_rate(daily, today)
    if today >= end_day:
        return Forecast(actual, actual, rate, "actual")
    rates = daily_rates(daily, today)
    if rates is None:
        return None
    level, trend, index = rates
    floor = RATE_FLOOR * level
    rest = _ZERO
    for t in range((end_day - today).days):
        day = today + timedelta(days=t)
        projected = max(floor, level + trend * (t + 4)) * index.get(day.weekday(), Decimal(1))
        rest += projected * (1 - today_elapsed) if t == 0 else projected
    return Forecast(actual + rest, actual, rate, "trend" if _history_days(daily, today) >= 14 else "average")


def crossed(value: Decimal | None, amount: Decimal, thresholds: list[Decimal]) -> list[Decimal]:
    """The thresholds (percent of ``amount``) that ``value`` has reached, exactly."""
    if value is None or amount <= 0:
        return []
    return [t for t in thresholds if value * 100 >= t * amount]
