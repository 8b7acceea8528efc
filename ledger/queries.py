"""The one query entry point over the ledger: usage time series and breakdowns.

Every reader (the API, dashboards, budgets) goes through :func:`usage`. The tier is chosen from the
granularity, range and dimensions asked for: minute/hour/day rollups for the main dimensions,
customer and user rollups for those, and the raw table (through the same measure definitions)
only for combinations no rollup holds. Values are bound server-side; the project id is on every
query. Money comes back as exact ``Decimal``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings

from ledger import quantiles
from ledger.clickhouse.client import get_clickhouse
from ledger.measures import (
    COMPACT_DIMENSIONS,
    CUSTOMER_DIMENSIONS,
    CUSTOMER_ONLY,
    MAIN_DIMENSIONS,
    RAW_MEASURES,
    ROUTE_DIMENSIONS,
    USER_DIMENSIONS,
    raw_source,
)
from ledger.read_threads import read_settings
from ledger.timeparse import UnknownTimeZone, time_zone
from ledger.usage_metrics import DEFAULT_METRICS, METRICS
from ledger.usage_shape import GRANULARITIES, _ceil_minute, _shape, align, buckets

DIMENSIONS = (*MAIN_DIMENSIONS, "customer_id", "user_id")
MAX_MINUTE_RANGE = timedelta(days=7)
MAX_BUCKETS = 20_000
MAX_LIMIT = 10_000


class QueryError(ValueError):
    """A bad query: the message says what is wrong and is safe to show."""


_RETENTION = {  # tables that forget, and the setting that says when
    "rollup_minute": "CLICKHOUSE_MINUTE_TTL_DAYS",
    "rollup_hour": "CLICKHOUSE_HOUR_TTL_DAYS",
    "rollup_route_hour": "CLICKHOUSE_HOUR_TTL_DAYS",
    quantiles.HOUR_TABLE: "CLICKHOUSE_HOUR_TTL_DAYS",
    "llm_calls": "CLICKHOUSE_RAW_TTL_DAYS",
}


@dataclass(frozen=True)
class UsageQuery:
    project_id: int
    start: datetime
    end: datetime
    granularity: str | None = "day"  # None: one total per group
    group_by: tuple[str, ...] = ()
    filters: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # tag key -> allowed values (calls whose tag has one of them); answered from the raw table
    tags: dict[str, tuple[str, ...]] = field(default_factory=dict)
    metrics: tuple[str, ...] = DEFAULT_METRICS
    tz: str = "UTC"
    limit: int = 100  # groups
    order_by: str = "cost"  # the metric that ranks groups (descending)
    # With time buckets and more than ``limit`` groups: the groups past the limit, folded into one
    # group of this label (their sketches merged, so its percentiles are exact), instead of left out.
    other: str | None = None


@dataclass
class UsageResult:
    rows: list[dict[str, Any]]
    truncated: bool
    source: str  # the table that answered, for operators and tests


def validate(q: UsageQuery) -> ZoneInfo:
    """Raise :class:`QueryError` with a clear message for any bad part; return the time zone."""
    for name, value in (("from", q.start), ("to", q.end)):
        if value.tzinfo is None:
            raise QueryError(f"{name} needs a UTC offset")
    if q.start >= q.end:
        raise QueryError("from must be before to")
    try:
        tz = time_zone(q.tz)
    except UnknownTimeZone:
        raise QueryError(f"unknown time zone {q.tz!r}") from None
    if q.granularity is not None and q.granularity not in GRANULARITIES:
        raise QueryError(f"granularity must be one of {', '.join(GRANULARITIES)}")
    unknown = [d for d in (*q.group_by, *q.filters) if d not in DIMENSIONS]
    if unknown:
        raise QueryError(f"unknown dimension {unknown[0]!r}; known: {', '.join(DIMENSIONS)}")
    for key, values in q.tags.items():
        if not key or not values:
            raise QueryError("a tag filter needs a key and at least one value")
    if len(set(q.group_by)) != len(q.group_by):
        raise QueryError("group_by names a dimension twice")
    bad = [m for m in (*q.metrics, q.order_by) if m not in METRICS]
    if bad:
        raise QueryError(f"unknown metric {bad[0]!r}; known: {', '.join(METRICS)}")
    if not q.metrics:
        raise QueryError("metrics is empty")
    if not 1 <= q.limit <= MAX_LIMIT:
        raise QueryError(f"limit must be between 1 and {MAX_LIMIT}")
    if q.granularity == "minute":
        if q.end - q.start > MAX_MINUTE_RANGE:
            raise QueryError("minute granularity covers at most 7 days; use hour or day")
        oldest = datetime.now(UTC) - timedelta(days=settings.CLICKHOUSE_MINUTE_TTL_DAYS)
        if q.start < oldest:
            raise QueryError(f"minute data is kept {settings.CLICKHOUSE_MINUTE_TTL_DAYS} days; use hour or day")
    if q.granularity is not None and (q.end - q.start) / GRANULARITIES[q.granularity] > MAX_BUCKETS:
        raise QueryError(f"too many buckets (more than {MAX_BUCKETS}); use a coarser granularity")
    return tz


def _whole_hour_offsets(tz: ZoneInfo, start: datetime, end: datetime) -> bool:
    return all((point.astimezone(tz).utcoffset() or timedelta()).total_seconds() % 3600 == 0 for point in (start, end))


def _source(q: UsageQuery, tz: ZoneInfo, precomputed: bool = True) -> tuple[str, str]:
    """(FROM clause, a name for it) for the query's needs (``precomputed=False``: never the
    precomputed percentiles, ``ledger.quantiles``)."""
    needed = set(q.group_by) | set(q.filters)
    if q.tags:  # no rollup keeps tags: filter the raw calls, keeping only the dimensions asked for
        return _raw_source(q, tuple(d for d in DIMENSIONS if d in needed)), "llm_calls"
    # Customer and user rollups hold no latency sketches: quantiles over those come from raw.
    needs_sketch = any("_digest" in METRICS[m].sql for m in q.metrics)
    aligned_hours = q.start.minute == q.start.second == q.end.minute == q.end.second == 0
    day_ok = q.granularity in ("day", None) and tz.key == "UTC" and q.start.hour == q.end.hour == 0 and aligned_hours
    hour_ok = q.granularity != "minute" and aligned_hours and _whole_hour_offsets(tz, q.start, q.end)
    precomputed_table = precomputed and quantiles.table_for(
        q.granularity, q.group_by, q.filters, (*q.metrics, q.order_by), q.order_by, day_ok=day_ok, hour_ok=hour_ok
    )
    if precomputed_table:  # each (bucket, group) cell is one row there: no sketch to merge
        return f"{precomputed_table} FINAL", precomputed_table
    # The narrowest table that holds every dimension asked for wins.
    if needed <= set(MAIN_DIMENSIONS):
        if q.granularity == "minute":
            return "rollup_minute FINAL", "rollup_minute"
        if day_ok:
            table = "rollup_compact_day" if needed <= set(COMPACT_DIMENSIONS) else "rollup_day"
            return f"{table} FINAL", table
        if hour_ok:
            table = "rollup_route_hour" if needed <= set(ROUTE_DIMENSIONS) else "rollup_hour"
            return f"{table} FINAL", table
    elif needed <= set(CUSTOMER_DIMENSIONS) and day_ok and not needs_sketch:
        table = "rollup_customer_total_day" if needed <= set(CUSTOMER_ONLY) else "rollup_customer_day"
        return f"{table} FINAL", table
    elif needed <= set(USER_DIMENSIONS) and day_ok and not needs_sketch:
        return "rollup_user_day FINAL", "rollup_user_day"
    # No rollup holds this combination: aggregate the raw calls with the same measure definitions.
    return _raw_source(q, DIMENSIONS), "llm_calls"


def _raw_source(q: UsageQuery, dimensions: tuple[str, ...]) -> str:
    """Raw calls aggregated per minute and ``dimensions`` (fewer dimensions: far fewer groups)."""
    dims = "".join(f", c.{d} AS {d}" for d in dimensions)
    tag_filter = "".join(
        f" AND tags[{{tk{i}:String}}] IN {{tv{i}:Array(String)}}" for i in range(len(q.tags))
    )  # values bound by usage(), in sorted key order
    return (
        f"(SELECT c.project_id AS project_id, toStartOfMinute(c.timestamp) AS bucket{dims},{RAW_MEASURES}"
        + raw_source(tag_filter, start="raw_start", end="raw_end")
        + f"\nGROUP BY project_id, bucket{''.join(', ' + d for d in dimensions)} SETTINGS join_use_nulls = 1)"
    )


def bucket_sql(granularity: str | None, column: str) -> str:
    if granularity is None:
        return "toInt64(0)"
    unit = {"minute": "toStartOfMinute", "hour": "toStartOfHour", "day": "toStartOfDay"}[granularity]
    return f"toUnixTimestamp({unit}({column}, {{tz:String}}))"


@dataclass(frozen=True)
class _Prepared:
    q: UsageQuery  # bounds in UTC
    tz: ZoneInfo
    start: datetime  # aligned to the granularity
    end: datetime
    source: str  # the FROM clause
    source_name: str
    params: dict[str, Any]
    where_sql: str
    # How the conditions are applied: a rollup tier's are all on its sorting key (project, bucket,
    # dimensions), the same for every version of a row, so they may filter before FINAL collapses
    # the versions (PREWHERE: far fewer rows to merge when they are not a prefix of the key). The raw
    # calls are a subquery of their own.
    where_kw: str = "WHERE"


def _prepare(q: UsageQuery, precomputed: bool = True) -> _Prepared:
    """Validate ``q``, pick the table that answers it, and bind its bounds and filters."""
    tz = validate(q)
    # Everything below works in UTC, whatever offset the bounds were written in: alignment checks
    # (which tier may answer) included.
    q = replace(q, start=q.start.astimezone(UTC), end=q.end.astimezone(UTC))
    start, end = align(q.start, q.granularity, tz), q.end
    source, source_name = _source(q, tz, precomputed)
    retention = _RETENTION.get(source_name)
    if retention is not None and q.start < datetime.now(UTC) - timedelta(days=getattr(settings, retention)):
        # Say so rather than answer zeros for a range the chosen table no longer holds.
        days = getattr(settings, retention)
        raise QueryError(
            f"this query needs {source_name}, which keeps {days} days; for older ranges use "
            "granularity=day or total in UTC with day-aligned bounds"
        )
    bucket_col = "bucket"
    # The raw path buckets calls by minute and filters the calls themselves by the exact bounds, so
    # its outer filter must keep the minute that holds a bound that is not on a whole minute.
    outer_start = start.replace(second=0, microsecond=0) if source_name == "llm_calls" else start
    params: dict[str, Any] = {
        "project": q.project_id,
        "start": outer_start,
        "end": end if source_name != "llm_calls" else _ceil_minute(end),
        "raw_start": start,
        "raw_end": end,
        "tz": tz.key,
        "version": 0,
    }
    where = [
        "project_id = {project:UInt64}",
        f"{bucket_col} >= {{start:DateTime('UTC')}}",
        f"{bucket_col} < {{end:DateTime('UTC')}}",
    ]
    for i, (key, values) in enumerate(sorted(q.tags.items())):
        params[f"tk{i}"], params[f"tv{i}"] = key, list(values)
    for i, (dim, values) in enumerate(sorted(q.filters.items())):
        params[f"f{i}"] = list(values)
        where.append(f"toString({dim}) IN {{f{i}:Array(String)}}")
    if source_name in quantiles.TABLES:
        params["grouped_by"] = quantiles.grouping(q.group_by)
        where.insert(1, "grouped_by = {grouped_by:String}")
    where_kw = "WHERE" if source_name == "llm_calls" else "PREWHERE"
    return _Prepared(q, tz, start, end, source, source_name, params, " AND ".join(where), where_kw)


def _select_metrics(metrics: Sequence[str], source_name: str = "", cells: bool = True) -> str:
    # Aliases must not shadow the measure columns the metric expressions read (ClickHouse aliases
    # are visible in the whole query), hence the m_ prefix. Over a precomputed table, a bucket's
    # percentile is its one row's (``cells``); a total merges the day rows' digests like any tier.
    sql = quantiles.METRIC_SQL if source_name in quantiles.TABLES and cells else {}
    return ", ".join(f"{sql.get(m, METRICS[m].sql)} AS m_{m}" for m in dict.fromkeys(metrics))


# The label the rest of the groups is folded into when the caller asked for no "(other)": never a
# value of a dimension (no one sends a NUL character in one), dropped before the answer.
_REST = "\x00"


@dataclass
class _Built:
    """One statement of a usage query and what turns its rows into the answer."""

    sql: str
    params: dict[str, Any]
    finish: Callable[[list[dict[str, Any]]], UsageResult]
    tables: tuple[str, ...] = ()  # what the statement reads (ledger.read_threads)


def _build(q: UsageQuery, prequery: bool = True, one_read: bool = True) -> _Built:
    """The statement answering ``q``. A breakdown over time ranked by a metric that does not add up
    (a percentile) needs its groups first: that query runs here, or, with ``prequery=False``,
    :class:`QueryError` says it cannot be one statement."""
    group_cols = list(q.group_by)
    # Ranked by a sum, the top groups are a subquery of the one statement and the rest is folded
    # into one group (q.other, or a label dropped from the answer).
    # (Asked for by an "(other)" label, or by a caller that needs one statement: usage_many.)
    fold = bool(group_cols) and q.granularity is not None and METRICS[q.order_by].sql.startswith("sum(")
    # Filters that name every grouped dimension and allow no more than ``limit`` groups leave nothing
    # to rank away: every group is kept, and no ranking statement is needed (a budget's scope).
    bounded = (
        all(d in q.filters for d in group_cols) and math.prod(len(set(q.filters[d])) for d in group_cols) <= q.limit
    )
    fold = fold and (q.other is not None or not prequery or bounded)
    p = _prepare(q)
    if fold and not bounded and p.source_name in quantiles.TABLES:
        # Over precomputed percentiles the groups are ranked first (a cheap statement), so the cells
        # of the kept groups are read as they are and only a rest, if any, merges sketches; with no
        # statement to spare, the digests are merged.
        if prequery:
            fold = False
        else:
            p = _prepare(q, precomputed=False)
    q, tz, start, end, source, source_name, params = p.q, p.tz, p.start, p.end, p.source, p.source_name, p.params
    where_sql, where_kw = p.where_sql, p.where_kw
    group_by = list(group_cols)
    metrics = list(dict.fromkeys(q.metrics))
    select_metrics = _select_metrics([*metrics, q.order_by], source_name, cells=q.granularity is not None)
    group_select = "".join(f"toString({d}) AS g_{d}, " for d in group_cols)
    truncated = False
    kept: list[tuple[str, ...]] = [()]
    order_limit = ""
    kept_sql = ""  # with a rest folded after ranking: the condition a kept group's rows meet
    key_sql = f"arrayStringConcat([{', '.join(f'toString({d})' for d in group_cols)}], '\\x1f')"
    if group_cols and q.granularity is None:
        # A breakdown without time buckets ranks and cuts in the same query.
        order_limit = f" ORDER BY m_{q.order_by} DESC, {', '.join(group_cols)} LIMIT {q.limit + 1}"
    elif fold and bounded:
        params["other"] = q.other if q.other is not None else _REST  # never produced: nothing is folded
    elif fold:
        ranked = (
            f"SELECT {key_sql} FROM {source} {where_kw} {where_sql} GROUP BY {', '.join(group_cols)}"
            f" ORDER BY {METRICS[q.order_by].sql} DESC, {', '.join(group_cols)} LIMIT {q.limit}"
        )
        params["other"] = q.other if q.other is not None else _REST
        group_select = "".join(
            f"if({key_sql} IN ({ranked}), toString({d}), {{other:String}}) AS g_{d}, " for d in group_cols
        )
        group_by = [f"g_{d}" for d in group_cols]
    elif group_cols and prequery and one_read and _one_read(q, source_name):
        return _one_read_build(q, p, group_cols, metrics, select_metrics, group_select)
    elif group_cols:
        if not prequery:
            raise QueryError("a breakdown over time ranked by a percentile or ratio takes two statements")
        ranked = (
            f"SELECT {', '.join(f'toString({d})' for d in group_cols)} FROM {source} {where_kw} {where_sql}"
            f" GROUP BY {', '.join(group_cols)} ORDER BY {METRICS[q.order_by].sql} DESC,"
            f" {', '.join(group_cols)} LIMIT {q.limit + 1}"
        )
        threads = read_settings([source_name])
        groups = (
            get_clickhouse()
            .query(ranked, parameters=params, caller="ledger.queries.usage.groups", settings=threads)
            .result_rows
        )
        truncated = len(groups) > q.limit
        kept = [tuple(g) for g in groups[: q.limit]]
        # The kept groups, each as one string joined by the unit separator (never in a dimension value
        # we would group on meaningfully), bound as one array parameter.
        params["groups"] = ["\x1f".join(g) for g in kept] or [""]
        in_kept = f"{key_sql} IN {{groups:Array(String)}}"
        if truncated and q.other is not None:
            params["other"] = q.other
            kept_sql = in_kept
            group_select = "".join(f"if({in_kept}, toString({d}), {{other:String}}) AS g_{d}, " for d in group_cols)
            group_by = [f"g_{d}" for d in group_cols]
            kept.append(tuple(q.other for _ in group_cols))
        else:
            where_sql += f" AND {in_kept}"
    sql = (
        f"SELECT {bucket_sql(q.granularity, 'bucket')} AS b, {group_select}{select_metrics}"
        f" FROM {source} {where_kw} {where_sql} GROUP BY b{''.join(', ' + d for d in group_by)}{order_limit}"
    )
    tables: tuple[str, ...] = (source_name,)
    if kept_sql and source_name in quantiles.TABLES:
        sql = _with_merged_rest(q, p, kept_sql, group_cols, [*metrics, q.order_by])
        tables = (source_name, _prepare(q, precomputed=False).source_name)

    def finish(rows: list[dict[str, Any]]) -> UsageResult:
        groups, cut = kept, truncated
        if group_cols and q.granularity is not None and not kept:
            return UsageResult([], False, source_name)  # the ranking found no groups
        if fold:
            groups, cut = _ranked_groups(rows, group_cols, q.order_by, str(params["other"]))
            if q.other is None and cut:  # the rest was only counted, to tell the caller there was more
                rest = tuple(_REST for _ in group_cols)
                rows = [r for r in rows if tuple(r[d] for d in group_cols) != rest]
                groups = groups[:-1]
            if not rows:
                return UsageResult([], cut, source_name)
        if order_limit:
            cut = len(rows) > q.limit
            rows = rows[: q.limit]
        return UsageResult(_shape(rows, q, tz, start, end, group_cols, metrics, groups), cut, source_name)

    return _Built(sql, params, finish, tables)


def _one_read(q: UsageQuery, source_name: str) -> bool:
    """Whether a breakdown over precomputed percentiles is read in one statement, its groups ranked
    here: a stored grouping has few groups, so reading every group's cells costs less than a ranking
    statement first (the floor of a statement is most of what such a read costs). Ranked by a sum
    (added up from the cells), and with no "(other)" to fold, which would need the digests."""
    return source_name in quantiles.TABLES and METRICS[q.order_by].sql.startswith("sum(") and q.other is None


def _one_read_build(
    q: UsageQuery,
    p: _Prepared,
    group_cols: Sequence[str],
    metrics: Sequence[str],
    select_metrics: str,
    group_select: str,
) -> _Built:
    """Every cell of the grouping in the range, then the top ``limit`` groups by ``order_by`` (ties by
    the labels, as the ranking statement orders them). More cells than ``limit + 1`` groups can hold
    (a grouping with many groups): the two-statement answer instead."""
    if q.granularity is None:
        raise QueryError("one read answers a breakdown over time only")
    expected = sum(1 for _ in buckets(p.start, p.end, q.granularity, p.tz)) + 1
    guard = expected * (q.limit + 1)
    sql = (
        f"SELECT {bucket_sql(q.granularity, 'bucket')} AS b, {group_select}{select_metrics}"
        f" FROM {p.source} {p.where_kw} {p.where_sql} GROUP BY b, {', '.join(group_cols)} LIMIT {guard + 1}"
    )

    def finish(rows: list[dict[str, Any]]) -> UsageResult:
        if len(rows) > guard:
            return _run(_build(q, one_read=False))
        ranked, _ = _ranked_groups(rows, group_cols, q.order_by, _REST)  # no rest: nothing is folded
        groups = ranked[: q.limit]
        if not groups:
            return UsageResult([], False, p.source_name)  # the range holds no groups
        if len(ranked) > q.limit:
            keep = set(groups)
            rows = [r for r in rows if tuple(r[d] for d in group_cols) in keep]
        shaped = _shape(rows, p.q, p.tz, p.start, p.end, group_cols, metrics, groups)
        return UsageResult(shaped, len(ranked) > q.limit, p.source_name)

    return _Built(sql, p.params, finish, (p.source_name,))


def _with_merged_rest(
    q: UsageQuery, p: _Prepared, kept_sql: str, group_cols: Sequence[str], metrics: Sequence[str]
) -> str:
    """A folded breakdown over precomputed percentiles: the kept groups' cells read there, the rest's
    (several groups: their sketches merged) from the tier the digests are in."""
    rest = _prepare(q, precomputed=False)
    bucket = bucket_sql(q.granularity, "bucket")
    kept = "".join(f"toString({d}) AS g_{d}, " for d in group_cols)
    other = "".join(f"{{other:String}} AS g_{d}, " for d in group_cols)
    return (
        f"SELECT {bucket} AS b, {kept}{_select_metrics(metrics, p.source_name)} FROM {p.source}"
        f" {p.where_kw} {p.where_sql} AND {kept_sql} GROUP BY b, {', '.join(group_cols)}"
        f" UNION ALL SELECT {bucket} AS b, {other}{_select_metrics(metrics, rest.source_name)} FROM {rest.source}"
        f" {rest.where_kw} {rest.where_sql} AND NOT {kept_sql} GROUP BY b"
    )


def _rows(result: Any) -> list[dict[str, Any]]:
    names = [c.removeprefix("m_").removeprefix("g_") for c in result.column_names]
    return [dict(zip(names, r, strict=True)) for r in result.result_rows]


def usage(q: UsageQuery) -> UsageResult:
    """Run a usage query: long-format rows, one per (bucket, group), empty buckets as zeros."""
    return _run(_build(q))


def _run(built: _Built) -> UsageResult:
    result = get_clickhouse().query(
        built.sql, parameters=built.params, caller="ledger.queries.usage", settings=read_settings(built.tables)
    )
    return built.finish(_rows(result))


def _ranked_groups(
    rows: list[dict[str, Any]], group_cols: Sequence[str], order_by: str, other: str
) -> tuple[list[tuple[str, ...]], bool]:
    """The groups of a folded answer, biggest first by ``order_by`` (a sum), the folded rest last."""
    totals: dict[tuple[str, ...], Any] = {}
    for r in rows:
        key = tuple(r[d] for d in group_cols)
        totals[key] = totals.get(key, 0) + (r[order_by] or 0)
    rest = tuple(other for _ in group_cols)
    kept = sorted((k for k in totals if k != rest), key=lambda k: (-totals[k], k))
    return ([*kept, rest], True) if rest in totals else (kept, False)
