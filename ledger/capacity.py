"""Capacity: peak and p99 tokens and requests per UTC minute per model (or pool) against its limits.

Definitions (exact integers, by the calls' timestamps in UTC minutes): a minute's ``tpm`` is
Σ(input + output tokens), ``itpm`` Σ input, ``uncached_itpm`` Σ(input − cache reads), ``otpm`` Σ
output, ``rpm`` the calls. The peak is the largest minute in the range; p99 is the nearest-rank
99th percentile of the minutes that had traffic (the ⌈0.99·n⌉-th smallest). A pool (a limit naming
several models, ``ledger.models.RateLimit``) sums its models' calls minute by minute.

Limits: each is the configured one where set, else the latest one the provider reported in the
range (the ``ratelimit_limit_*`` headers of its answers; of two at the same time, the larger);
``limit_source`` says ``configured`` when any limit shown is configured, ``observed`` when all are
observed, None without any.
Anthropic does not count cache reads toward ITPM, so its ITPM headroom is judged on uncached input.

Reads the capacity rollups in one statement: from ``rollup_capacity_figures`` (migration 0012)
the figures (peaks, the 100 largest minutes per measure, 429s, limits) of each whole day of the
range and of each whole hour outside them, of a model or of a pool as configured now
(``ledger.pool_days``); and the model tier's minutes (``rollup_capacity_minute``) only where those
do not answer: a partial hour at either end, a pool's days and hours without a row while its models
had traffic, a pool's models under a model filter; or the per-minute detail tier when a filter
needs its dimensions. The p99 comes from the days' and hours' largest minutes, and from every
minute of the range in the rare case where one day's list was too short to settle it.
:func:`capacity_from_raw` computes the same answer from ``llm_calls``, for the tests and
``bench/capacity.py``. The statements are in ``ledger.capacity_sql``, the growth fit in
``ledger.capacity_growth``, one minute's and one day's detail in ``ledger.capacity_minutes``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from ledger import capacity_sql as sql
from ledger import pool_days
from ledger.capacity_growth import fit_growth, reach_date
from ledger.capacity_sql import FILTERS, LIMITS, MEASURES
from ledger.clickhouse.client import get_clickhouse
from ledger.measures import CAPACITY_TOP_MINUTES
from ledger.models import RateLimit

HEADROOM_PLACES = Decimal("0.000001")
GROWTH_PLACES = Decimal("0.0001")


class CapacityError(ValueError):
    """A capacity question that cannot be answered as asked (a 400)."""


@dataclass(frozen=True)
class CapacityQuery:
    project_id: int
    start: datetime
    end: datetime
    filters: Mapping[str, Sequence[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Forecast:
    weekly_growth: Decimal | None  # the daily peaks' growth per week (0.05 = +5 %)
    limit_reached_on: date | None


@dataclass
class Capacity:
    """One model's (or pool's) minutes in the range against its limits."""

    provider: str
    model: str
    models: list[str]
    peaks: dict[str, int]  # measure → the largest minute
    p99: dict[str, int]  # measure → the nearest-rank p99 over the minutes with traffic
    minutes: int
    peak_minute: datetime
    rate_limited_calls: int
    limits: dict[str, int | None]
    limit_source: str | None
    headroom: Decimal | None
    forecast: Forecast
    daily: dict[str, dict[date, int]]  # measure → day → the day's peak minute

    def as_json(self) -> dict[str, Any]:
        """The /v1/capacity row (docs/contract.md)."""
        return {
            "provider": self.provider,
            "model": self.model,
            "models": self.models,
            "peak_tpm": self.peaks["tpm"],
            "peak_itpm": self.peaks["itpm"],
            "peak_uncached_itpm": self.peaks["uncached_itpm"],
            "peak_otpm": self.peaks["otpm"],
            "peak_rpm": self.peaks["rpm"],
            "p99_tpm": self.p99["tpm"],
            "p99_rpm": self.p99["rpm"],
            "peak_minute": self.peak_minute.isoformat().replace("+00:00", "Z"),
            **{f"limit_{name}": self.limits[name] for name in LIMITS},
            "limit_source": self.limit_source,
            "headroom": None if self.headroom is None else str(self.headroom),
            "rate_limited_calls": self.rate_limited_calls,
            "forecast": {
                "weekly_growth": None if self.forecast.weekly_growth is None else str(self.forecast.weekly_growth),
                "limit_reached_on": None
                if self.forecast.limit_reached_on is None
                else self.forecast.limit_reached_on.isoformat(),
            },
        }


def bounded(provider: str, name: str) -> str:
    """The measure a limit bounds: Anthropic's ITPM leaves cache reads out."""
    return "uncached_itpm" if name == "itpm" and provider == "anthropic" else LIMITS[name]


