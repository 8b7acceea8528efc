"""Drain the outbox into ClickHouse: claim → decode → price and insert (``ledger.raw``) → mark done.

One drain claims several batches and writes them in a single insert (ClickHouse prefers fewer,
larger inserts). The insert carries a deduplication token made from the batch ids, and the table
collapses duplicate event ids, so a drain that dies after the insert and is run again does not
count anything twice. The drain renews the leases of the batches it holds while it works
(``outbox.Leases``), also while it waits for an insert, so only a dead drain's batches come back.
"""

from __future__ import annotations

import gc
import hashlib
import logging
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for_futures
from contextlib import contextmanager
from dataclasses import dataclass

from clickhouse_connect.driver.exceptions import OperationalError
from django.conf import settings
from django.db import InterfaceError as DbInterfaceError
from django.db import OperationalError as DbOperationalError

from ingest import outbox
from ingest.models import Batch
from ingest.records import FIELDS, payload_columns
from ledger import telemetry
from ledger.pricebook import load_price_book
from ledger.pricing import PriceBook
from ledger.raw import CallColumns, CallGroup, RawRows, insert_rows, price_calls

log = logging.getLogger(__name__)

# Failures of reachability, retried for as long as it takes; anything else counts as a data error.
# (A chDB directory held by another process is one: ledger.clickhouse.client.EngineLocked.)
TRANSIENT = (OperationalError, DbOperationalError, DbInterfaceError)
# The payload's columns (``FIELDS`` order) under the names ledger.raw gives them.
_CALL_NAME = {name: "timestamp" if name == "ts_ms" else name for name in FIELDS}


def decode_batch(batch: Batch) -> CallGroup:
    """A claimed batch's records as the ledger's input, keeping its id and arrival time."""
    columns = payload_columns(bytes(batch.payload))
    calls = (
        CallColumns(**{_CALL_NAME[name]: column for name, column in columns.items()})
        if columns
        else CallColumns.from_records([])
    )
    return CallGroup(batch.project_id, batch.id, int(batch.received_at.timestamp() * 1000), calls)


def build_rows(batches: Sequence[Batch], books: dict[int, PriceBook], version: int) -> RawRows:
    """Decode the batches and price them into one insert's rows."""
    with _gc_paused():
        return price_calls((decode_batch(b) for b in batches), books, version)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Hold off the cyclic collector while a group is built: decoding makes hundreds of thousands
    of objects that all live until the insert, and collections triggered by their allocation would
    walk them again and again (a third of the decode time, measured). Nothing built here is cyclic."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


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
    telemetry.DRAIN_FAILURES.labels("data" if data_error else "transient").inc(len(batches))
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
    rows: RawRows


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
            rows: RawRows | None = None
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
    telemetry.count_drained(step.batches, step.records)  # every finished step passes here once
    total.batches += step.batches
    total.records += step.records
    total.failed += step.failed
