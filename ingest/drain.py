"""Drain the outbox into ClickHouse: decode → price → insert raw rows → mark done + dirty hours.

One drain claims several batches and writes them in a single insert (ClickHouse prefers fewer,
larger inserts). The insert carries a deduplication token made from the batch ids, and the table
collapses duplicate event ids, so a drain that dies after the insert and is run again does not
count anything twice.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec
from clickhouse_connect.driver.exceptions import OperationalError
from django.conf import settings
from django.db import InterfaceError as DbInterfaceError
from django.db import OperationalError as DbOperationalError

from ingest import outbox
from ingest.models import Batch
from ingest.records import FIELDS
from ledger.clickhouse.client import get_clickhouse
from ledger.pricebook import load_price_book
from ledger.pricing import PriceBook, compute_cost

log = logging.getLogger(__name__)

RAW_TABLE = "llm_calls"
MS_PER_HOUR = 3_600_000
COLUMNS = (
    "project_id", "batch_id", "received_at", "version", "event_id", "timestamp", "provider", "model",
    "response_model", "feature", "customer_id", "user_id", "route_version", "route", "environment",
    "input_tokens", "cache_read_tokens", "cache_write_tokens", "output_tokens", "reasoning_tokens",
    "ttft_ms", "latency_ms", "status", "error_type", "attempt", "traffic", "cache_hit", "service_tier",
    "streamed", "tool_calls", "max_tokens", "trace_id", "session_id", "request_id", "tags",
    "cost_input_pusd", "cost_cache_read_pusd", "cost_cache_write_pusd", "cost_output_pusd",
    "cost_reasoning_pusd", "cost_pusd", "cache_saving_pusd", "cost_source", "price_ref",
)  # fmt: skip
_F = {name: i for i, name in enumerate(FIELDS)}
_decoder = msgspec.msgpack.Decoder()
# Failures of reachability, retried for as long as it takes; anything else counts as a data error.
TRANSIENT = (OperationalError, DbOperationalError, DbInterfaceError)
# What the outbox stores per record, minus the trailing reported cost (priced below).
_PASSTHROUGH_SLOTS = tuple(
    (_F[name], COLUMNS.index("timestamp" if name == "ts_ms" else name)) for name in FIELDS[: _F["reported_pusd"]]
)
_COST_START = COLUMNS.index("cost_input_pusd")


def encode_records(records: Sequence[tuple[Any, ...]]) -> bytes:
    return msgspec.msgpack.encode(records)


@dataclass
class Rows:
    """Column-oriented rows for ``llm_calls`` plus the hours they touch per project."""

    columns: list[list[Any]]
    hours: dict[int, set[datetime]]

    @property
    def count(self) -> int:
        return len(self.columns[0]) if self.columns else 0


def build_rows(batches: Sequence[Batch], books: dict[int, PriceBook], version: int) -> Rows:
    """Decode and price the batches' records into columns in ``COLUMNS`` order."""
    columns: list[list[Any]] = [[] for _ in COLUMNS]
    hours: dict[int, set[datetime]] = {}
    for batch in batches:
        records = _decoder.decode(bytes(batch.payload))
        if not records:
            continue
        n = len(records)
        project_id = batch.project_id
        book = books[project_id]
        received_ms = int(batch.received_at.timestamp() * 1000)
        fields = list(zip(*records, strict=True))
        columns[0].extend([project_id] * n)
        columns[1].extend([batch.id] * n)
        columns[2].extend([received_ms] * n)
        columns[3].extend([version] * n)
        for source, target in _PASSTHROUGH_SLOTS:
            columns[target].extend(fields[source])
        cost_columns = columns[_COST_START:]
        price = book.price
        seen_hours: set[int] = set()
        for rec in records:
            ts_ms = rec[1]
            seen_hours.add(ts_ms // MS_PER_HOUR)
            cost = compute_cost(
                price(rec[2], rec[3], rec[23], ts_ms),
                rec[11], rec[12], rec[13], rec[14], rec[15],
                rec[31], rec[22],
            )  # fmt: skip
            cost_columns[0].append(cost.input)
            cost_columns[1].append(cost.cache_read)
            cost_columns[2].append(cost.cache_write)
            cost_columns[3].append(cost.output)
            cost_columns[4].append(cost.reasoning)
            cost_columns[5].append(cost.total)
            cost_columns[6].append(cost.cache_saving)
            cost_columns[7].append(cost.source)
            cost_columns[8].append(cost.ref)
        hours.setdefault(project_id, set()).update(datetime.fromtimestamp(h * 3600, tz=UTC) for h in seen_hours)
    return Rows(columns, hours)


def insert_rows(rows: Rows, token: str) -> None:
    get_clickhouse().insert(RAW_TABLE, rows.columns, COLUMNS, settings={"insert_deduplication_token": token})


def dedup_token(batches: Sequence[Batch]) -> str:
    return hashlib.sha256(",".join(sorted(str(b.id) for b in batches)).encode()).hexdigest()


@dataclass
class DrainResult:
    batches: int = 0
    records: int = 0
    failed: int = 0
    has_more: bool = False


def _load_books(batches: Sequence[Batch]) -> dict[int, PriceBook]:
    return {pid: load_price_book(pid) for pid in {b.project_id for b in batches}}


def _write(batches: Sequence[Batch]) -> int:
    """Price and insert ``batches`` as one insert, then mark them done. Raises on failure."""
    rows = build_rows(batches, _load_books(batches), version=time.time_ns() // 1000)
    if rows.count:
        insert_rows(rows, dedup_token(batches))
    outbox.complete(batches, rows.hours)
    return rows.count


def _fail(batches: Sequence[Batch], exc: Exception) -> None:
    data_error = not isinstance(exc, TRANSIENT)
    error = f"{type(exc).__name__}: {exc}"
    for batch in batches:
        status = outbox.release(batch, error, data_error=data_error)
        log.warning("batch %s not drained (%s), now %s", batch.id, type(exc).__name__, status)


def drain_once(max_batches: int | None = None) -> DrainResult:
    """Claim due batches, write them, and report what happened."""
    limit = max_batches or settings.OUTBOX_DRAIN_BATCHES
    batches = outbox.claim(limit)
    result = DrainResult(has_more=len(batches) == limit)
    if not batches:
        return result
    try:
        result.records = _write(batches)
        result.batches = len(batches)
    except TRANSIENT as exc:  # a store is unreachable: every batch waits for the next try
        _fail(batches, exc)
        result.failed = len(batches)
        result.has_more = False
    except Exception as exc:
        if len(batches) == 1:
            _fail(batches, exc)
            result.failed = 1
            return result
        # One bad batch must not hold the others back: write them one by one to isolate it.
        for batch in batches:
            try:
                result.records += _write([batch])
                result.batches += 1
            except Exception as exc:
                _fail([batch], exc)
                result.failed += 1
    return result


def drain_until_empty(deadline_seconds: float = 60.0) -> DrainResult:
    """Drain while there is due work, up to a time budget (bounded, then the caller re-enqueues)."""
    total = DrainResult()
    stop = time.monotonic() + deadline_seconds
    while True:
        step = drain_once()
        total.batches += step.batches
        total.records += step.records
        total.failed += step.failed
        if not step.has_more or step.failed or time.monotonic() >= stop:
            total.has_more = step.has_more
            return total