def check_query(query: CapacityQuery) -> None:
    unknown = sorted(set(query.filters) - set(FILTERS))
    if unknown:
        raise CapacityError(f"capacity cannot be filtered by {unknown[0]} (filters: {', '.join(FILTERS)})")
    if query.end <= query.start:
        raise CapacityError("to must be after from")
    if any(t.second or t.microsecond for t in (query.start, query.end)):
        raise CapacityError("from and to must fall on a whole minute (capacity is counted per UTC minute)")


def filter_sql(query: CapacityQuery, params: dict[str, Any]) -> str:
    filters = ""
    for i, (dim, values) in enumerate(sorted(query.filters.items())):
        params[f"f{i}"] = list(values)
        filters += f" AND toString({dim}) IN {{f{i}:Array(String)}}"
    return filters


def _detailed(query: CapacityQuery) -> bool:
    """Whether a filter needs the detail tier's dimensions."""
    return not set(query.filters) <= {"provider", "model"}


def _pooled(query: CapacityQuery) -> bool:
    """Whether the pool tier answers (a filter on models counts the members it names, not the pool)."""
    return not _detailed(query) and "model" not in query.filters


def _whole_spans(query: CapacityQuery, params: dict[str, Any]) -> None:
    """Bind ``whole_from`` and ``whole_to``, the whole UTC days inside the range, and ``hours_from``
    and ``hours_to``, its whole hours (each an empty span at the end if there is none)."""
    start, end = query.start.astimezone(UTC), query.end.astimezone(UTC)
    first = start.replace(hour=0, minute=0) + (timedelta(days=1) if start.time() != time() else timedelta())
    last = end.replace(hour=0, minute=0)
    params["whole_from"], params["whole_to"] = (first, last) if first < last else (end, end)
    first = start.replace(minute=0) + (timedelta(hours=1) if start.minute else timedelta())
    last = end.replace(minute=0)
    params["hours_from"], params["hours_to"] = (first, last) if first < last else (end, end)


def _members(query: CapacityQuery, params: Mapping[str, Any]) -> str:
    """Which of the pools' models' minutes the minute tier answers for besides the partial hours."""
    if not _pooled(query):
        return sql.MEMBER  # all of them: a model filter counts the models, not their pool
    return sql.LACKING if params["pool_lacking"] or params["pool_lacking_hours"] else "0"


def _needs_minutes(query: CapacityQuery, raw: bool, params: Mapping[str, Any]) -> bool:
    """Whether any minute is read: from raw or the detail tier always; from the minute tier for a
    partial hour at either end, or a pool's models where the pool tiers do not answer."""
    if raw or _detailed(query):
        return True
    partial = params["hours_from"] != query.start or params["hours_to"] != query.end
    return partial or (bool(params["pool_pairs"]) and _members(query, params) != "0")


def _minutes_sql(query: CapacityQuery, raw: bool, params: dict[str, Any], *, whole_range: bool = False) -> str:
    """Per (provider, model or pool) and minute, the sums: from raw calls, the detail tier (under
    filters), or the minute tier (the partial edge hours and pools' models only, unless ``whole_range``)."""
    parts = sql.RAW if raw else sql.ROLLUP
    if raw:
        source = "llm_calls FINAL"
    elif _detailed(query):
        source = f"{sql.DETAIL_TABLE} FINAL"
    elif whole_range:
        source = f"{sql.MINUTE_TABLE} FINAL"
    else:
        source = sql.MINUTE_SOURCE.replace("$members", _members(query, params))
    minutes = sql.MINUTES
    for name, text in {**parts, "source": source, "filters": filter_sql(query, params)}.items():
        minutes = minutes.replace(f"${name}", text)
    return minutes


