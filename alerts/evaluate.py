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

from django.conf import settings
from django.db import transaction

from alerts.capacity import fire_capacity, last_hour
from alerts.firing import LIVE, fire, rearm_after_amount_change
from alerts.models import AlertState, Budget, Rule, RuleKind, Signal
from alerts.outliers import Outlier, token_outliers
from alerts.periods import Window, day_window, period_window
from alerts.spend import Daily, SpendRequest, daily_spend, top_contributors
from ledger import forecast as forecasting
from ledger.capacity import Capacity

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
    """Measure the budgets (batched spend queries) and fire crossed thresholds; the report holds the
    deliveries created, for the caller to send (``ops.pipeline.after_evaluation``)."""
    now = now or datetime.now(UTC)
    report = Report(budgets=len(budgets))
    grace = timedelta(seconds=settings.ALERTS_PERIOD_GRACE_SECONDS)
    previous: dict[int, Window] = {}
    requests = []
    for budget in budgets:
        try:  # a budget whose window cannot be built (bad stored dates) is skipped, not everyone
            tz = ZoneInfo(budget.timezone)
            window = window_of(budget, now)
            first = window.first_day
            if _needs_history(budget):
                first = min(first, now.astimezone(tz).date() - timedelta(days=forecasting.HISTORY_DAYS))
            if window.start <= now < window.start + grace:  # the period that just ended may have late spend
                ended = window_of(budget, window.start - timedelta(microseconds=1))
                if ended.end == window.start:  # (a custom period's first window has none before it)
                    previous[budget.pk] = ended
                    first = min(first, ended.first_day)
        except Exception:  # bad stored dates or zone: skip this budget, evaluate the others
            log.exception("budget %s: cannot compute its period; skipped", budget.pk)
            continue
        if window.start > now:  # a custom period that has not begun
            continue
        requests.append(SpendRequest(budget.pk, budget.project_id, tz, budget.scope, first))
    series = daily_spend(requests, now)
    # This period's spend alerts of every budget, in one query (re-arming after amount changes).
    live: dict[int, list[AlertState]] = {}
    states = AlertState.objects.filter(budget__in=budgets, signal=Signal.SPEND, status__in=LIVE, period_end__gt=now)
    for state in states.select_related("rule"):
        live.setdefault(state.budget_id, []).append(state)
    outliers = _outliers(budgets, now)
    capacities = _capacities(budgets, now)
    for budget in budgets:
        if budget.pk not in series:
            continue
        try:
            if budget.pk in previous:
                report.delivery_ids += evaluate_ended(budget, previous[budget.pk], series[budget.pk], now)
            m = measure(budget, series[budget.pk], now)
            found = outliers.get((budget.project_id, m.day.start), [])
            report.delivery_ids += evaluate_one(
                budget, m, now, live.get(budget.pk, []), found, capacity=capacities.get(budget.pk)
            )
        except Exception:  # one broken budget must not stop the others; the next run retries it
            log.exception("evaluating budget %s failed", budget.pk)
    return report  # the caller sends report.delivery_ids once its transaction commits


def _outliers(budgets: list[Budget], now: datetime) -> dict[tuple[int, datetime], list[Outlier]]:
    """Outlier calls of today, one raw query per (project, local day) for all anomaly budgets."""
    factors: dict[tuple[int, datetime, datetime], Decimal] = {}
    for budget in budgets:
        for rule in budget.rules.all():
            if rule.kind == RuleKind.ANOMALY and rule.thresholds:
                day = day_window(ZoneInfo(budget.timezone), now)
                key = (budget.project_id, day.start, day.end)
                lowest = min(Decimal(str(t)) for t in rule.thresholds) / 100
                factors[key] = min(factors.get(key, lowest), lowest)
    found: dict[tuple[int, datetime], list[Outlier]] = {}
    for (project_id, start, end), factor in factors.items():
        try:
            found[(project_id, start)] = token_outliers(project_id, start, end, factor)
        except Exception:  # the spend rules still run; outliers are looked for again next time
            log.exception("looking for outlier calls of project %s failed", project_id)
            found[(project_id, start)] = []
    return found


def _capacities(budgets: list[Budget], now: datetime) -> dict[int, list[Capacity]]:
    """The last hour's capacity of each budget with a capacity rule, read before any row is locked."""
    found: dict[int, list[Capacity]] = {}
    for budget in budgets:
        if any(rule.kind == RuleKind.CAPACITY for rule in budget.rules.all()):
            try:
                found[budget.pk] = last_hour(budget.project_id, budget.scope, now)
            except Exception:  # the other rules still run; capacity is read again next time
                log.exception("reading the capacity of budget %s failed", budget.pk)
                found[budget.pk] = []
    return found


