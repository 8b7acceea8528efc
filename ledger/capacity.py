"""Capacity: peak and p99 tokens and requests per UTC minute per model (or pool) against its limits.

Definitions (exact integers, by the calls' timestamps in UTC minutes): a minute's ``tpm`` is
Σ(input + output tokens), ``itpm`` Σ input, ``uncached_itpm`` Σ(input − cache reads), ``otpm`` Σ
output, ``rpm`` the calls. The peak is the largest minute in the range; p99 is the nearest-rank
99th percentile of the minutes that had traffic (the ⌈0.99·n⌉-th smallest). A pool (a limit naming
several models, ``ledger.models.RateLimit``) sums its models' calls minute by minute.

Limits: each is the configured one where set, else the latest one the provider reported in the
range (the ``ratelimit_limit_*`` headers of its answers; of two at the same time, the larger);
``limit_source`` says ``configured``
when any limit shown is configured, ``observed`` when all are observed, None without any.
Anthropic does not count cache reads toward ITPM, so its ITPM headroom is judged on uncached input.

Reads the capacity rollups in one statement: from ``rollup_capacity_figures`` (migration 0012)
the figures (peaks, the 100 largest minutes per measure, 429s, limits) of each whole day of the
range and of each whole hour outside them, of a model or of a pool as configured now
(``ledger.pool_days``); and the model tier's minutes (``rollup_capacity_minute``) only where those
do not answer: a partial hour at either end, a pool's days and hours without a row while its models
had traffic, a pool's models under a model filter; or the per-minute detail tier when a filter
needs its dimensions. The p99 comes from the days' and hours' largest minutes, and from every
minute of the range in the rare case where one day's list was too short to settle it.
:func:`capacity_from_raw` computes the same answer from ``llm_calls``, for the tests
and ``bench/capacity.py``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from ledger import forecast as forecasting
from ledger import pool_days
from ledger.clickhouse.client import get_clickhouse
from ledger.measures import CAPACITY_TOP_MINUTES
from ledger.models import RateLimit

DETAIL_TABLE = "rollup_capacity_detail_minute"
MINUTE_TABLE = "rollup_capacity_minute"
FIGURES_TABLE = pool_days.FIGURES_TABLE
FILTERS = ("provider", "model", "feature", "route", "route_version", "environment", "traffic")
MEASURES = ("tpm", "itpm", "uncached_itpm", "otpm", "rpm")
# limit → (the peak it bounds, the observed column); Anthropic's ITPM is judged on uncached input.
LIMITS = {"tpm": "tpm", "rpm": "rpm", "itpm": "itpm", "otpm": "otpm"}
_OBSERVED = {
    "tpm": "limit_tokens",
    "rpm": "limit_requests",
    "itpm": "limit_input_tokens",
    "otpm": "limit_output_tokens",
}
HEADROOM_PLACES = Decimal("0.000001")
GROWTH_PLACES = Decimal("0.0001")
MIN_FORECAST_DAYS = 7
FIT_DAYS = 56  # the daily peaks the growth is fitted on, at most
HORIZON_DAYS = 365  # a limit further away than this is "not reached"

# A minute's sums, per (provider, model or pool): from the rollup (``$source`` = a capacity tier)
# or from raw calls. ``transform`` maps a pool's member models to the pool's name.
_GROUP = (
    "transform(concat(toString(provider), '\\x00', toString(model)), {pool_keys:Array(String)},"
    " {pool_names:Array(String)}, toString(model))"
)
# Each observed limit's latest report in the minute, as (its time, its value): ``$limit_x`` is the
# source's column for kind x, ``$at_x`` its time (ties in time go to the larger limit, so the answer
# never depends on the order rows are read in).
_KINDS = [c.removeprefix("limit_") for c in _OBSERVED.values()]  # tokens, requests, input_tokens, …


def _latest(value: str, at: str, alias: str) -> str:
    """The latest of ``value`` (reported at ``at``) as ``{alias}_at`` and ``{alias}``."""
    return (
        f"maxIf({at}, isNotNull({value})) AS {alias}_at,"
        f" argMaxIf({value}, ({at}, assumeNotNull({value})), isNotNull({value})) AS {alias}"
    )


_LATEST_IN = ", ".join(_latest(f"$limit_{k}", f"$at_{k}", f"minute_{k}") for k in _KINDS)
_MINUTES = (
    f"SELECT provider, {_GROUP} AS grp, $bucket AS minute,"  # noqa: S608
    " $calls AS rpm, sum(input_tokens) + sum(output_tokens) AS tpm, sum(input_tokens) AS itpm,"
    " sum(input_tokens) - sum(cache_read_tokens) AS uncached_itpm, sum(output_tokens) AS otpm,"
    f" $rate_limited AS rate_limited, {_LATEST_IN} FROM $source WHERE project_id = {{project:UInt64}}"
    " AND $time >= {start:DateTime('UTC')} AND $time < {end:DateTime('UTC')}$filters"
    " GROUP BY provider, grp, minute HAVING rpm > 0"
)
_ROLLUP = {
    "bucket": "bucket", "calls": "sum(calls)", "rate_limited": "sum(rate_limited_calls)", "time": "bucket",
    **{f"limit_{k}": f"limit_{k}" for k in _KINDS}, **{f"at_{k}": f"limit_{k}_at" for k in _KINDS},
}  # fmt: skip
_RAW = {
    "bucket": "toStartOfMinute(timestamp)", "calls": "count()", "time": "timestamp",
    "rate_limited": "countIf(status = 'error' AND error_type = 'rate_limit')",
    **{f"limit_{k}": f"ratelimit_limit_{k}" for k in _KINDS}, **{f"at_{k}": "timestamp" for k in _KINDS},
}  # fmt: skip
_MEMBER = "(provider, model) IN {pool_pairs:Array(Tuple(String, String))}"
# The minute tier's rows the figures do not answer: the models of a pool (summed with their pool's
# others per minute) over the range, and the others' in the range's partial edge hours. ``$members``
# are the models of a pool and the days and hours the minutes must answer for them: the whole
# range, or, where the pool tiers answer, the partial edge hours and the days and hours they lack.
_MINUTE_SOURCE = (
    f"(SELECT * FROM {MINUTE_TABLE} FINAL WHERE project_id = {{project:UInt64}}"  # noqa: S608
    " AND bucket >= {start:DateTime('UTC')} AND bucket < {end:DateTime('UTC')}"
    " AND (bucket < {hours_from:DateTime('UTC')} OR bucket >= {hours_to:DateTime('UTC')} OR $members))"
)
_LACKING = (
    f"{_MEMBER} AND ((provider, model, toStartOfDay(bucket))"
    " IN {pool_lacking:Array(Tuple(String, String, DateTime('UTC')))}"
    " OR (provider, model, toStartOfHour(bucket))"
    " IN {pool_lacking_hours:Array(Tuple(String, String, DateTime('UTC')))})"
)
# The whole days of the range, and its whole hours outside them (the edge hours).
_IN_DAYS = "bucket >= {whole_from:DateTime('UTC')} AND bucket < {whole_to:DateTime('UTC')}"
_IN_HOURS = (
    "bucket >= {hours_from:DateTime('UTC')} AND bucket < {hours_to:DateTime('UTC')}"
    " AND (bucket < {whole_from:DateTime('UTC')} OR bucket >= {whole_to:DateTime('UTC')})"
)
# The figures tier's rows for the whole days and the edge hours: a model's own (outside any pool:
# ``$models``), and a pool's that stand for it as configured now (``pool_days.signature``: ``$pools``).
_CURRENT_POOL = (
    "pooled = 1 AND has({pool_sigs:Array(String)},"
    " concat(toString(provider), '\\x00', toString(model), '\\x00', arrayStringConcat(members, '\\x00')))"
)
_FIGURE_ROWS = (
    f"{FIGURES_TABLE} FINAL WHERE project_id = {{project:UInt64}} AND calls > 0"
    f" AND ((grain = 'day' AND {_IN_DAYS}) OR (grain = 'hour' AND {_IN_HOURS}))"
    " AND ((pooled = 0 AND $models) OR ($pools))"
)
# What the figures hold of the range's pools as configured now (pooled 1), and the whole days and
# edge hours in which the pools' models had traffic (pooled 0): where a model had traffic and its
# pool has no row, the minutes answer (``_lacking``).
_POOL_COVERAGE = (
    "SELECT pooled, toString(grain), provider, toString(model), groupArray(bucket) FROM"  # noqa: S608
    f" {_FIGURE_ROWS.replace('$models', _MEMBER).replace('$pools', _CURRENT_POOL)}"
    " GROUP BY pooled, grain, provider, model"
)
# Per (provider, model or pool) and day: the minutes with traffic, the peak of each measure, the
# peak's key (tpm · 2048 + 1439 − the minute of the day: its largest value is the earliest minute
# of the largest tpm), each measure's $top largest minutes (descending), the 429s and the latest
# observed limits. Each day's list length (l_) and last value (e_) tell whether it was cut short.
_DAY_SUMMARY = ["n", *(f"d_{m}" for m in MEASURES), *(f"l_{m}, e_{m}" for m in MEASURES)]
_DAY_LIMITS = [f"o_{k}_at, o_{k}" for k in _KINDS]
# Where each field sits in a day of the summary's list: (day, n, the peaks, per measure (length, last), the limits).
_AT_LISTS = 2 + len(MEASURES)
_AT_LIMITS = _AT_LISTS + 2 * len(MEASURES)
_DAYS_FROM_MINUTES = (
    "SELECT provider, grp, toDate(minute) AS day, count() AS n, "  # noqa: S608
    + ", ".join(f"toUInt64(max({m})) AS d_{m}" for m in MEASURES)
    + ", toUInt64(max(toUInt64(tpm) * 2048 + (1439 - toRelativeMinuteNum(minute) % 1440))) AS d_key, "
    + ", ".join(f"arraySlice(arrayReverseSort(groupArray(toInt64({m}))), 1, $top) AS t_{m}" for m in MEASURES)
    + ", toUInt64(sum(rate_limited)) AS d_rate_limited, "
    + ", ".join(f"length(t_{m}) AS l_{m}, t_{m}[-1] AS e_{m}" for m in MEASURES)
    + ", "
    + ", ".join(_latest(f"minute_{k}", f"minute_{k}_at", f"o_{k}") for k in _KINDS)
    + " FROM ($minutes) GROUP BY provider, grp, day"
)
# The same figures for the whole days and the edge hours from the figures tier (``_FIGURE_ROWS``):
# a day's top lists hold its largest CAPACITY_TOP_MINUTES only, an hour's every minute. An hour's
# row is one more entry of its day.
_DAYS_FROM_FIGURES = (
    "SELECT provider, toString(model) AS grp, toDate(bucket) AS day, toUInt64(active_minutes) AS n, "  # noqa: S608
    + ", ".join(f"peak_{m} AS d_{m}" for m in MEASURES)
    + ", peak_key AS d_key, "
    + ", ".join(f"CAST(top_{m}, 'Array(Int64)') AS t_{m}" for m in MEASURES)
    + ", rate_limited_calls AS d_rate_limited, "
    + ", ".join(f"length(top_{m}) AS l_{m}, toInt64(top_{m}[-1]) AS e_{m}" for m in MEASURES)
    + ", "
    + ", ".join(f"limit_{k}_at AS o_{k}_at, limit_{k} AS o_{k}" for k in _KINDS)
    + " FROM $rows$filters"
)
# Then per model: the peaks, the peak minute (the earliest day of the largest tpm), the days, and
# the nearest-rank p99: the k-th largest minute, k = n − ⌈0.99·n⌉ + 1, taken from the union of the
# days' top lists. Python (:func:`_unsure`) judges whether that is exact from the days, and picks
# the latest observed limits from them (:func:`_observed`).
_RANK = "toUInt64(sum(n) - intDiv(99 * sum(n) + 99, 100) + 1)"
_SUMMARY = (
    f"SELECT provider, grp, sum(n), {_RANK} AS k, "  # noqa: S608
    + ", ".join(f"max(d_{m})" for m in MEASURES)
    + ", "
    + ", ".join(f"arrayElement(arrayReverseSort(arrayFlatten(groupArray(t_{m}))), k) AS p99_{m}" for m in MEASURES)
    + ", argMax(toDateTime(day, 'UTC') + toIntervalMinute(1439 - d_key % 2048),"
    " (d_tpm, -toInt64(toUInt32(day)), d_key)),"
    " sum(d_rate_limited), groupArray(("
    + ", ".join(["day", *_DAY_SUMMARY, *_DAY_LIMITS])
    + ")) FROM ($days) GROUP BY provider, grp ORDER BY provider, grp"
)
# The exact p99 of the models ``_unsure`` named, from every minute of the range.
_P99_SQL = (
    "SELECT provider, grp, "  # noqa: S608
    + ", ".join(f"arrayElement(arraySort(groupArray({m})), intDiv(99 * count() + 99, 100))" for m in MEASURES)
    + " FROM ($minutes) WHERE has({unsure:Array(String)}, concat(toString(provider), '\\x00', grp))"
    " GROUP BY provider, grp"
)


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


def _check(query: CapacityQuery) -> None:
    unknown = sorted(set(query.filters) - set(FILTERS))
    if unknown:
        raise CapacityError(f"capacity cannot be filtered by {unknown[0]} (filters: {', '.join(FILTERS)})")
    if query.end <= query.start:
        raise CapacityError("to must be after from")
    if any(t.second or t.microsecond for t in (query.start, query.end)):
        raise CapacityError("from and to must fall on a whole minute (capacity is counted per UTC minute)")


def _filters(query: CapacityQuery, params: dict[str, Any]) -> str:
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
        return _MEMBER  # all of them: a model filter counts the models, not their pool
    return _LACKING if params["pool_lacking"] or params["pool_lacking_hours"] else "0"


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
    parts = _RAW if raw else _ROLLUP
    if raw:
        source = "llm_calls FINAL"
    elif _detailed(query):
        source = f"{DETAIL_TABLE} FINAL"
    elif whole_range:
        source = f"{MINUTE_TABLE} FINAL"
    else:
        source = _MINUTE_SOURCE.replace("$members", _members(query, params))
    minutes = _MINUTES
    for name, text in {**parts, "source": source, "filters": _filters(query, params)}.items():
        minutes = minutes.replace(f"${name}", text)
    return minutes


def _summary_sql(query: CapacityQuery, raw: bool, params: dict[str, Any]) -> str:
    parts = []
    if _needs_minutes(query, raw, params):
        parts.append(_DAYS_FROM_MINUTES.replace("$minutes", _minutes_sql(query, raw, params)))
    if not raw and not _detailed(query):
        rows = _FIGURE_ROWS.replace("$models", f"NOT {_MEMBER}")
        rows = rows.replace("$pools", _CURRENT_POOL if _pooled(query) else "0")
        parts.append(_DAYS_FROM_FIGURES.replace("$filters", _filters(query, params)).replace("$rows", rows))
    days = " UNION ALL ".join(parts)
    range_minutes = int((query.end - query.start).total_seconds() // 60)
    top = range_minutes // 100 + 2 if raw else min(range_minutes // 100 + 2, CAPACITY_TOP_MINUTES)
    return _SUMMARY.replace("$days", days).replace("$top", str(top))


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
    for pool, grain, provider, name, buckets in get_clickhouse().query(_POOL_COVERAGE, parameters=params).result_rows:
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
    _check(query)
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
            length, last = day[_AT_LISTS + 2 * i], day[_AT_LISTS + 2 * i + 1]
            if length < day[1] and length < k and last >= p99[i]:
                return True
    return False


def _observed(days: Sequence[Sequence[Any]]) -> dict[str, int | None]:
    """The latest limit of each kind the days report (of two at the same time, the larger)."""
    latest: dict[str, int | None] = {}
    for i, name in enumerate(_OBSERVED):
        reports = [
            (day[_AT_LIMITS + 2 * i], day[_AT_LIMITS + 2 * i + 1])
            for day in days
            if day[_AT_LIMITS + 2 * i + 1] is not None
        ]
        latest[name] = max(reports)[1] if reports else None
    return latest


def _exact_p99(
    query: CapacityQuery, raw: bool, params: dict[str, Any], unsure: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], dict[str, int]]:
    """The p99 of the models (or pools) the day figures could not settle, from every minute of the range."""
    if not unsure:
        return {}
    sql = _P99_SQL.replace("$minutes", _minutes_sql(query, raw, params, whole_range=True))
    rows = get_clickhouse().query(sql, parameters={**params, "unsure": [f"{p}\x00{g}" for p, g in unsure]}).result_rows
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


def route_mix(
    project_id: int,
    provider: str,
    models: Sequence[str],
    minute: datetime,
    filters: Mapping[str, Sequence[str]] | None = None,
) -> list[dict[str, Any]]:
    """Which features and route versions made up one minute of a model (or pool): calls and tokens,
    of the calls the capacity question's ``filters`` (``FILTERS``) keep."""
    params: dict[str, Any] = {"project": project_id, "minute": minute, "provider": provider, "models": list(models)}
    query = CapacityQuery(project_id, minute, minute + timedelta(minutes=1), filters or {})
    _check(query)
    rows = (
        get_clickhouse()
        .query(
            "SELECT toString(feature), toString(route_version), sum(calls), sum(input_tokens) + sum(output_tokens)"  # noqa: S608
            f" FROM {DETAIL_TABLE} FINAL WHERE project_id = {{project:UInt64}} AND bucket = {{minute:DateTime('UTC')}}"
            " AND provider = {provider:String} AND toString(model) IN {models:Array(String)}"
            + _filters(query, params)
            + " GROUP BY feature, route_version HAVING sum(calls) > 0 ORDER BY 4 DESC, 1, 2",
            parameters=params,
        )
        .result_rows
    )
    return [{"feature": f, "route_version": rv, "calls": int(c), "tokens": int(t)} for f, rv, c, t in rows]