def _summary_sql(query: CapacityQuery, raw: bool, params: dict[str, Any]) -> str:
    parts = []
    if _needs_minutes(query, raw, params):
        parts.append(sql.DAYS_FROM_MINUTES.replace("$minutes", _minutes_sql(query, raw, params)))
    if not raw and not _detailed(query):
        rows = sql.FIGURE_ROWS.replace("$models", f"NOT {sql.MEMBER}")
        rows = rows.replace("$pools", sql.CURRENT_POOL if _pooled(query) else "0")
        parts.append(sql.DAYS_FROM_FIGURES.replace("$filters", filter_sql(query, params)).replace("$rows", rows))
    days = " UNION ALL ".join(parts)
    range_minutes = int((query.end - query.start).total_seconds() // 60)
    top = range_minutes // 100 + 2 if raw else min(range_minutes // 100 + 2, CAPACITY_TOP_MINUTES)
    return sql.SUMMARY.replace("$days", days).replace("$top", str(top))


def _parameters(query: CapacityQuery, limits: Sequence[RateLimit]) -> dict[str, Any]:
    """The bound parameters of the capacity queries: the range, its whole days and the pools
    (``pool_keys`` "provider\\x00model" → ``pool_names``; ``pool_pairs`` the members)."""
    keys, names, pairs, sigs = [], [], [], []
    for limit in limits:
        if limit.members == [limit.model]:
            continue  # a model's own limit: its minutes are its own, its whole days' figures answer
        sigs.append(pool_days.signature(limit.provider, limit.model, limit.members))
        for member in limit.members:
            keys.append(f"{limit.provider}\x00{member}")
            names.append(limit.model)
            pairs.append((limit.provider, member))
    params: dict[str, Any] = {
        "project": query.project_id, "start": query.start, "end": query.end, "pool_keys": keys, "pool_names": names,
        "pool_pairs": pairs, "pool_sigs": sigs,
    }  # fmt: skip
    _whole_spans(query, params)
    params["pool_lacking"], params["pool_lacking_hours"] = [], []
    return params


def _lacking(query: CapacityQuery, limits: Sequence[RateLimit], params: dict[str, Any]) -> None:
    """Bind ``pool_lacking`` and ``pool_lacking_hours``: (provider, model, day or hour) of each
    pool's models for the whole days and edge hours of the range in which they had traffic and the
    pool tiers have no row (as the pool is now), which the minutes answer instead."""
    pooled = [limit for limit in limits if limit.members != [limit.model]]
    if not pooled or not _pooled(query) or params["hours_from"] >= params["hours_to"]:
        return
    seen: dict[tuple[int, str, str, str], set[datetime]] = {}
    coverage = get_clickhouse().query(sql.POOL_COVERAGE, parameters=params).result_rows
    for pool, grain, provider, name, buckets in coverage:
        seen[(int(pool), str(grain), str(provider), str(name))] = {b.replace(tzinfo=UTC) for b in buckets}
    for grain, key in (("day", "pool_lacking"), ("hour", "pool_lacking_hours")):
        params[key] = [
            (limit.provider, member, bucket)
            for limit in pooled
            for bucket in sorted(set().union(*(seen.get((0, grain, limit.provider, m), set()) for m in limit.members)))
            if bucket not in seen.get((1, grain, limit.provider, limit.model), set())
            for member in limit.members
        ]


def capacity(query: CapacityQuery, *, raw: bool = False) -> list[Capacity]:
    """Every model (or pool) with traffic in the range, by provider and name; ``raw`` reads llm_calls."""
    check_query(query)
    configured = list(RateLimit.objects.filter(project_id=query.project_id))
    params = _parameters(query, configured)
    if not raw:
        _lacking(query, configured, params)
    summary = get_clickhouse().query(_summary_sql(query, raw, params), parameters=params).result_rows
    n = len(MEASURES)
    unsure = [(str(r[0]), str(r[1])) for r in summary if _unsure(int(r[3]), r[4 + n : 4 + 2 * n], r[-1])]
    exact = _exact_p99(query, raw, params, unsure)
    by_name = {(limit.provider, limit.model): limit for limit in configured}
    last_day = (query.end - timedelta(microseconds=1)).date()
    rows = []
    for provider, grp, minutes, _, *rest in summary:
        provider, grp = str(provider), str(grp)
        peaks = dict(zip(MEASURES, map(int, rest[:n]), strict=True))
        p99 = exact.get((provider, grp)) or dict(zip(MEASURES, map(int, rest[n : 2 * n]), strict=True))
        peak_minute, rate_limited, days = rest[2 * n :]
        daily: dict[str, dict[date, int]] = {m: {} for m in MEASURES}
        for day, _, *day_peaks in days:  # a day's entries: its figures, or its hours' and minutes'
            for m, value in zip(MEASURES, day_peaks[:n], strict=True):
                daily[m][day] = max(daily[m].get(day, 0), int(value))
        limit = by_name.get((provider, grp))
        limits, source = _limits(limit, _observed(days))
        row = Capacity(
            provider=provider, model=grp, models=limit.members if limit else [grp], peaks=peaks, p99=p99,
            minutes=int(minutes), peak_minute=peak_minute.replace(tzinfo=UTC),
            rate_limited_calls=int(rate_limited), limits=limits, limit_source=source,
            headroom=headroom(provider, peaks, limits), forecast=Forecast(None, None),
            daily=daily,
        )  # fmt: skip
        row.forecast = forecast_row(row, last_day)
        rows.append(row)
    return rows


def _unsure(k: int, p99: Sequence[int], days: Sequence[Sequence[Any]]) -> bool:
    """Whether the p99 taken from the days' top lists may be wrong: some day's list was cut short
    (fewer than its minutes, fewer than k) and its last value is not below the union's k-th, so that
    day may hide more of the range's top k. A day from the minutes keeps ≥ k values, never in doubt.
    A day is (day, minutes, its peaks, each measure's list (length, last value), its limits)."""
    for day in days:
        for i in range(len(MEASURES)):
            length, last = day[sql.AT_LISTS + 2 * i], day[sql.AT_LISTS + 2 * i + 1]
            if length < day[1] and length < k and last >= p99[i]:
                return True
    return False


def _observed(days: Sequence[Sequence[Any]]) -> dict[str, int | None]:
    """The latest limit of each kind the days report (of two at the same time, the larger)."""
    latest: dict[str, int | None] = {}
    for i, name in enumerate(sql.OBSERVED):
        reports = [
            (day[sql.AT_LIMITS + 2 * i], day[sql.AT_LIMITS + 2 * i + 1])
            for day in days
            if day[sql.AT_LIMITS + 2 * i + 1] is not None
        ]
        latest[name] = max(reports)[1] if reports else None
    return latest


def _exact_p99(
    query: CapacityQuery, raw: bool, params: dict[str, Any], unsure: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], dict[str, int]]:
    """The p99 of the models (or pools) the day figures could not settle, from every minute of the range."""
    if not unsure:
        return {}
    statement = sql.P99_SQL.replace("$minutes", _minutes_sql(query, raw, params, whole_range=True))
    bound = {**params, "unsure": [f"{p}\x00{g}" for p, g in unsure]}
    rows = get_clickhouse().query(statement, parameters=bound).result_rows
    return {(str(p), str(g)): dict(zip(MEASURES, map(int, values), strict=True)) for p, g, *values in rows}


