"""Process counters for ``GET /metrics``: defined here, low enough for ingest, ledger and alerts to import.

One process (embedded ``serve``, tests): the values live in ``REGISTRY``. Several processes
(gunicorn workers, Celery workers): with ``PROMETHEUS_MULTIPROC_DIR`` set, prometheus_client keeps
each process's values in a file in that directory and ``/metrics`` sums every file. Files are named
by host name and pid, so containers sharing the directory never write one file. Facts about shared
state (outbox, dirty hours, deliveries by status) are not counted here: ``/metrics`` reads them from
the database at scrape time.
"""

from __future__ import annotations

import os
import re
import socket
import time
from collections.abc import Callable
from functools import lru_cache
from typing import Any, TypeVar

import prometheus_client
from django.core.exceptions import ImproperlyConfigured
from prometheus_client import CollectorRegistry, Counter, Histogram, values

MULTIPROC_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None
_HOST = re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname())[:64] or "host"


def process_identifier() -> str:
    """Names this process's metric files: host (a container's id) and pid, with no ``_`` in it."""
    return f"{_HOST}-{os.getpid()}"


if MULTIPROC_DIR:
    try:
        os.makedirs(MULTIPROC_DIR, exist_ok=True)
    except OSError as exc:
        raise ImproperlyConfigured(f"PROMETHEUS_MULTIPROC_DIR={MULTIPROC_DIR!r} cannot be created: {exc}") from exc
    if not os.access(MULTIPROC_DIR, os.W_OK):
        raise ImproperlyConfigured(f"PROMETHEUS_MULTIPROC_DIR={MULTIPROC_DIR!r} is not writable")
    # Before any metric exists: every value below is then file-backed under our identifier.
    values.ValueClass = values.MultiProcessValue(process_identifier)
prometheus_client.disable_created_metrics()  # no *_created series: they double the output for nothing

REGISTRY = CollectorRegistry()

RECORDS_ACCEPTED = Counter(
    "meterline_records_accepted", "CallRecords written to the outbox (a 202; replays not counted)", registry=REGISTRY
)
RECORDS_REJECTED = Counter(
    "meterline_records_rejected", "CallRecords refused by validation inside an answered request", registry=REGISTRY
)
BATCHES_DRAINED = Counter("meterline_outbox_batches_drained", "Batches written to ClickHouse", registry=REGISTRY)
RECORDS_DRAINED = Counter("meterline_outbox_records_drained", "Records written to ClickHouse", registry=REGISTRY)
DRAIN_FAILURES = Counter(
    "meterline_outbox_drain_failures",
    "Batches given back after a failed drain attempt: transient (a store unreachable) or data",
    ["kind"],
    registry=REGISTRY,
)
DELIVERY_ATTEMPTS = Counter(
    "meterline_alert_delivery_attempts",
    "Alert delivery attempts recorded, by outcome: sent, retry (transient failure), failed (gave up)",
    ["outcome"],
    registry=REGISTRY,
)
CLICKHOUSE_SECONDS = Histogram(
    "meterline_clickhouse_query_seconds",
    "ClickHouse statement time as the caller sees it, by kind (read/write) and caller family",
    ["kind", "caller"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
    registry=REGISTRY,
)
CLICKHOUSE_ERRORS = Counter(
    "meterline_clickhouse_errors", "ClickHouse statements that raised, by kind and caller family", ["kind", "caller"],
    registry=REGISTRY,
)  # fmt: skip

for _kind in ("transient", "data"):
    DRAIN_FAILURES.labels(_kind)
for _outcome in ("sent", "retry", "failed"):
    DELIVERY_ATTEMPTS.labels(_outcome)


def count_accepted(accepted: int, rejected: int) -> None:
    """One call per request (never per record): accept is a hot path."""
    if accepted:
        RECORDS_ACCEPTED.inc(accepted)
    if rejected:
        RECORDS_REJECTED.inc(rejected)


def count_drained(batches: int, records: int) -> None:
    if batches:
        BATCHES_DRAINED.inc(batches)
    if records:
        RECORDS_DRAINED.inc(records)


@lru_cache(maxsize=256)
def caller_family(caller: str) -> str:
    """``ledger.queries.usage.groups`` → ``ledger.queries``: a label with few values."""
    cleaned = re.sub(r"[^A-Za-z0-9_.]", "_", caller)
    return ".".join(cleaned.split(".")[:2])[:60] or "unknown"


T = TypeVar("T")


def timed_statement(kind: str, caller: str, run: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run one ClickHouse statement, observing its time (and counting it if it raises)."""
    family = caller_family(caller)
    started = time.perf_counter()
    ok = False
    try:
        result = run(*args, **kwargs)
        ok = True
        return result
    finally:
        CLICKHOUSE_SECONDS.labels(kind, family).observe(time.perf_counter() - started)
        if not ok:
            CLICKHOUSE_ERRORS.labels(kind, family).inc()
