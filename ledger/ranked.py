"""The calls ranking highest by cost, latency, TTFT or tokens over a range: exact, without a FINAL scan.

Read plainly, "the 50 most expensive calls of the month" sorts every call of the month. The price
tier (``rollup_price_hour``, migration 0011) keeps each row's largest value of each order, and one
row's maximum is one call's value, distinct rows holding distinct calls. So when the ``n`` largest
row maxima of the range are at least ``T``, at least ``n`` calls are: the top ``n`` calls all have a
value of at least ``T`` and lie in hours where some row's maximum is at least ``T``. The raw table
is then read only in those hours (the sort key starts with the hour), and only above ``T``.

Hours the tier cannot vouch for are always read from raw: the partial hours at the range's edges,
hours marked dirty (their raw rows changed since the last rollup, ``ledger.dirty``), and the
current and previous hour (calls still arriving). A filter on a dimension the tier does not hold
(customer, user), or fewer than ``n`` rows in the range, reads the range plainly.

The tier is read without FINAL (a FINAL merge of a month of rows costs more than it saves), so a
row replaced by a recompute but not merged away yet may count: its maximum may belong to an older
version of a call. The bound then still holds if the guided read finds ``n`` calls at their newest
version (``n`` calls of at least ``T`` exist, so the top ``n`` are all at least ``T``, and their hours'
current rows, always among the rows read, are at least ``T``); when it finds fewer, the range is
read plainly.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from ledger.calls_log import LOG_COLUMNS, call_rows, decode_call, newest_only
from ledger.clickhouse.client import get_clickhouse
from ledger.measures import PRICE_DIMENSIONS, calls_where
from ledger.models import DirtyBucket

# The raw order expression → the tier's column holding each row's largest value of it.
GUIDES = {
    "cost_pusd": "max_cost_pusd",
    "latency_ms": "max_latency_ms",
    "ttft_ms": "max_ttft_ms",
    "input_tokens + output_tokens": "max_tokens",
}
HOUR = timedelta(hours=1)
MAX_HOT_HOURS = 5000  # beyond this many candidate hours the plain read is as cheap


def top_calls_sql(where: str, order: str, limit: int) -> str:
    """The ``limit`` rows ranking highest by ``order`` (descending) without FINAL: check with ``newest_only``."""
    return (
        f"SELECT {', '.join(LOG_COLUMNS)} FROM llm_calls WHERE {where}"
        f" ORDER BY {order} DESC NULLS LAST, timestamp DESC, event_id LIMIT {int(limit)}"
    )


def _floor(when: datetime) -> datetime:
    return when.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def unsettled_hours(project_id: int, start: datetime, end: datetime, now: datetime | None = None) -> set[datetime]:
    """The hours of [start, end) whose tier rows may not hold every stored call (see the module's doc)."""
    now = now or datetime.now(UTC)
    first, last = _floor(start), _floor(end)
    hours = {_floor(now) - HOUR, _floor(now)}
    if first != start:
        hours.add(first)
    if last != end:
        hours.add(last)
    dirty = DirtyBucket.objects.filter(project_id=project_id, hour__gte=first, hour__lt=end)
    hours.update(_floor(h) for h in dirty.values_list("hour", flat=True))
    return {h for h in hours if first <= h < end}


def guide(
    project_id: int, start: datetime, end: datetime, filters: dict[str, tuple[str, ...]], order: str, limit: int
) -> tuple[str, dict[str, Any]] | None:
    """An extra ``AND …`` condition (and its parameters) that keeps every top-``limit`` call, or None."""
    column = GUIDES.get(order)
    if column is None or any(d not in PRICE_DIMENSIONS for d in filters):
        return None
    first = _floor(start) if _floor(start) == start else _floor(start) + HOUR
    last = _floor(end)
    if first >= last:
        return None
    unsettled = sorted(unsettled_hours(project_id, start, end))
    params: dict[str, Any] = {"project": project_id, "start": first, "end": last, "unsettled": unsettled}
    where = calls_where(filters, params, "bucket", "DateTime('UTC')")
    rows = (
        get_clickhouse()
        .query(
            f"SELECT bucket, {column} AS m FROM rollup_price_hour WHERE {where} AND calls > 0"
            " AND isNotNull(m) AND bucket NOT IN {unsettled:Array(DateTime('UTC'))}"
            f" ORDER BY m DESC LIMIT {int(limit)} WITH TIES",
            parameters=params,
            caller="ledger.ranked.guide",
        )
        .result_rows
    )
    if len(rows) < limit:
        return None
    threshold = rows[limit - 1][1]
    hot = sorted({_floor(b.replace(tzinfo=UTC) if b.tzinfo is None else b) for b, m in rows if m >= threshold})
    hours = sorted({*hot, *unsettled})
    if len(hours) > MAX_HOT_HOURS:
        return None
    kind = "Float64" if isinstance(threshold, float) else "Int64"
    return (
        f" AND {order} >= {{guide_at_least:{kind}}}"
        " AND toStartOfHour(timestamp) IN {guide_hours:Array(DateTime('UTC'))}",
        {"guide_at_least": threshold, "guide_hours": hours},
    )


def _read(project_id: int, where: str, order: str, params: dict[str, Any], limit: int) -> list[dict[str, Any]]:
    """Up to ``limit`` calls ranking highest under ``where``, at their newest version: reads a few more rows
    than asked, drops versions a newer one replaced, and reads further only when too many were dropped."""
    fetch = limit + 10
    while True:
        rows = call_rows(top_calls_sql(where, order, fetch), params, "ledger.explore.top_calls")
        kept = newest_only(project_id, rows)
        if len(kept) >= limit or len(rows) < fetch:
            return kept[:limit]
        fetch *= 4


def ranked_calls(
    project_id: int,
    where: str,
    order: str,
    params: dict[str, Any],
    limit: int,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    filters: dict[str, tuple[str, ...]] | None = None,
) -> list[dict[str, Any]]:
    """The ``limit`` calls ranking highest by ``order``, each at its newest version (exact, no FINAL).

    With the range and filters given, reads only the hours the price tier says can hold them
    (:func:`guide`), and the whole range when that read finds fewer than ``limit`` calls."""
    guided = guide(project_id, start, end, filters or {}, order, limit) if start and end else None
    if guided:
        kept = _read(project_id, where + guided[0], order, {**params, **guided[1]}, limit)
        if len(kept) >= limit:
            return [decode_call(r) for r in kept]
    return [decode_call(r) for r in _read(project_id, where, order, params, limit)]