def capacity_from_raw(query: CapacityQuery) -> list[Capacity]:
    """The same answer computed from the raw calls (the reference the rollup is checked against)."""
    return capacity(query, raw=True)


def _limits(limit: RateLimit | None, observed: Mapping[str, Any]) -> tuple[dict[str, int | None], str | None]:
    """The limit in force per dimension (configured, else observed) and which source shows."""
    limits: dict[str, int | None] = {}
    sources = set()
    for name in LIMITS:
        mine = getattr(limit, name) if limit is not None else None
        seen = observed.get(name)
        if mine is not None:
            limits[name] = int(mine)
            sources.add("configured")
        elif seen is not None and int(seen) > 0:
            limits[name] = int(seen)
            sources.add("observed")
        else:
            limits[name] = None
    source = "configured" if "configured" in sources else ("observed" if sources else None)
    return limits, source


def tightest(provider: str, peaks: Mapping[str, int], limits: Mapping[str, int | None]) -> str | None:
    """The limit closest to being reached (largest peak / limit), or None without a limit."""
    ratios = {name: Decimal(peaks[bounded(provider, name)]) / lim for name, lim in limits.items() if lim}
    return max(ratios, key=lambda name: ratios[name]) if ratios else None


def headroom(provider: str, peaks: Mapping[str, int], limits: Mapping[str, int | None]) -> Decimal | None:
    """1 − peak / limit for the tightest limit (negative past it), or None without a limit."""
    name = tightest(provider, peaks, limits)
    if name is None:
        return None
    limit = limits[name]
    assert limit  # noqa: S101 (tightest names a limit that is set)
    return (1 - Decimal(peaks[bounded(provider, name)]) / limit).quantize(HEADROOM_PLACES)


def forecast_row(row: Capacity, last_day: date) -> Forecast:
    """Growth of the tightest limit's daily peaks (tpm without limits) and when its p99 reaches it."""
    name = tightest(row.provider, row.peaks, row.limits)
    measure = bounded(row.provider, name) if name else "tpm"
    growth = fit_growth(row.daily[measure], last_day)
    if growth is None:
        return Forecast(None, None)
    weekly = (Decimal(math.exp(7 * growth.slope)) - 1).quantize(GROWTH_PLACES)
    reached = [
        d
        for n, lim in row.limits.items()
        if lim
        and (
            d := reach_date(
                row.p99[bounded(row.provider, n)],
                lim,
                fit_growth(row.daily[bounded(row.provider, n)], last_day),
                last_day,
            )
        )
    ]
    return Forecast(weekly, min(reached) if reached else None)
