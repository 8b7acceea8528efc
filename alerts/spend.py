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
from ledger.queries import MAX_LIMIT, QueryError, UsageQuery, usage
from ledger.usage_batches import usage_many

log = logging.getLogger(__name__)
Daily = dict[date, Decimal]


@dataclass(frozen=True)
class SpendRequest:
    key: Any  # the caller's handle (a budget id)
    project_id: int
    tz: ZoneInfo
    scope: dict[str, Any]
    first_day: date  # local days [first_day, today] are wanted


HOURLY = "hourly-utc"  # a batch answered in UTC hours, which each budget sums into its own local days


def _whole_hours(req: SpendRequest, now: datetime) -> bool:
    return all(
        (point.astimezone(req.tz).utcoffset() or timedelta()).total_seconds() % 3600 == 0
        for point in (midnight(req.first_day, req.tz), now)
    )


def _batch_key(req: SpendRequest, now: datetime) -> tuple[Any, ...]:
    dims, tags = scopes.filters(req.scope)
    # Tag scopes are read from the raw calls: one scan in UTC hours serves every (whole-hour) time
    # zone, where the rollup tiers answer each zone's days cheaply on their own.
    zone = HOURLY if tags and _whole_hours(req, now) else req.tz.key
    return (req.project_id, zone, tuple(sorted(dims)), tuple(sorted((k, v) for k, v in tags.items())))


def daily_spend(requests: list[SpendRequest], now: datetime) -> dict[Any, Daily]:
    """Local-day spend for each request, from its first day through today (today partial).

    Every batch's query goes into one statement (``usage_many``); a batch that needs more than that
    (too many groups) or a statement refused as a whole falls back to a query per batch."""
    batches: dict[tuple[Any, ...], list[SpendRequest]] = defaultdict(list)
    for req in requests:
        batches[_batch_key(req, now)].append(req)
    planned = [
        (batch, dims, zone == HOURLY, _batch_query(batch, dims, now, hourly=zone == HOURLY))
        for (_project, zone, dims, _tags), batch in batches.items()
    ]
    try:
        results = usage_many([query for *_, query in planned])
    except QueryError:  # one batch's query cannot join the others: each on its own, below
        results = []
    except Exception:  # the store: each batch on its own below, so the failures are logged per batch
        log.warning("the combined spend read failed; reading each batch alone", exc_info=True)
        results = []
    out: dict[Any, Daily] = {}
    if len(results) == len(planned):
        rest = []
        for (batch, dims, hourly, _query), result in zip(planned, results, strict=True):
            if result.truncated:
                rest.append((batch, dims, hourly))
            else:
                out.update(_sum_groups(batch, dims, now, result.rows))
    else:
        rest = [(batch, dims, hourly) for batch, dims, hourly, _ in planned]
    for batch, dims, hourly in rest:
        first = batch[0]
        try:
            out.update(_batch(batch, dims, now, hourly=hourly))
        except QueryError as exc:
            if len(batch) == 1:
                log.error("reading spend for budget %s was refused: %s", first.key, exc)
                continue
            # One budget's range (say, a long custom period past a table's retention) can make the
            # batch's query invalid: ask for each budget on its own so the others are still evaluated.
            log.warning(
                "a spend batch of %d budgets of project %s was refused; reading each alone",
                len(batch),
                first.project_id,
            )
            for req in batch:
                try:
                    out.update(_batch([req], dims, now, hourly=hourly))
                except Exception:
                    log.exception("reading spend for budget %s failed", req.key)
        except Exception:  # one failing batch must not starve the others; its budgets wait for the next run
            log.exception("reading spend for %d budget(s) of project %s failed", len(batch), first.project_id)
    return out


def _batch_query(batch: list[SpendRequest], dims: tuple[str, ...], now: datetime, hourly: bool) -> UsageQuery:
    first = batch[0]
    start = min(midnight(r.first_day, r.tz) for r in batch)
    end = max(midnight(now.astimezone(r.tz).date() + timedelta(days=1), r.tz) for r in batch)
    _, tags = scopes.filters(first.scope)
    # Filter the query on a dimension only if every budget of the batch filters on it.
    narrowed = {d: tuple(sorted({v for r in batch for v in r.scope[d]})) for d in dims}
    return UsageQuery(
        project_id=first.project_id,
        start=start,
        end=end,
        granularity="hour" if hourly else "day",
        group_by=dims,
        filters=narrowed,
        tags=tags,
        metrics=("cost",),
        tz="UTC" if hourly else first.tz.key,
        limit=MAX_LIMIT,
    )


def _batch(batch: list[SpendRequest], dims: tuple[str, ...], now: datetime, hourly: bool = False) -> dict[Any, Daily]:
    query = _batch_query(batch, dims, now, hourly)
    result = usage(query)
    if result.truncated and len(batch) > 1:  # too many groups to sum here: one query per budget
        out: dict[Any, Daily] = {}
        for req in batch:
            out.update(_batch([req], dims, now, hourly))
        return out
    if result.truncated:
        # A single budget: its own filters make every row count, so ask for no groups at all.
        result = usage(replace(query, group_by=(), limit=1))
        dims = ()
    return _sum_groups(batch, dims, now, result.rows)


def _sum_groups(
    batch: list[SpendRequest], dims: tuple[str, ...], now: datetime, rows: list[dict[str, Any]]
) -> dict[Any, Daily]:
    # Sum each group's spend per bucket once; then each budget adds up the groups it selects,
    # each bucket counted on its local day.
    per_group: dict[tuple[str, ...], dict[datetime, Decimal]] = defaultdict(dict)
    for row in rows:
        if row["cost"]:
            buckets = per_group[tuple(row[d] for d in dims)]
            buckets[row["bucket"]] = buckets.get(row["bucket"], Decimal(0)) + row["cost"]
    local_days: dict[str, dict[datetime, date]] = defaultdict(dict)
    out = {}
    for req in batch:
        today = now.astimezone(req.tz).date()
        days_of = local_days[req.tz.key]
        wanted = [set(req.scope[d]) for d in dims]
        series: Daily = {}
        for key, buckets in per_group.items():
            if not all(value in allowed for value, allowed in zip(key, wanted, strict=True)):
                continue
            for bucket, cost in buckets.items():
                day = days_of.get(bucket)
                if day is None:
                    day = days_of[bucket] = bucket.astimezone(req.tz).date()
                if req.first_day <= day <= today:
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
