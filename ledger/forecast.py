"""End-of-period spend forecast: actual so far plus a weekday-aware daily rate with a linear trend.

Method (see docs/alerts.md): from up to 28 complete local days before today,
- level: the mean of the last 7 days (one of each weekday, so seasonality cancels out);
- trend: (mean of the last 7 days - mean of the 7 before) / 7 per day, when 14 days are known;
- weekday index: each day's spend over its centred 7-day moving average, averaged per weekday
  and normalised to a mean of 1 (classical decomposition; exact for a linear trend);
- each remaining day t (0 = today) is projected at ``max(0, level + trend * (t + 4)) * index[weekday]``,
  today's only for its part still to come.
Fewer than 14 days: no trend, no weekday index. No complete day at all: no forecast.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta
from decimal import Decimal

HISTORY_DAYS = 28
_ZERO = Decimal(0)


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


def daily_rates(daily: Mapping[date, Decimal], today: date) -> tuple[Decimal, Decimal, dict[int, Decimal]] | None:
    """(level, trend per day, weekday index) from the complete days before ``today``, or None."""
    known = [d for d in daily if d < today and daily[d] > 0]
    if not known:
        return None
    first = max(min(known), today - timedelta(days=HISTORY_DAYS))
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
    actual = sum((v for d, v in daily.items() if first_day <= d <= today), _ZERO)
    if today >= end_day:
        return actual
    rates = daily_rates(daily, today)
    if rates is None:
        return None
    level, trend, index = rates
    rest = _ZERO
    for t in range((end_day - today).days):
        day = today + timedelta(days=t)
        rate = max(_ZERO, level + trend * (t + 4)) * index.get(day.weekday(), Decimal(1))
        rest += rate * (1 - today_elapsed) if t == 0 else rate
    return actual + rest


def crossed(value: Decimal | None, amount: Decimal, thresholds: list[Decimal]) -> list[Decimal]:
    """The thresholds (percent of ``amount``) that ``value`` has reached, exactly."""
    if value is None or amount <= 0:
        return []
    return [t for t in thresholds if value * 100 >= t * amount]
