"""The capacity rule: a model's (or pool's) peak minute of the last hour against its rate limit, and 429s.

A budget's ``capacity`` rule holds thresholds in percent of the limit (default 80). Each evaluation
reads ``ledger.capacity`` over the last hour for the budget's scope (its provider, model, feature,
route version and environment filters; customer and tag scopes do not narrow per-model limits) and,
per (provider, model or pool), fires through the budgets' machinery (``alerts.firing``) with the
subject ``provider/model`` and the budget's local day as the period: once a day per model for the
highest threshold its peak minute reached against the tightest limit, and once a day when it had
calls refused with a 429.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from alerts.firing import fire
from alerts.models import Budget, Rule, Signal
from ledger import forecast as forecasting
from ledger.capacity import FILTERS, Capacity, CapacityQuery, bounded, capacity, tightest

LOOKBACK = timedelta(hours=1)
ANY_429 = Decimal(0)  # the 429 signal's one threshold: any refused call


def last_hour(project_id: int, scope: dict[str, Any], now: datetime) -> list[Capacity]:
    """Every model's minutes of the hour up to and including ``now``'s minute, within ``scope``."""
    end = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    filters = {k: tuple(v) for k, v in scope.items() if k in FILTERS and isinstance(v, list)}
    return capacity(CapacityQuery(project_id, end - LOOKBACK, end, filters))


def _given(details: dict[str, Any]) -> Callable[[], dict[str, Any]]:
    return lambda: details


def fire_capacity(
    budget: Budget,
    rule: Rule,
    day: tuple[datetime, datetime],
    thresholds: list[Decimal],
    rows: list[Capacity],
    now: datetime,
) -> list[int]:
    """Fire what each model's last hour crosses; returns the deliveries created."""
    created: list[int] = []
    for row in rows:
        subject = f"{row.provider}/{row.model}"
        name = tightest(row.provider, row.peaks, row.limits)
        limit = row.limits[name] if name else None
        if name and limit:
            peak = row.peaks[bounded(row.provider, name)]
            details: dict[str, Any] = {
                "provider": row.provider, "model": row.model, "models": row.models, "limit": name,
                "limit_value": limit, "limit_source": row.limit_source, "peak": peak,
                "peak_minute": row.peak_minute.isoformat(), "percent": f"{Decimal(peak) * 100 / limit:.1f}",
            }  # fmt: skip
            hit = forecasting.crossed(Decimal(peak), Decimal(limit), thresholds)
            created += fire(budget, rule, day, Signal.CAPACITY, hit, Decimal(0), None, _given(details), now, subject)
        if row.rate_limited_calls:
            refused = {"provider": row.provider, "model": row.model, "rate_limited_calls": row.rate_limited_calls}
            created += fire(
                budget, rule, day, Signal.RATE_LIMITED, [ANY_429], Decimal(0), None, _given(refused), now, subject
            )
    return created