def minute_curve(
    project_id: int,
    provider: str,
    models: Sequence[str],
    day: date,
    filters: Mapping[str, Sequence[str]] | None = None,
) -> list[tuple[datetime, int, int]]:
    """One UTC day of a model (or pool), minute by minute: (minute, tpm, rpm) for minutes with traffic,
    of the calls the capacity question's ``filters`` (``FILTERS``) keep."""
    start = datetime.combine(day, datetime.min.time(), UTC)
    query = CapacityQuery(project_id, start, start + timedelta(days=1), filters or {})
    _check(query)
    params: dict[str, Any] = {
        "project": project_id, "provider": provider, "models": list(models), "start": start,
        "end": start + timedelta(days=1),
    }  # fmt: skip
    # Filters beyond provider and model need the detail tier's dimensions.
    narrowed = _filters(query, params)
    table = DETAIL_TABLE if any(d not in ("provider", "model") for d in query.filters) else MINUTE_TABLE
    rows = (
        get_clickhouse()
        .query(
            "SELECT bucket, sum(input_tokens) + sum(output_tokens), sum(calls)"  # noqa: S608
            f" FROM {table} FINAL WHERE project_id = {{project:UInt64}} AND provider = {{provider:String}}"
            " AND toString(model) IN {models:Array(String)}"
            f" AND bucket >= {{start:DateTime('UTC')}} AND bucket < {{end:DateTime('UTC')}}{narrowed}"
            " GROUP BY bucket HAVING sum(calls) > 0 ORDER BY bucket",
            parameters=params,
        )
        .result_rows
    )
    return [(minute.replace(tzinfo=UTC), int(tpm), int(rpm)) for minute, tpm, rpm in rows]
