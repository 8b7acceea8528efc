"""One model's (or pool's) minutes in detail, for the Capacity page: the route mix of a minute and a
day's minute-by-minute curve, under the capacity question's filters (``ledger.capacity.FILTERS``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from ledger.capacity import CapacityQuery, check_query, filter_sql
from ledger.capacity_sql import DETAIL_TABLE, MINUTE_TABLE
from ledger.clickhouse.client import get_clickhouse


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
    check_query(query)
    rows = (
        get_clickhouse()
        .query(
            "SELECT toString(feature), toString(route_version), sum(calls), sum(input_tokens) + sum(output_tokens)"  # noqa: S608
            f" FROM {DETAIL_TABLE} FINAL WHERE project_id = {{project:UInt64}} AND bucket = {{minute:DateTime('UTC')}}"
            " AND provider = {provider:String} AND toString(model) IN {models:Array(String)}"
            + filter_sql(query, params)
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
    check_query(query)
    params: dict[str, Any] = {
        "project": project_id, "provider": provider, "models": list(models), "start": start,
        "end": start + timedelta(days=1),
    }  # fmt: skip
    # Filters beyond provider and model need the detail tier's dimensions.
    narrowed = filter_sql(query, params)
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
