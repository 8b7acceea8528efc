"""Budget evaluation: measure each budget's spend, forecast and anomalies, then fire what is crossed.

Called right after a rollup for the projects it touched, on the periodic schedule, and by the
``check_budgets`` command. Spend is read through ``ledger.queries.usage`` in batches (alerts.spend).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.db import transaction

from alerts import forecast as forecasting
from alerts.firing import fire, rearm_after_amount_change
from alerts.models import Budget, Rule, RuleKind, Signal
from alerts.outliers import token_outliers
from alerts.periods import Window, day_window, period_window
from alerts.spend import Daily, SpendRequest, daily_spend, top_contributors

log = logging.getLogger(__name__)

BASELINE_DAYS = 14  # a day-spike anomaly compares today with the mean of up to this many days
MIN_BASELINE_DAYS = 7


@dataclass(frozen=True)
class Measurement:
    window: Window
    day: Window
    spend: Decimal
    forecast: Decimal | None
    today: Decimal
    baseline: Decimal | None  # mean spend of the complete days before today


@dataclass
class Report:
    budgets: int = 0
    delivery_ids: list[int] = field(default_factory=list)


def window_of(budget: Budget, now: datetime) -> Window:
    return period_window(budget.period, ZoneInfo(budget.timezone), now, budget.period_start, budget.period_days)


def _needs_history(budget: Budget) -> bool:
    return any(rule.kind != RuleKind.ACTUAL for rule in budget.rules.all())


def measure(budget: Budget, daily: Daily, now: datetime) -> Measurement:
    tz = ZoneInfo(budget.timezone)
    window, day = window_of(budget, now), day_window(tz, now)
    today = day.first_day
    spend = sum((v for d, v in daily.items() if window.first_day <= d <= today), Decimal(0))
    elapsed = Decimal((now - day.start).total_seconds()) / Decimal((day.end - day.start).total_seconds())
    forecast = None
    if _needs_history(budget) and window.start <= now:
        forecast = forecasting.forecast_spend(daily, window.first_day, window.end_day, today, elapsed)
    history = [daily.get(today - timedelta(days=i), Decimal(0)) for i in range(BASELINE_DAYS, 0, -1)]
    known = [d for d in daily if d < today and daily[d] > 0]
    if known:
        history = history[-min(BASELINE_DAYS, (today - min(known)).days) :]
    baseline = sum(history, Decimal(0)) / len(history) if known and len(history) >= MIN_BASELINE_DAYS else None
    return Measurement(window, day, spend, forecast, daily.get(today, Decimal(0)), baseline)


def evaluate_projects(project_ids: Iterable[int], now: datetime | None = None) -> Report:
    """Evaluate every budget of the given projects."""
    budgets = Budget.objects.filter(project_id__in=list(project_ids)).prefetch_related("rules__channels")
    return evaluate_budgets(list(budgets), now)


def evaluate_all(now: datetime | None = None) -> Report:
    return evaluate_budgets(list(Budget.objects.prefetch_related("rules__channels")), now)


def evaluate_budgets(budgets: list[Budget], now: datetime | None = None) -> Report:
    """Measure the budgets (batched spend queries), fire crossed thresholds, enqueue deliveries."""
    now = now or datetime.now(UTC)
    report = Report(budgets=len(budgets))
    requests = []
    for budget in budgets:
        tz = ZoneInfo(budget.timezone)
        window = window_of(budget, now)
        first = window.first_day
        if _needs_history(budget):
            first = min(first, now.astimezone(tz).date() - timedelta(days=forecasting.HISTORY_DAYS))
        if window.start > now:  # a custom period that has not begun
            continue
        requests.append(SpendRequest(budget.pk, budget.project_id, tz, budget.scope, first))
    series = daily_spend(requests, now)
    for budget in budgets:
        if budget.pk not in series:
            continue
        try:
            report.delivery_ids += evaluate_one(budget, measure(budget, series[budget.pk], now), now)
        except Exception:  # one broken budget must not stop the others; the next run retries it
            log.exception("evaluating budget %s failed", budget.pk)
    if report.delivery_ids:
        from alerts.tasks import enqueue_deliveries

        ids = list(report.delivery_ids)
        transaction.on_commit(lambda: enqueue_deliveries(ids))
    return report


def evaluate_one(budget: Budget, m: Measurement, now: datetime) -> list[int]:
    rearm_after_amount_change(budget, m.window.start, m.spend, m.forecast)
    period = (m.window.start, m.window.end)
    created: list[int] = []

    def contributors() -> dict[str, object]:
        return {"top_contributors": top_contributors(budget.project_id, budget.scope, m.window.start, m.window.end)}

    for rule in budget.rules.all():
        thresholds = [Decimal(str(t)) for t in rule.thresholds]
        if rule.kind == RuleKind.ACTUAL:
            hit = forecasting.crossed(m.spend, budget.amount, thresholds)
            created += fire(budget, rule, period, Signal.SPEND, hit, m.spend, m.forecast, contributors, now)
        elif rule.kind == RuleKind.FORECAST:
            hit = forecasting.crossed(m.forecast, budget.amount, thresholds)
            created += fire(budget, rule, period, Signal.SPEND, hit, m.spend, m.forecast, contributors, now)
        elif rule.kind == RuleKind.ANOMALY:
            created += _anomalies(budget, rule, m, thresholds, now)
    return created


def _anomalies(budget: Budget, rule: Rule, m: Measurement, thresholds: list[Decimal], now: datetime) -> list[int]:
    day = (m.day.start, m.day.end)
    created: list[int] = []
    if m.baseline:
        hit = forecasting.crossed(m.today, m.baseline, thresholds)
        details = {"baseline_usd": f"{m.baseline:.6f}", "today_usd": f"{m.today:.6f}", "baseline_days": BASELINE_DAYS}
        created += fire(budget, rule, day, Signal.DAY_SPIKE, hit, m.today, None, lambda: details, now)
    if thresholds:
        outliers = token_outliers(budget.project_id, budget.scope, m.day.start, m.day.end, min(thresholds) / 100)
        if outliers:
            top = outliers[0]
            hit = forecasting.crossed(Decimal(top.tokens), Decimal(str(top.usual)), thresholds)
            details = {
                "calls": [
                    {"feature": o.feature, "event_id": o.event_id, "tokens": o.tokens, "usual_p95": round(o.usual)}
                    for o in outliers[:5]
                ]
            }
            created += fire(budget, rule, day, Signal.CALL_TOKENS, hit, m.today, None, lambda: details, now)
    return created
