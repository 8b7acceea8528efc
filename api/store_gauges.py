"""Gauges read from the stores at scrape time: the facts every process shares.

The outbox, the dirty hours and the deliveries live in the database, so any web process reports
them right however many workers and services there are. A store that does not answer leaves its
gauges out and reports ``meterline_up{store=...} 0``: a scrape never fails on an outage.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from clickhouse_connect.driver.exceptions import ClickHouseError
from django.db import Error as DbError
from django.db.models import Count, Min, Q, Sum
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily, Metric

from alerts.models import Delivery, DeliveryStatus
from ingest.models import Batch, BatchStatus
from ledger.clickhouse.client import get_clickhouse
from ledger.models import DirtyBucket

log = logging.getLogger(__name__)

_OUTBOX_STATES = (BatchStatus.PENDING, BatchStatus.PROCESSING, BatchStatus.DEAD)
_WAITING = (BatchStatus.PENDING, BatchStatus.PROCESSING)


def _age(now: datetime, since: datetime | None) -> float:
    return max((now - since).total_seconds(), 0.0) if since else 0.0


def _outbox(now: datetime) -> Iterator[Metric]:
    batches = GaugeMetricFamily("meterline_outbox_batches", "Outbox batches not yet done, by status", labels=["status"])
    records = GaugeMetricFamily("meterline_outbox_records", "Records in outbox batches not yet done", labels=["status"])
    rows: dict[str, dict[str, Any]] = {
        row["status"]: dict(row)
        for row in Batch.objects.filter(status__in=_OUTBOX_STATES)
        .values("status")
        .annotate(
            batches=Count("id"),
            records=Sum("record_count"),
            oldest=Min("received_at"),
            backoff=Count("id", filter=Q(status=BatchStatus.PENDING, next_attempt_at__gt=now)),
        )
        .order_by()
    }
    for status in _OUTBOX_STATES:
        row: dict[str, Any] = rows.get(status, {})
        batches.add_metric([status.value], row.get("batches", 0))
        records.add_metric([status.value], row.get("records") or 0)
    oldest = min((rows[s]["oldest"] for s in _WAITING if s in rows), default=None)
    yield batches
    yield records
    yield GaugeMetricFamily(
        "meterline_outbox_oldest_pending_age_seconds",
        "Age of the oldest batch not yet in ClickHouse (pending or processing); 0 when none",
        value=_age(now, oldest),
    )
    yield GaugeMetricFamily(
        "meterline_outbox_backoff_batches",
        "Pending batches waiting for their retry after a failed drain",
        value=rows.get(BatchStatus.PENDING, {}).get("backoff", 0),
    )


def _rollups(now: datetime) -> Iterator[Metric]:
    marks = DirtyBucket.objects.aggregate(hours=Count("id"), oldest=Min("marked_at"))
    yield GaugeMetricFamily(
        "meterline_rollup_dirty_hours", "(project, hour) buckets whose rollups are stale", value=marks["hours"]
    )
    yield GaugeMetricFamily(
        "meterline_rollup_lag_seconds",
        "Age of the oldest dirty mark not yet rolled up; 0 when none",
        value=_age(now, marks["oldest"]),
    )


def _deliveries() -> Iterator[Metric]:
    family = GaugeMetricFamily(
        "meterline_alert_deliveries_by_status", "Alert deliveries in the database, by status", labels=["status"]
    )
    counts = dict(Delivery.objects.values_list("status").annotate(n=Count("id")).order_by())
    for status in DeliveryStatus:
        family.add_metric([status.value], counts.get(status, 0))
    yield family


def _database() -> list[Metric]:
    now = timezone.now()
    return [*_outbox(now), *_rollups(now), *_deliveries()]


def _clickhouse_answers() -> bool:
    try:
        get_clickhouse().command("SELECT 1", caller="api.metrics.ping")
    except (ClickHouseError, OSError, RuntimeError) as exc:  # RuntimeError: chDB cannot open its directory
        log.warning("metrics: ClickHouse did not answer (%s)", type(exc).__name__)
        return False
    return True


class StoreCollector:
    """A prometheus_client collector: the gauges above, computed on each ``collect()``."""

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("meterline_up", "1 when the store answered this scrape, else 0", labels=["store"])
        try:
            families = _database()
            up.add_metric(["database"], 1)
        except DbError as exc:
            log.warning("metrics: the database did not answer (%s); its gauges are left out", type(exc).__name__)
            families = []
            up.add_metric(["database"], 0)
        up.add_metric(["clickhouse"], 1 if _clickhouse_answers() else 0)
        yield up
        yield from families
