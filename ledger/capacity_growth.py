"""The growth of a model's daily peak minutes, and when it reaches a limit (``ledger.capacity``'s forecast)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from ledger import forecast as forecasting

MIN_FORECAST_DAYS = 7
FIT_DAYS = 56  # the daily peaks the growth is fitted on, at most
HORIZON_DAYS = 365  # a limit further away than this is "not reached"


@dataclass(frozen=True)
class Growth:
    slope: float  # per day, of the log of the deseasonalised daily peak
    index: dict[int, float]  # weekday (Monday = 0) → its factor (mean 1)


def fit_growth(daily: Mapping[date, int], last_day: date) -> Growth | None:
    """A robust, weekday-aware fit of the daily peaks: the weekday index of the spend forecast
    (``ledger.forecast.weekday_index``, with 14 days or more), then the Theil–Sen slope (the median
    of every pair's slope, so a few outlier days do not move it) of the log of the peaks over that
    index. None with fewer than 7 days of traffic."""
    first = max(min(daily, default=last_day), last_day - timedelta(days=FIT_DAYS - 1))
    history = [
        (first + timedelta(days=i), Decimal(daily.get(first + timedelta(days=i), 0)))
        for i in range((last_day - first).days + 1)
    ]
    points = [(d, v) for d, v in history if v > 0]
    if len(points) < MIN_FORECAST_DAYS:
        return None
    index = (
        {w: float(f) for w, f in forecasting.weekday_index(history).items()}
        if len(history) >= 14
        else {w: 1.0 for w in range(7)}
    )
    xs = [((d - last_day).days, math.log(float(v) / index.get(d.weekday(), 1.0))) for d, v in points]
    slopes = sorted((y2 - y1) / (x2 - x1) for i, (x1, y1) in enumerate(xs) for x2, y2 in xs[i + 1 :] if x2 != x1)
    mid = len(slopes) // 2
    slope = slopes[mid] if len(slopes) % 2 else (slopes[mid - 1] + slopes[mid]) / 2
    return Growth(slope, index)


def reach_date(p99: int, limit: int, growth: Growth | None, last_day: date) -> date | None:
    """The first day after ``last_day`` whose projected p99 minute reaches ``limit``, or None.

    The p99 minute lies on the busiest weekdays: day d's projection is p99 · e^(slope·t) ·
    index[weekday] / max(index), t days after ``last_day``."""
    if growth is None or p99 <= 0:
        return None
    top = max(growth.index.values()) or 1.0
    for t in range(1, HORIZON_DAYS + 1):
        day = last_day + timedelta(days=t)
        if p99 * math.exp(growth.slope * t) * growth.index.get(day.weekday(), 1.0) / top >= limit:
            return day
    return None
