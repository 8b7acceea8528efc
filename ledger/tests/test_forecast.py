"""The forecast on synthetic series: flat, growing and weekday-seasonal."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from decimal import Decimal

import pytest

from ledger.forecast import RATE_FLOOR, crossed, forecast_detail, forecast_spend

FIRST, END = date(2026, 11, 1), date(2026, 12, 1)  # November: 30 days
TODAY = date(2026, 11, 21)  # a Saturday: the rest of the month is weekend-heavy
HALF = Decimal("0.5")


def flat(day: date) -> Decimal:
    return Decimal(10)


def growing(day: date) -> Decimal:
    return Decimal(10) + Decimal("0.75") * (day - date(2026, 10, 1)).days


def weekday_seasonal(day: date) -> Decimal:
    return Decimal(2) if day.weekday() >= 5 else Decimal(20)


def series(f: Callable[[date], Decimal]) -> tuple[dict[date, Decimal], Decimal]:
    """Spend known up to half of today, and the true total of the month."""
    known = {d: f(d) for d in (date(2026, 10, 1) + timedelta(days=i) for i in range(51))}
    known[TODAY] = f(TODAY) * HALF
    truth = sum((f(FIRST + timedelta(days=i)) for i in range(30)), Decimal(0))
    return known, truth


@pytest.mark.parametrize("shape", [flat, growing, weekday_seasonal])
def test_forecast_fires_when_and_only_when_the_month_will_cross(shape: Callable[[date], Decimal]) -> None:
    daily, truth = series(shape)
    forecast = forecast_spend(daily, FIRST, END, TODAY, HALF)
    assert forecast is not None
    assert abs(forecast - truth) / truth < Decimal("0.01")
    # an amount the month will exceed by 2 %: the 100 % forecast threshold fires ...
    assert crossed(forecast, truth / Decimal("1.02"), [Decimal(100)]) == [Decimal(100)]
    # ... and one it will stay 2 % under: it does not
    assert crossed(forecast, truth / Decimal("0.98"), [Decimal(100)]) == []


def test_weekday_seasonality_matters_here() -> None:
    """The seasonal case is a real test: a weekday-blind rate would fire on the amount it must not."""
    daily, truth = series(weekday_seasonal)
    actual = sum((v for d, v in daily.items() if d >= FIRST), Decimal(0))
    blind_rate = sum((daily[TODAY - timedelta(days=i)] for i in range(1, 8)), Decimal(0)) / 7
    blind = actual + blind_rate * (Decimal(9) + HALF)
    assert abs(blind - truth) / truth > Decimal("0.02")
    assert crossed(blind, truth / Decimal("0.98"), [Decimal(100)]) == [Decimal(100)]


def test_no_complete_day_means_no_forecast() -> None:
    assert forecast_spend({TODAY: Decimal(5)}, TODAY.replace(day=1), END, TODAY, HALF) is None


def falling(day: date) -> Decimal:
    """A steep fall: 60/day four weeks ago, 4/day for the last week; the linear trend would project ~0."""
    return max(Decimal(4), Decimal(60) - Decimal(3) * (day - date(2026, 10, 24)).days)


def test_a_falling_trend_never_takes_the_forecast_below_spent_plus_a_floor() -> None:
    daily, _ = series(falling)
    found = forecast_detail(daily, FIRST, END, TODAY, HALF)
    assert found is not None
    assert found.method == "trend"
    assert found.run_rate == Decimal(4)  # the last 7 complete days
    assert found.spent == sum((v for d, v in daily.items() if d >= FIRST), Decimal(0))
    # the trend ((4 - 9.7) / 7 per day) takes every day left below a quarter of the run-rate
    days_left = (END - TODAY).days - HALF
    floor = RATE_FLOOR * found.run_rate * days_left
    assert found.total >= found.spent + floor
    assert found.total == pytest.approx(found.spent + floor, rel=Decimal("0.2"))
    assert forecast_spend(daily, FIRST, END, TODAY, HALF) == found.total


def test_the_forecast_says_which_method_produced_it() -> None:
    few = {TODAY - timedelta(days=i): Decimal(3) for i in range(1, 4)}
    short = forecast_detail(few, FIRST, END, TODAY, HALF)
    assert short is not None
    assert (short.method, short.run_rate) == ("average", Decimal(3))
    assert "average of the complete days" in short.explanation
    long = forecast_detail(series(flat)[0], FIRST, END, TODAY, HALF)
    assert long is not None
    assert long.method == "trend"
    assert "run-rate" in long.explanation
    over = forecast_detail(series(flat)[0], FIRST, TODAY, TODAY, HALF)
    assert over is not None
    assert over.method == "actual"
