"""Daily spend per budget scope, read through ``ledger.queries.usage`` in as few queries as possible.

Budgets of one project that share a time zone, a set of scope dimensions and tag filters are
answered by ONE usage query grouped by those dimensions; each budget then sums the groups its scope
selects. A thousand budgets over a handful of dimension sets cost a handful of queries.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from alerts import scope as scopes
from alerts.periods import midnight
from ledger.queries import MAX_LIMIT, UsageQuery, usage

log = logging.getLogger(__name__)
Daily = dict[date, Decimal]


@dataclass(frozen=True)
class SpendRequest:
    key: Any  # the caller's handle (a budget id)
    project_id: int
    tz: ZoneInfo
    scope: dict[str, Any]
    first_day: date  # local days [first_day, today] are wanted


def _batch_key(req: SpendRequest) -> tuple[Any, ...]:
    dims, tags = scopes.filters(req.scope)
    return (req.project_id, req.tz.key, tuple(sorted(dims)), tuple(sorted((k, v) for k, v in tags.items())))


def daily_spend(requests: list[SpendRequest], now: datetime) -> dict[Any, Daily]:
    """Local-day spend for each request, from its first day through today (today partial)."""
    batches: dict[tuple[Any, ...], list[SpendRequest]] = defaultdict(list)
    for req in requests:
        batches[_batch_key(req)].append(req)
    out: dict[Any, Daily] = {}
    for (project_id, _tz, dims, _tags), batch in batches.items():
        try:
            out.update(_batch(batch, dims, now))
        except Exception:  # one failing batch must not starve the others; its budgets wait for the next run
            log.exception("reading spend for %d budget(s) of project %s failed", len(batch), project_id)
    return out


def _batch(batch: list[SpendRequest], dims: tuple[str, ...], now: datetime) -> dict[Any, Daily]:
    first = batch[0]
    tz = first.tz
    today = now.astimezone(tz).date()
    start = midnight(min(r.first_day for r in batch), tz)
    end = midnight(today + timedelta(days=1), tz)
    _, tags = scopes.filters(first.scope)
    # Filter the query on a dimension only if every budget of the batch filters on it.
    narrowed = {d: tuple(sorted({v for r in batch for v in r.scope[d]})) for d in dims}
    query = UsageQuery(
        project_id=first.project_id,
        start=start,
        end=end,
        granularity="day",
        group_by=dims,
        filters=narrowed,
        tags=tags,
        metrics=("cost",),
        tz=tz.key,
        limit=MAX_LIMIT,
    )
    result = usage(query)
    if result.truncated and len(batch) > 1:  # too many groups to sum here: one query per budget
        out: dict[Any, Daily] = {}
        for req in batch:
            out.update(_batch([req], dims, now))
        return out
    if result.truncated:
        # A single budget: its own filters make every row count, so ask for no groups at all.
        result = usage(replace(query, group_by=(), limit=1))
        dims = ()
    # Sum each group's spend per local day once; then each budget adds up the groups it selects.
    per_group: dict[tuple[str, ...], dict[date, Decimal]] = defaultdict(dict)
    for row in result.rows:
        if row["cost"]:
            days = per_group[tuple(row[d] for d in dims)]
            day = row["bucket"].astimezone(tz).date()
            days[day] = days.get(day, Decimal(0)) + row["cost"]
    out = {}
    for req in batch:
        wanted = [set(req.scope[d]) for d in dims]
        series: Daily = {}
        for key, days in per_group.items():
            if all(value in allowed for value, allowed in zip(key, wanted, strict=True)):
                for day, cost in days.items():
                    if day >= req.first_day:
                        series[day] = series.get(day, Decimal(0)) + cost
        out[req.key] = series
    return out


def top_contributors(
    project_id: int, scope: dict[str, Any], start: datetime, end: datetime, limit: int = 3
) -> dict[str, list[dict[str, str]]]:
    """The biggest feature, customer and model values of the scope's spend in [start, end)."""
    dims, tags = scopes.filters(scope)
    end = min(end, (datetime.now(UTC) + timedelta(hours=1)).replace(minute=0, second=0, microsecond=0))
    out: dict[str, list[dict[str, str]]] = {}
    if end <= start:
        return out
    for dim in ("feature", "customer_id", "model"):
        rows = usage(
            UsageQuery(project_id, start, end, None, (dim,), filters=dims, tags=tags, metrics=("cost",), limit=limit)
        ).rows
        out[dim] = [{"value": str(r[dim]), "cost_usd": f"{r['cost']:.2f}"} for r in rows if r["cost"] > 0]
    return out
