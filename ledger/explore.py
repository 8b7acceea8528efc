"""Reads for exploring the ledger: the individual calls behind a number, and the values a filter offers.

Aggregates go through :mod:`ledger.queries`; this module answers what a rollup cannot: single calls
from the raw table (the most expensive, the slowest, one call with every field) and the distinct
dimension values seen in a range. Same rules: values bound server-side, the project id on every
query, UTC-aware datetimes, money as exact ``Decimal``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ledger.clickhouse.client import get_clickhouse
from ledger.pricing import pusd_to_usd
from ledger.queries import DIMENSIONS, QueryError

CALL_ORDERS = {  # what a drill-down may sort by (descending), and the SQL for it
    "cost": "cost_pusd",
    "latency": "latency_ms",
    "ttft": "ttft_ms",
    "tokens": "input_tokens + output_tokens",
}
MONEY_COLUMNS = (
    "cost_pusd",
    "cost_input_pusd",
    "cost_cache_read_pusd",
    "cost_cache_write_pusd",
    "cost_output_pusd",
    "cost_reasoning_pusd",
    "cache_saving_pusd",
)
LIST_COLUMNS = (
    "event_id", "timestamp", "provider", "model", "feature", "customer_id", "route_version", "route",
    "status", "attempt", "traffic", "cache_hit", "input_tokens", "cache_read_tokens", "output_tokens",
    "reasoning_tokens", "ttft_ms", "latency_ms", "cost_pusd",
)  # fmt: skip
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
    for name, value in (("from", q.start), ("to", q.end)):
        if value.tzinfo is None:
            raise QueryError(f"{name} needs a UTC offset")
    if q.start >= q.end:
        raise QueryError("from must be before to")
    unknown = [d for d in q.filters if d not in DIMENSIONS]
    if unknown:
        raise QueryError(f"unknown dimension {unknown[0]!r}; known: {', '.join(DIMENSIONS)}")
    params.update(project=q.project_id, start=q.start, end=q.end)
    where = [
        "project_id = {project:UInt64}",
        "timestamp >= {start:DateTime64(3, 'UTC')}",
        "timestamp < {end:DateTime64(3, 'UTC')}",
    ]
    for i, (dim, values) in enumerate(sorted(q.filters.items())):
        params[f"f{i}"] = list(values)
        where.append(f"toString({dim}) IN {{f{i}:Array(String)}}")
    return " AND ".join(where)


def _decode(row: dict[str, Any]) -> dict[str, Any]:
    for column in MONEY_COLUMNS:
        if column in row:
            row[column.removesuffix("_pusd") + "_usd"] = pusd_to_usd(row.pop(column))
    return row


def top_calls(q: CallsQuery) -> list[dict[str, Any]]:
    """The calls ranking highest by ``order_by`` in the range (exact, duplicates collapsed)."""
    if q.order_by not in CALL_ORDERS:
        raise QueryError(f"order_by must be one of {', '.join(CALL_ORDERS)}")
    if not 1 <= q.limit <= MAX_CALLS:
        raise QueryError(f"limit must be between 1 and {MAX_CALLS}")
    params: dict[str, Any] = {}
    where = _where(q, params)
    result = get_clickhouse().query(
        f"SELECT {', '.join(LIST_COLUMNS)} FROM llm_calls FINAL WHERE {where}"
        f" ORDER BY {CALL_ORDERS[q.order_by]} DESC NULLS LAST, timestamp DESC, event_id LIMIT {int(q.limit)}",
        parameters=params,
    )
    return [_decode(dict(zip(result.column_names, row, strict=True))) for row in result.result_rows]


def call_detail(project_id: int, event_id: str) -> dict[str, Any] | None:
    """Every stored field of one call (its newest version), or None."""
    result = get_clickhouse().query(
        "SELECT * FROM llm_calls FINAL WHERE project_id = {project:UInt64} AND event_id = {event:String}"
        " ORDER BY version DESC LIMIT 1",
        parameters={"project": project_id, "event": event_id},
    )
    if not result.result_rows:
        return None
    row = dict(zip(result.column_names, result.result_rows[0], strict=True))
    row.pop("project_id", None)
    return _decode(row)


def dimension_values(project_id: int, start: datetime, end: datetime, limit: int = 200) -> dict[str, list[str]]:
    """The distinct values of each main dimension seen in the range (day rollup), sorted."""
    dims = ("feature", "model", "provider", "route_version", "route", "environment", "traffic", "status")
    columns = ", ".join(f"groupUniqArray({int(limit)})(toString({d})) AS {d}" for d in dims)
    result = get_clickhouse().query(
        f"SELECT {columns} FROM (SELECT {', '.join(dims)} FROM rollup_day FINAL"
        " WHERE project_id = {project:UInt64} AND bucket >= toStartOfDay({start:DateTime('UTC')})"
        f" AND bucket < {{end:DateTime('UTC')}} GROUP BY {', '.join(dims)})",
        parameters={"project": project_id, "start": start, "end": end},
    )
    row = result.result_rows[0] if result.result_rows else [[] for _ in dims]
    return {d: sorted(v for v in values if v != "") for d, values in zip(dims, row, strict=True)}
