"""The one query entry point over the ledger: usage time series and breakdowns.

Every reader (the API, dashboards, budgets) goes through :func:`usage`. The tier is chosen from the
granularity, range and dimensions asked for: minute/hour/day rollups for the main dimensions,
customer and user rollups for those, and the raw table (through the same measure definitions)
only for combinations no rollup holds. Values are bound server-side; the project id is on every
query. Money comes back as exact ``Decimal``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
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
from ledger.pricing import pusd_to_usd
from ledger.read_threads import read_settings
from ledger.timeparse import UnknownTimeZone, time_zone

DIMENSIONS = (*MAIN_DIMENSIONS, "customer_id", "user_id")
GRANULARITIES = {"minute": timedelta(minutes=1), "hour": timedelta(hours=1), "day": timedelta(days=1)}
MAX_MINUTE_RANGE = timedelta(days=7)
MAX_BUCKETS = 20_000
MAX_LIMIT = 10_000


class QueryError(ValueError):
    """A bad query: the message says what is wrong and is safe to show."""


@dataclass(frozen=True)
class Metric:
    sql: str  # over the measure columns of a rollup row
    kind: str  # "money" (pico-USD → Decimal), "int", "float"


def _q(column: str, index: int) -> str:
    return f"quantilesTDigestMerge(0.5, 0.95, 0.99)({column})[{index}]"


def _ratio(num: str, den: str) -> str:
    return f"if(sum({den}) = 0, nan, sum({num}) / sum({den}))"


METRICS: dict[str, Metric] = {
    "cost": Metric("sum(cost_pusd)", "money"),
    "cost_input": Metric("sum(cost_input_pusd)", "money"),
    "cost_cache_read": Metric("sum(cost_cache_read_pusd)", "money"),
    "cost_cache_write": Metric("sum(cost_cache_write_pusd)", "money"),
    "cost_output": Metric("sum(cost_output_pusd)", "money"),
    "cost_reasoning": Metric("sum(cost_reasoning_pusd)", "money"),
    "cost_per_call": Metric("if(sum(calls) = 0, toInt128(0), intDiv(sum(cost_pusd), sum(calls)))", "money"),
    "calls": Metric("sum(calls)", "int"),
    "errors": Metric("sum(error_calls)", "int"),
    "error_rate": Metric(_ratio("error_calls", "calls"), "float"),
    "retries": Metric("sum(retry_calls)", "int"),
    "retry_rate": Metric(_ratio("retry_calls", "calls"), "float"),
    "retry_tokens": Metric("sum(retry_tokens)", "int"),
    "retry_cost": Metric("sum(retry_cost_pusd)", "money"),
    "cache_hits": Metric("sum(cache_hits)", "int"),
    "cache_hit_rate": Metric(_ratio("cache_hits", "calls"), "float"),
    "cache_savings": Metric("sum(cache_saving_pusd)", "money"),
    "cache_read_share": Metric(_ratio("cache_read_tokens", "input_tokens"), "float"),
    "input_tokens": Metric("sum(input_tokens)", "int"),
    "uncached_input_tokens": Metric("sum(uncached_input_tokens)", "int"),
    "cache_read_tokens": Metric("sum(cache_read_tokens)", "int"),
    "cache_write_tokens": Metric("sum(cache_write_tokens)", "int"),
    "output_tokens": Metric("sum(output_tokens)", "int"),
    "reasoning_tokens": Metric("sum(reasoning_tokens)", "int"),
    "unpriced_calls": Metric("sum(unpriced_calls)", "int"),
    "streamed_calls": Metric("sum(streamed_calls)", "int"),
    "tool_calls": Metric("sum(tool_calls)", "int"),
    "ttft_p50": Metric(_q("ttft_digest", 1), "float"),
    "ttft_p95": Metric(_q("ttft_digest", 2), "float"),
    "ttft_p99": Metric(_q("ttft_digest", 3), "float"),
    "latency_p50": Metric(_q("latency_digest", 1), "float"),
    "latency_p95": Metric(_q("latency_digest", 2), "float"),
    "latency_p99": Metric(_q("latency_digest", 3), "float"),
    "latency_avg": Metric(_ratio("latency_sum_ms", "latency_calls"), "float"),
    "tokens_per_second": Metric(
        "if(sum(latency_sum_ms) = 0, nan, sum(output_tokens) * 1000 / sum(latency_sum_ms))", "float"
    ),
    "feedback_count": Metric("sum(feedback_count)", "int"),
    "feedback_score": Metric(_ratio("feedback_score_sum", "feedback_count"), "float"),
}
DEFAULT_METRICS = ("cost", "calls")
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


def _build(q: UsageQuery, prequery: bool = True) -> _Built:
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
    built = _build(q)
    result = get_clickhouse().query(
        built.sql, parameters=built.params, caller="ledger.queries.usage", settings=read_settings(built.tables)
    )
    return built.finish(_rows(result))


def _prefix_params(sql: str, bound: dict[str, Any], prefix: str) -> str:
    """``sql`` with each ``{name:Type}`` placeholder of a parameter in ``bound`` renamed ``prefix + name``."""

    def rename(match: re.Match[str]) -> str:
        name = match.group(1)
        return "{" + (prefix if name in bound else "") + name + ":"

    return re.sub(r"\{([A-Za-z_][A-Za-z0-9_]*):", rename, sql)


def usage_many(queries: Sequence[UsageQuery]) -> list[UsageResult]:
    """Several usage queries answered by ONE statement (UNION ALL), each result what :func:`usage`
    would answer. Each must be one statement on its own (not a breakdown over time ranked by a
    percentile or ratio, which :class:`QueryError` refuses) and all must ask for the same metrics."""
    if not queries:
        return []
    if len({tuple(dict.fromkeys([*q.metrics, q.order_by])) for q in queries}) > 1:
        raise QueryError("queries answered together must ask for the same metrics")
    parts, params, finishes = [], {}, []
    tables: list[str] = []
    for i, q in enumerate(queries):
        built = _build(q, prequery=False)
        tables += built.tables
        # One column layout for every part (the groups as an array of strings, below), and the
        # part's parameters with a prefix of their own, so parts with other filters never clash.
        head = f"SELECT {bucket_sql(q.granularity, 'bucket')} AS b, "
        if not built.sql.startswith(head):
            raise QueryError("a usage statement of an unexpected shape")
        inner = (
            f"SELECT toUInt16({i}) AS part, toInt64({bucket_sql(q.granularity, 'bucket')}) AS b, "
            + built.sql[len(head) :]
        )
        inner = _prefix_params(inner, built.params, f"q{i}_")
        prefix = f"q{i}_"
        params.update({prefix + k: v for k, v in built.params.items()})
        groups = list(q.group_by)
        keys = ", ".join(f"g_{d}" for d in groups)
        metric_cols = ", ".join(f"m_{m}" for m in dict.fromkeys([*q.metrics, q.order_by]))
        parts.append(f"SELECT part, b, [{keys}]::Array(String) AS groups, {metric_cols} FROM ({inner})")
        finishes.append((groups, built.finish))
    result = get_clickhouse().query(
        " UNION ALL ".join(parts), parameters=params, caller="ledger.queries.usage_many", settings=read_settings(tables)
    )
    by_part: dict[int, list[dict[str, Any]]] = {i: [] for i in range(len(queries))}
    for row in _rows(result):
        by_part[int(row.pop("part"))].append(row)
    out = []
    for i, (groups, finish) in enumerate(finishes):
        rows = [{**{d: r["groups"][j] for j, d in enumerate(groups)}, **r} for r in by_part[i]]
        out.append(finish(rows))
    return out


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


def usage_breakdowns(base: UsageQuery, parts: Sequence[tuple[tuple[str, ...], int]]) -> list[UsageResult]:
    """Several totals breakdowns of one selection (same range and filters), each ``(group_by, limit)``
    ranked by ``base.order_by`` with ``base.metrics``, answered by one statement (UNION ALL, each part
    over the smallest table that holds its dimensions: top features from the compact day tier, top
    customers from the customer totals; parts over the same table read it once, as grouping sets).
    Each result is what :func:`usage` would answer."""
    if base.granularity is not None:
        raise QueryError("breakdowns are totals: granularity must be None")
    if not parts or any(not group_by for group_by, _ in parts):
        raise QueryError("each breakdown needs a group_by")
    metrics = list(dict.fromkeys(base.metrics))
    prepared = [_prepare(replace(base, group_by=group_by, limit=limit)) for group_by, limit in parts]
    # Parts that read the same table under the same conditions share one scan (each grouping set
    # once in it: a part grouping by the same dimensions as another starts a scan of its own).
    scans: list[tuple[tuple[str, str, str], list[int]]] = []
    for i, p in enumerate(prepared):
        key = (p.source, p.where_sql, repr(sorted(p.params.items())))
        scan = next((m for k, m in scans if k == key and all(set(parts[j][0]) != set(parts[i][0]) for j in m)), None)
        if scan is None:
            scans.append((key, [i]))
        else:
            scan.append(i)
    selects, params = [], {}
    for n, (_, members) in enumerate(scans):
        p = prepared[members[0]]
        sql = _breakdown_scan(p, [(i, *parts[i]) for i in members], metrics, base.order_by)
        # Each scan's parameters under a prefix of its own: scans over different tables may bind
        # their bounds differently.
        selects.append(_prefix_params(sql, p.params, f"q{n}_"))
        params.update({f"q{n}_{k}": v for k, v in p.params.items()})
    result = get_clickhouse().query(
        " UNION ALL ".join(selects),
        parameters=params,
        caller="ledger.queries.usage_breakdowns",
        # grouping(): 1 for a column NOT in the set
        settings={"force_grouping_standard_compatibility": 1, **read_settings(p.source_name for p in prepared)},
    )
    names = [c.removeprefix("m_") for c in result.column_names]
    by_part: dict[int, list[dict[str, Any]]] = {i: [] for i in range(len(parts))}
    for raw in result.result_rows:
        row = dict(zip(names, raw, strict=True))
        by_part[int(row["part"])].append(row)
    out = []
    for i, ((group_by, limit), p) in enumerate(zip(parts, prepared, strict=True)):
        ranked = sorted(by_part[i], key=lambda r: int(r["rn"]))  # each part in its rank order
        rows = [{"b": 0, **{d: r["g"][j] for j, d in enumerate(group_by)}, **r} for r in ranked]
        truncated = len(rows) > limit
        shaped = _shape(rows[:limit], p.q, p.tz, p.start, p.end, list(group_by), metrics, [()])
        out.append(UsageResult(shaped, truncated, p.source_name))
    return out


def _breakdown_scan(
    p: _Prepared, members: list[tuple[int, tuple[str, ...], int]], metrics: list[str], order_by: str
) -> str:
    """One SELECT answering the breakdowns ``members`` ((part, group_by, limit), all over ``p``'s table
    and conditions): columns part, g (the group's values as strings), the metrics, rn (its rank).
    Each part ranks by ``order_by`` descending, then its dimensions, and keeps ``limit + 1`` groups."""
    select_metrics = _select_metrics([*metrics, order_by])
    if len(members) == 1:
        i, group_by, limit = members[0]
        keys, columns = ", ".join(f"toString({d})" for d in group_by), ", ".join(group_by)
        return (
            f"SELECT part, g, {_metric_columns(metrics, order_by)},"
            f" row_number() OVER (ORDER BY m_{order_by} DESC, {columns}) AS rn FROM ("
            f"SELECT toUInt8({i}) AS part, [{keys}] AS g, {columns}, {select_metrics}"
            f" FROM {p.source} {p.where_kw} {p.where_sql} GROUP BY {columns}"
            f" ORDER BY m_{order_by} DESC, {columns} LIMIT {limit + 1})"
        )
    dims = list(dict.fromkeys(d for _, group_by, _ in members for d in group_by))
    # grouping(dims): one bit per dimension, the first the most significant, set where the row's
    # grouping set does not hold that dimension (the standard's meaning, asked for by the caller).
    masks = [
        sum(1 << (len(dims) - 1 - k) for k, d in enumerate(dims) if d not in group_by) for _, group_by, _ in members
    ]
    sets = list(zip(masks, members, strict=True))
    part = "multiIf(" + "".join(f"gid = {m}, {i}, " for m, (i, _, _) in sets) + "255)"
    g = "multiIf(" + "".join(f"gid = {m}, [{', '.join(f'toString({d})' for d in gb)}], " for m, (_, gb, _) in sets)
    limits = "multiIf(" + "".join(f"gid = {m}, {lim + 1}, " for m, (_, _, lim) in sets) + "0)"
    grouping_sets = ", ".join(f"({', '.join(group_by)})" for _, group_by, _ in members)
    columns = ", ".join(dims)
    # Dimensions outside a row's grouping set hold one default value throughout it, so ordering by
    # all of them ranks each set by its own dimensions, as its own statement would.
    return (
        f"SELECT toUInt8({part}) AS part, {g}[]) AS g, {_metric_columns(metrics, order_by)}, rn FROM ("
        f"SELECT *, row_number() OVER (PARTITION BY gid ORDER BY m_{order_by} DESC, {columns}) AS rn FROM ("
        f"SELECT grouping({columns}) AS gid, {columns}, {select_metrics}"
        f" FROM {p.source} {p.where_kw} {p.where_sql} GROUP BY GROUPING SETS ({grouping_sets})))"
        f" WHERE rn <= {limits}"
    )


def _metric_columns(metrics: Sequence[str], order_by: str) -> str:
    return ", ".join(f"m_{m}" for m in dict.fromkeys([*metrics, order_by]))


def _ceil_minute(when: datetime) -> datetime:
    floor = when.replace(second=0, microsecond=0)
    return floor if floor == when else floor + timedelta(minutes=1)


def align(when: datetime, granularity: str | None, tz: ZoneInfo) -> datetime:
    local = when.astimezone(tz)
    if granularity == "minute":
        local = local.replace(second=0, microsecond=0)
    elif granularity == "hour":
        local = local.replace(minute=0, second=0, microsecond=0)
    elif granularity == "day":
        local = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return local.astimezone(UTC)


def buckets(start: datetime, end: datetime, granularity: str, tz: ZoneInfo) -> Iterator[datetime]:
    """Bucket starts in ``tz`` from ``start`` (aligned) to ``end``; day steps follow the wall clock (DST)."""
    local = start.astimezone(tz)
    while local.astimezone(UTC) < end:
        yield local
        if granularity == "day":
            naive = (local.replace(tzinfo=None) + timedelta(days=1)).replace(hour=0, minute=0)
            local = naive.replace(tzinfo=tz)
        else:
            local = (local.astimezone(UTC) + GRANULARITIES[granularity]).astimezone(tz)


def _value(metric: str, raw: Any) -> Any:
    kind = METRICS[metric].kind
    if kind == "money":
        return pusd_to_usd(int(raw or 0))
    if kind == "int":
        return int(raw or 0)
    if raw is None or (isinstance(raw, float) and math.isnan(raw)):
        return None
    return float(raw)


def _zero(metric: str) -> Any:
    kind = METRICS[metric].kind
    return Decimal(0).scaleb(-12) if kind == "money" else 0 if kind == "int" else None


def _shape(
    rows: list[dict[str, Any]],
    q: UsageQuery,
    tz: ZoneInfo,
    start: datetime,
    end: datetime,
    group_cols: Sequence[str],
    metrics: Sequence[str],
    groups: Sequence[tuple[str, ...]],
) -> list[dict[str, Any]]:
    """Rows in rank order of their group (biggest first), each group's buckets in time order."""
    by_key = {(r["b"], *(r[d] for d in group_cols)): r for r in rows}
    out: list[dict[str, Any]] = []
    if q.granularity is None:
        if not group_cols and not rows:  # a total over nothing is zero, not absent
            return [{m: _zero(m) for m in metrics}]
        for r in sorted(rows, key=lambda r: _rank(r, q.order_by), reverse=True):
            out.append({**{d: r[d] for d in group_cols}, **{m: _value(m, r[m]) for m in metrics}})
        return out
    # The expected buckets, plus any the database produced that the wall-clock steps did not (zones
    # whose clocks shift by half an hour), so no row is ever dropped for want of a slot.
    expected = {int(bucket.timestamp()): bucket for bucket in buckets(start, end, q.granularity, tz)}
    for r in rows:
        expected.setdefault(r["b"], datetime.fromtimestamp(r["b"], tz))
    timeline = sorted(((bucket, epoch) for epoch, bucket in expected.items()), key=lambda item: item[1])
    zeros = {m: _zero(m) for m in metrics}
    for group in groups:
        labels = dict(zip(group_cols, group, strict=True))
        for bucket, epoch in timeline:
            found = by_key.get((epoch, *group))
            values = {m: _value(m, found[m]) for m in metrics} if found else zeros
            out.append({"bucket": bucket, **labels, **values})
    return out


def _rank(row: dict[str, Any], metric: str) -> Any:
    value = row[metric]
    return -math.inf if value is None or (isinstance(value, float) and math.isnan(value)) else value
