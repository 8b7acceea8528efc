"""Reads for exploring the ledger: the individual calls behind a number, and the values a filter offers.

Aggregates go through :mod:`ledger.queries`; this module answers what a rollup cannot: single calls
from the raw table (the most expensive, the slowest, one call with every field, the calls far above
their feature's usual size) and the distinct dimension values seen in a range. Same rules: values
bound server-side, the project id on every query, UTC-aware datetimes, money as exact ``Decimal``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from ledger.calls_log import find_call, selection_where
from ledger.clickhouse.client import get_clickhouse
from ledger.measures import MAIN_DIMENSIONS
from ledger.queries import DIMENSIONS, QueryError
from ledger.ranked import ranked_calls
from ledger.read_threads import read_settings

CALL_ORDERS = {  # what a drill-down may sort by (descending), and the SQL for it
    "cost": "cost_pusd",
    "latency": "latency_ms",
    "ttft": "ttft_ms",
    "tokens": "input_tokens + output_tokens",
}
MAX_CALLS = 500


@dataclass(frozen=True)
class CallsQuery:
    project_id: int
    start: datetime
    end: datetime
    filters: dict[str, tuple[str, ...]] = field(default_factory=dict)
    order_by: str = "cost"
    limit: int = 50


def _where(q: CallsQuery, params: dict[str, Any]) -> str:
    return selection_where(q.project_id, q.start, q.end, q.filters, params)


def top_calls(q: CallsQuery) -> list[dict[str, Any]]:
    """The calls ranking highest by ``order_by`` in the range (exact: each call once, at its newest version)."""
    if q.order_by not in CALL_ORDERS:
        raise QueryError(f"order_by must be one of {', '.join(CALL_ORDERS)}")
    if not 1 <= q.limit <= MAX_CALLS:
        raise QueryError(f"limit must be between 1 and {MAX_CALLS}")
    params: dict[str, Any] = {}
    where = _where(q, params)
    return ranked_calls(
        q.project_id, where, CALL_ORDERS[q.order_by], params, q.limit, start=q.start, end=q.end, filters=q.filters
    )


def call_detail(project_id: int, event_id: str) -> dict[str, Any] | None:
    """Every stored field of one call (its newest version), or None."""
    return find_call(project_id, event_id)


def dimension_values(project_id: int, start: datetime, end: datetime, limit: int = 200) -> dict[str, list[str]]:
    """The distinct values of each main dimension seen in the range (day rollup), sorted."""
    dims = MAIN_DIMENSIONS
    columns = ", ".join(f"groupUniqArray({int(limit)})(toString({d})) AS {d}" for d in dims)
    result = get_clickhouse().query(
        f"SELECT {columns} FROM (SELECT {', '.join(dims)} FROM rollup_day FINAL"
        " WHERE project_id = {project:UInt64} AND bucket >= toStartOfDay({start:DateTime('UTC')})"
        f" AND bucket < {{end:DateTime('UTC')}} GROUP BY {', '.join(dims)})",
        parameters={"project": project_id, "start": start, "end": end},
        caller="ledger.explore.dimension_values",
        settings=read_settings(["rollup_day"]),
    )
    row = result.result_rows[0] if result.result_rows else [[] for _ in dims]
    return {d: sorted(v for v in values if v != "") for d, values in zip(dims, row, strict=True)}


def seen_values(project_id: int, start: datetime, end: datetime, limit: int = 200) -> dict[str, list[str]]:
    """:func:`dimension_values` plus the customers with the most calls in the range (at most ``limit``)."""
    values = dimension_values(project_id, start, end, limit)
    result = get_clickhouse().query(
        "SELECT customer_id FROM rollup_customer_total_day FINAL WHERE project_id = {project:UInt64}"
        " AND bucket >= toStartOfDay({start:DateTime('UTC')}) AND bucket < {end:DateTime('UTC')}"
        f" AND customer_id != '' GROUP BY customer_id ORDER BY sum(calls) DESC, customer_id LIMIT {int(limit)}",
        parameters={"project": project_id, "start": start, "end": end},
        caller="ledger.explore.seen_values",
    )
    values["customer_id"] = sorted(str(c) for (c,) in result.result_rows)
    return values


@dataclass(frozen=True)
class OutlierQuery:
    """Calls in [start, end) whose tokens exceed ``factor`` x their feature's p95 over ``baseline`` before ``start``."""

    project_id: int
    start: datetime
    end: datetime
    factor: Decimal
    dimensions: tuple[str, ...] = ()  # returned per call, as strings
    baseline: timedelta = timedelta(days=7)
    min_calls: int = 20  # features with fewer calls in the baseline are not judged
    limit: int = 1000