def evaluate_ended(budget: Budget, window: Window, daily: Daily, now: datetime) -> list[int]:
    """The period that ended less than the grace ago: spend that arrived late (or was evaluated only
    after the boundary) still fires its ``actual`` thresholds, into that period's alert rows."""
    spend = sum((v for d, v in daily.items() if window.first_day <= d < window.end_day), Decimal(0))
    # The period is over: its end-of-period spend is known, so it is also its forecast (for re-arming).
    m = Measurement(window, day_window(ZoneInfo(budget.timezone), now), spend, spend, Decimal(0), None)
    return evaluate_one(budget, m, now, kinds=(RuleKind.ACTUAL,))


def evaluate_one(
    budget: Budget,
    m: Measurement,
    now: datetime,
    live: list[AlertState] | None = None,
    outliers: list[Outlier] | None = None,
    kinds: tuple[str, ...] | None = None,
    capacity: list[Capacity] | None = None,
) -> list[int]:
    """Fire what this budget's measurement crosses (``live``: its spend alerts this period;
    ``kinds``: only rules of these kinds; ``capacity``: its last hour per model, read if not given).

    Re-arming and firing happen with the budget row locked and its amount read again under the
    lock: a worker that read the budget before an amount change cannot fire (under the old amount)
    a threshold another worker has just re-armed under the new one."""
    with transaction.atomic():
        amount = Budget.objects.select_for_update().filter(pk=budget.pk).values_list("amount", flat=True).first()
        if amount is None:  # deleted meanwhile
            return []
        budget.amount = amount
        return _evaluate_locked(budget, m, now, live, outliers, kinds, capacity)


def _evaluate_locked(
    budget: Budget,
    m: Measurement,
    now: datetime,
    live: list[AlertState] | None,
    outliers: list[Outlier] | None,
    kinds: tuple[str, ...] | None,
    capacity: list[Capacity] | None = None,
) -> list[int]:
    if live is None or any(state.amount != budget.amount for state in live):
        rearm_after_amount_change(budget, m.window.start, m.spend, m.forecast)
    period = (m.window.start, m.window.end)
    created: list[int] = []

    def contributors() -> dict[str, object]:
        return {"top_contributors": top_contributors(budget.project_id, budget.scope, m.window.start, m.window.end)}

    for rule in budget.rules.all():
        if kinds is not None and rule.kind not in kinds:
            continue
        thresholds = [Decimal(str(t)) for t in rule.thresholds]
        if rule.kind == RuleKind.ACTUAL:
            hit = forecasting.crossed(m.spend, budget.amount, thresholds)
            created += fire(budget, rule, period, Signal.SPEND, hit, m.spend, m.forecast, contributors, now)
        elif rule.kind == RuleKind.FORECAST:
            hit = forecasting.crossed(m.forecast, budget.amount, thresholds)
            created += fire(budget, rule, period, Signal.SPEND, hit, m.spend, m.forecast, contributors, now)
        elif rule.kind == RuleKind.ANOMALY:
            created += _anomalies(budget, rule, m, thresholds, now, outliers)
        elif rule.kind == RuleKind.CAPACITY:
            if capacity is None:
                capacity = last_hour(budget.project_id, budget.scope, now)
            created += fire_capacity(budget, rule, (m.day.start, m.day.end), thresholds, capacity, now)
    return created


def _anomalies(
    budget: Budget,
    rule: Rule,
    m: Measurement,
    thresholds: list[Decimal],
    now: datetime,
    outliers: list[Outlier] | None,
) -> list[int]:
    day = (m.day.start, m.day.end)
    created: list[int] = []
    if m.baseline:
        hit = forecasting.crossed(m.today, m.baseline, thresholds)
        details = {"baseline_usd": f"{m.baseline:.6f}", "today_usd": f"{m.today:.6f}", "baseline_days": BASELINE_DAYS}
        created += fire(budget, rule, day, Signal.DAY_SPIKE, hit, m.today, None, lambda: details, now)
    if outliers is None:
        outliers = token_outliers(budget.project_id, m.day.start, m.day.end, min(thresholds) / 100)
    outliers = [o for o in outliers if o.in_scope(budget.scope)]
    if outliers:
        top = max(outliers, key=lambda o: o.tokens / o.usual if o.usual else float("inf"))
        hit = forecasting.crossed(Decimal(top.tokens), Decimal(str(top.usual)), thresholds)
        details = {
            "calls": [
                {"feature": o.feature, "event_id": o.event_id, "tokens": o.tokens, "usual_p95": round(o.usual)}
                for o in outliers[:5]
            ]
        }
        created += fire(budget, rule, day, Signal.CALL_TOKENS, hit, m.today, None, lambda: details, now)
    return created
