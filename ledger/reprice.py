"""Reprice a time range after a price correction: recompute every call's cost from its stored
token counts with today's price book (price in force at each call's timestamp), append the rows
with a higher version (they replace the old ones), and mark the hours dirty for the rollups."""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from ledger.clickhouse.client import get_clickhouse
from ledger.pricebook import load_price_book
from ledger.pricing import PriceBook
from ledger.raw import CALL_FIELDS, RAW_TABLE, CallColumns, CallGroup, write_calls

# The writer's input fields, read back from the raw table (the reported cost from a reported row).
_SELECT = ", ".join(
    {
        "timestamp": "toUnixTimestamp64Milli(timestamp)",
        "reported_pusd": "if(cost_source = 'reported', cost_pusd, NULL)",
        "status": "toString(status)",
        "traffic": "toString(traffic)",
        "service_tier": "toString(service_tier)",
    }.get(name, name)
    for name in CALL_FIELDS
)


def reprice(
    project_id: int,
    start: datetime,
    end: datetime,
    step: timedelta = timedelta(hours=6),
    progress: Callable[[int, float], None] | None = None,
) -> int:
    """Reprice one project's calls in [start, end); returns how many rows were rewritten.

    ``progress(calls so far, share of the span done)`` is called after each slice.

    Works through the range a few hours at a time: memory stays bounded, and each slice's hours
    are marked dirty as soon as its rows are written, so an interrupted reprice leaves no stale
    rollup behind (re-running it is harmless)."""
    book = {project_id: load_price_book(project_id)}
    version = time.time_ns() // 1000
    total = 0
    # Only the span that holds calls is walked: a range from years back costs what its calls cost.
    first, last = (
        get_clickhouse()
        .query(
            f"SELECT min(timestamp), max(timestamp), count() FROM {RAW_TABLE} WHERE project_id = {{p:UInt64}}"
            " AND timestamp >= {start:DateTime64(3, 'UTC')} AND timestamp < {end:DateTime64(3, 'UTC')}",
            parameters={"p": project_id, "start": start, "end": end},
        )
        .result_rows[0][:2]
    )
    if first is None or first.year < 1971:  # no calls in the range
        return 0
    first, last = (t if t.tzinfo else t.replace(tzinfo=UTC) for t in (first, last))
    cursor = max(start, first.replace(minute=0, second=0, microsecond=0))
    end = min(end, last + timedelta(milliseconds=1))
    span = (end - cursor).total_seconds() or 1.0
    begin = cursor
    while cursor < end:
        upper = min(cursor + step, end)
        total += _reprice_slice(project_id, cursor, upper, book, version)
        cursor = upper
        if progress is not None:
            progress(total, min(1.0, (cursor - begin).total_seconds() / span))
    return total


def _reprice_slice(project_id: int, start: datetime, end: datetime, book: dict[int, PriceBook], version: int) -> int:
    result = get_clickhouse().query(
        f"SELECT batch_id, toUnixTimestamp64Milli(received_at), {_SELECT} FROM {RAW_TABLE} FINAL"
        " WHERE project_id = {p:UInt64} AND timestamp >= {start:DateTime64(3, 'UTC')}"
        " AND timestamp < {end:DateTime64(3, 'UTC')}",
        parameters={"p": project_id, "start": start, "end": end},
    )
    records: dict[tuple[uuid.UUID, int], list[tuple[Any, ...]]] = defaultdict(list)
    for row in result.result_rows:
        records[(row[0], row[1])].append(tuple(row[2:]))
    # Rows keep their batch and arrival time; only the pricing columns change.
    groups = [
        CallGroup(project_id, batch_id, received_ms, CallColumns.from_records(calls))
        for (batch_id, received_ms), calls in records.items()
    ]
    # A token of its own per reprice and slice: never dropped as a duplicate of the original insert
    # or of another slice holding rows of the same batch.
    return write_calls(groups, book, version, f"reprice-{version}-{int(start.timestamp() * 1000)}").count