@dataclass(frozen=True)
class OutlierCall:
    event_id: str
    feature: str
    tokens: int  # input + output
    usual: float  # the feature's p95 tokens over the baseline
    dimensions: dict[str, str]
    tags: dict[str, str]


def token_outliers(q: OutlierQuery) -> list[OutlierCall]:
    """The calls of the range far above their feature's usual tokens, biggest first (at most ``limit``)."""
    unknown = [d for d in q.dimensions if d not in DIMENSIONS]
    if unknown:
        raise QueryError(f"unknown dimension {unknown[0]!r}; known: {', '.join(DIMENSIONS)}")
    dims = "".join(f", toString(c.{d})" for d in q.dimensions)
    sql = f"""
        WITH baseline AS (
            SELECT feature, quantile(0.95)(input_tokens + output_tokens) AS usual, count() AS n
            FROM llm_calls FINAL
            WHERE project_id = {{p:UInt64}}
              AND timestamp >= {{bstart:DateTime64(3, 'UTC')}} AND timestamp < {{start:DateTime64(3, 'UTC')}}
            GROUP BY feature HAVING n >= {{min_calls:UInt64}}
        )
        SELECT c.event_id, c.feature, c.input_tokens + c.output_tokens AS tokens, b.usual, c.tags{dims}
        FROM (
            SELECT * FROM llm_calls FINAL
            WHERE project_id = {{p:UInt64}}
              AND timestamp >= {{start:DateTime64(3, 'UTC')}} AND timestamp < {{end:DateTime64(3, 'UTC')}}
        ) AS c
        INNER JOIN baseline AS b ON b.feature = c.feature
        WHERE c.input_tokens + c.output_tokens > b.usual * {{factor:Float64}}
        ORDER BY tokens DESC LIMIT {int(q.limit)}
    """
    params = {"p": q.project_id, "bstart": q.start - q.baseline, "start": q.start, "end": q.end,
              "factor": float(q.factor), "min_calls": q.min_calls}  # fmt: skip
    rows = get_clickhouse().query(sql, parameters=params, caller="ledger.explore.token_outliers").result_rows
    return [
        OutlierCall(
            str(event_id),
            str(feature),
            int(tokens),
            float(usual),
            dict(zip(q.dimensions, (str(v) for v in values), strict=True)),
            dict(tags),
        )
        for event_id, feature, tokens, usual, tags, *values in rows
    ]


# Where the values of each dimension ever seen are quickest to find (all time, per project).
_SEEN_SOURCES = {**{d: "rollup_day" for d in MAIN_DIMENSIONS}, "customer_id": "rollup_customer_total_day"}


def unseen_values(
    project_id: int, dims: dict[str, tuple[str, ...]], tags: dict[str, tuple[str, ...]] | None = None
) -> dict[str, list[str]]:
    """The values in ``dims`` (and tag ``key: values``, keyed ``tag.key``) that no call of the
    project has ever had: a budget scoped to them would count nothing."""
    out: dict[str, list[str]] = {}
    parts: list[str] = []
    params: dict[str, Any] = {"project": project_id}
    wanted: list[tuple[str, tuple[str, ...]]] = []
    for i, (dim, values) in enumerate(sorted(dims.items())):
        source = _SEEN_SOURCES.get(dim)
        if source is None:
            raise QueryError(f"unknown dimension {dim!r}")
        params[f"v{i}"] = list(values)
        parts.append(
            f"SELECT {i} AS n, groupUniqArray(toString({dim})) AS seen FROM {source}"
            f" WHERE project_id = {{project:UInt64}} AND toString({dim}) IN {{v{i}:Array(String)}}"
        )
        wanted.append((dim, values))
    for j, (key, values) in enumerate(sorted((tags or {}).items()), start=len(wanted)):
        params[f"k{j}"], params[f"v{j}"] = key, list(values)
        parts.append(
            f"SELECT {j} AS n, groupUniqArray(tags[{{k{j}:String}}]) AS seen FROM llm_calls"
            f" WHERE project_id = {{project:UInt64}} AND tags[{{k{j}:String}}] IN {{v{j}:Array(String)}}"
        )
        wanted.append((f"tag.{key}", values))
    if not parts:
        return out
    rows = get_clickhouse().query(" UNION ALL ".join(parts), parameters=params, caller="ledger.explore.unseen_values")
    seen = {int(n): set(values) for n, values in rows.result_rows}
    for n, (name, values) in enumerate(wanted):
        missing = [v for v in values if v not in seen.get(n, set())]
        if missing:
            out[name] = missing
    return out
