"""Drain the outbox into ClickHouse: decode → price → insert raw rows → mark done + dirty hours.

One drain claims several batches and writes them in a single insert (ClickHouse prefers fewer,
larger inserts). The insert carries a deduplication token made from the batch ids, and the table
collapses duplicate event ids, so a drain that dies after the insert and is run again does not
count anything twice. The drain renews the leases of the batches it holds while it works
(``outbox.Leases``), also while it waits for an insert, so only a dead drain's batches come back.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for_futures
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
from ledger.pricing import PriceBook, cost_parts

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
# (A chDB directory held by another process is one: ledger.clickhouse.client.EngineLocked.)
TRANSIENT = (OperationalError, DbOperationalError, DbInterfaceError)
# What the outbox stores per record, minus the trailing reported cost (priced below).
_PASSTHROUGH_SLOTS = tuple(
    (_F[name], COLUMNS.index("timestamp" if name == "ts_ms" else name)) for name in FIELDS[: _F["reported_pusd"]]
)
_COST_START = COLUMNS.index("cost_input_pusd")


def encode_records(records: Sequence[tuple[Any, ...]]) -> bytes:
    """The outbox payload: the records column by column (``FIELDS`` order), as msgpack.

    Columns decode straight into what the insert needs, with far fewer objects than rows would."""
    return msgspec.msgpack.encode(list(zip(*records, strict=True)))


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
        fields = _decoder.decode(bytes(batch.payload)) if batch.payload else []
        if not fields:
            continue
        n = len(fields[0])
        project_id = batch.project_id
        book = books[project_id]
        received_ms = int(batch.received_at.timestamp() * 1000)
        columns[0].extend([project_id] * n)
        columns[1].extend([batch.id] * n)
        columns[2].extend([received_ms] * n)
        columns[3].extend([version] * n)
        for source, target in _PASSTHROUGH_SLOTS:
            columns[target].extend(fields[source])
        # One comprehension, then a transpose: far cheaper than nine appends per record.
        price, parts = book.price, cost_parts
        f = fields
        costs = [
            parts(price(provider, model, tier, ts), i, cr, cw, o, rs, rep, hit)
            for provider, model, tier, ts, i, cr, cw, o, rs, rep, hit in zip(
                f[2], f[3], f[23], f[1], f[11], f[12], f[13], f[14], f[15], f[31], f[22], strict=True
            )
        ]
        for column, values in zip(columns[_COST_START:], zip(*costs, strict=True), strict=True):
            column.extend(values)
        seen_hours = {ts // MS_PER_HOUR for ts in fields[_F["ts_ms"]]}
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


def _await(future: Future[None], leases: outbox.Leases) -> None:
    """Wait for an insert on the helper thread, renewing the held leases meanwhile: a slow insert
    keeps its batches. Raises what the insert raised."""
    leases.keep()
    while not wait_for_futures([future], timeout=leases.interval()).done:
        leases.keep()
    future.result()


def _write(batches: Sequence[Batch], pool: ThreadPoolExecutor, leases: outbox.Leases) -> int:
    """Price and insert ``batches`` as one insert, then mark them done. Raises on failure."""
    rows = build_rows(batches, _load_books(batches), version=time.time_ns() // 1000)
    if rows.count:
        _await(pool.submit(insert_rows, rows, dedup_token(batches)), leases)
    outbox.complete(batches, rows.hours)
    return rows.count


def _fail(batches: Sequence[Batch], exc: Exception) -> None:
    data_error = not isinstance(exc, TRANSIENT)
    error = f"{type(exc).__name__}: {exc}"
    for batch in batches:
        status = outbox.release(batch, error, data_error=data_error)
        log.warning("batch %s not drained (%s), now %s", batch.id, type(exc).__name__, status)


def _settle(batches: Sequence[Batch], exc: Exception, pool: ThreadPoolExecutor, leases: outbox.Leases) -> DrainResult:
    """Handle a failed write of ``batches``: all wait when a store is unreachable; otherwise they
    are written one by one, so one bad batch does not hold the others back."""
    result = DrainResult()
    if isinstance(exc, TRANSIENT) or len(batches) == 1:
        _fail(batches, exc)
        leases.let_go(batches)
        result.failed = len(batches)
        return result
    for batch in batches:
        leases.keep()
        try:
            result.records += _write([batch], pool, leases)
            result.batches += 1
        except Exception as one:  # noqa: BLE001 - any failure is sorted, transient or data, by _fail
            _fail([batch], one)
            result.failed += 1
        leases.let_go([batch])
    return result


@dataclass
class _InFlight:
    future: Future[None]
    batches: list[Batch]
    rows: Rows


def _finish(flight: _InFlight, pool: ThreadPoolExecutor, leases: outbox.Leases) -> DrainResult:
    """Wait for a background insert, then mark its batches done (in this thread: the DB work
    stays on the caller's connection and transaction)."""
    try:
        _await(flight.future, leases)
        outbox.complete(flight.batches, flight.rows.hours)
    except Exception as exc:  # noqa: BLE001 - sorted by _settle: retried, one by one, or dead
        return _settle(flight.batches, exc, pool, leases)
    leases.let_go(flight.batches)
    return DrainResult(batches=len(flight.batches), records=flight.rows.count)


def drain_until_empty(deadline_seconds: float = 60.0) -> DrainResult:
    """Drain while there is due work, up to a time budget (bounded; the caller re-enqueues).

    Pipelined: while one group's ClickHouse insert runs on a helper thread (the engine releases the
    GIL), the next group is claimed and priced here. At most one insert is in flight, and a group is
    marked done only after its own insert returned. The leases of the claimed batches are renewed
    at every step and while an insert runs."""
    total = DrainResult()
    leases = outbox.Leases()
    stop = time.monotonic() + deadline_seconds
    limit = settings.OUTBOX_DRAIN_BATCHES
    flight: _InFlight | None = None
    last_full = False
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="meterline-insert") as pool:
        while True:
            out_of_time = time.monotonic() >= stop
            leases.keep()
            batches = [] if out_of_time or total.failed else outbox.claim(limit)
            leases.hold(batches)
            if batches or not out_of_time:
                last_full = len(batches) == limit
            rows: Rows | None = None
            built_failure: DrainResult | None = None
            if batches:
                try:
                    rows = build_rows(batches, _load_books(batches), version=time.time_ns() // 1000)
                except Exception as exc:  # noqa: BLE001 - sorted by _settle, like a failed insert
                    built_failure = _settle(batches, exc, pool, leases)
            if flight is not None:
                _add(total, _finish(flight, pool, leases))
                flight = None
            if built_failure is not None:
                _add(total, built_failure)
            elif rows is not None:
                token = dedup_token(batches)
                future = pool.submit(insert_rows, rows, token) if rows.count else _done()
                flight = _InFlight(future, batches, rows)
                continue
            if not batches:
                total.has_more = out_of_time and last_full
                return total


def _done() -> Future[None]:
    future: Future[None] = Future()
    future.set_result(None)
    return future


def _add(total: DrainResult, step: DrainResult) -> None:
    total.batches += step.batches
    total.records += step.records
    total.failed += step.failed
