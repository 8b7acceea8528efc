"""Each budget's burn for the dashboards: spent, percent and forecast of the current period."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from alerts.evaluate import measure, window_of
from alerts.models import Budget
from alerts.periods import Window
from alerts.spend import SpendRequest, daily_spend
from ledger import forecast as forecasting

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Burn:
    window: Window
    spent: Decimal
    percent: Decimal
    forecast: Decimal | None
    forecast_percent: Decimal | None
    daily: dict[date, Decimal] = field(default_factory=dict)  # local-day spend of the period so far
    run_rate: Decimal | None = None  # mean daily spend of the last 7 complete days
    method: str = ""  # how the forecast was made, in words (ledger.forecast.METHODS)

    @property
    def bar(self) -> int:
        return int(min(Decimal(100), self.percent))

    @property
    def tone(self) -> str:
        worst = max(self.percent, self.forecast_percent or Decimal(0))
        return "bad" if self.percent >= 100 else "warn" if worst >= 80 else "good"


def burns(budgets: list[Budget], now: datetime | None = None) -> dict[int, Burn]:
    """One batched spend read for all the budgets; the forecast for every one of them."""
    now = now or datetime.now(UTC)
    requests = []
    usable = []
    for budget in budgets:
        try:  # a budget whose period cannot be computed has no burn; the others still do
            tz = ZoneInfo(budget.timezone)
            first = min(
                now.astimezone(tz).date() - timedelta(days=forecasting.HISTORY_DAYS), window_of(budget, now).first_day
            )
        except Exception:  # bad stored dates or zone: this budget only, with the traceback in the log
            log.exception("budget %s: cannot compute its period", budget.pk)
            continue
        usable.append(budget)
        requests.append(SpendRequest(budget.pk, budget.project_id, tz, budget.scope, first))
    series = daily_spend(requests, now)
    out = {}
    for budget in usable:
        try:
            m = measure(budget, series.get(budget.pk, {}), now)
        except Exception:  # one budget that cannot be measured must not hide the others' burn
            log.exception("budget %s: cannot measure its burn", budget.pk)
            continue
        tz = ZoneInfo(budget.timezone)
        today = now.astimezone(tz).date()
        daily = series.get(budget.pk, {})
        found = None
        if m.window.start <= now:
            day = m.day
            elapsed = Decimal((now - day.start).total_seconds()) / Decimal((day.end - day.start).total_seconds())
            found = forecasting.forecast_detail(daily, m.window.first_day, m.window.end_day, today, elapsed)
        forecast = found.total if found is not None else m.forecast
        out[budget.pk] = Burn(
            window=m.window,
            spent=m.spend,
            percent=(m.spend * 100 / budget.amount).quantize(Decimal("0.1")),
            forecast=forecast,
            forecast_percent=None if forecast is None else (forecast * 100 / budget.amount).quantize(Decimal("0.1")),
            daily={d: v for d, v in series.get(budget.pk, {}).items() if m.window.first_day <= d < m.window.end_day},
            run_rate=forecasting.run_rate(daily, today),
            method=found.explanation if found is not None else "",
        )
    return out
