"""Outbox state transitions. Every change is a compare-and-set update, so any number of drains
can run at once and a batch is never claimed by two of them while its lease holds."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from ingest.models import Batch, BatchStatus
from ledger.dirty import mark_dirty


def due(now: datetime) -> Q:
    """Batches a drain may take: pending and due, or processing with an expired lease."""
    return Q(status=BatchStatus.PENDING, next_attempt_at__lte=now) | Q(
        status=BatchStatus.PROCESSING, lease_until__lt=now
    )


def claim(limit: int, now: datetime | None = None) -> list[Batch]:
    """Lease up to ``limit`` due batches (oldest first) to the caller."""
    now = now or timezone.now()
    lease = now + timedelta(seconds=settings.OUTBOX_LEASE_SECONDS)
    with transaction.atomic():
        ids = list(
            Batch.objects.filter(due(now))
            .order_by("next_attempt_at")
            .select_for_update(skip_locked=True)
            .values_list("id", flat=True)[:limit]
        )
        if not ids:
            return []
        Batch.objects.filter(Q(id__in=ids) & due(now)).update(
            status=BatchStatus.PROCESSING, lease_until=lease, attempts=F("attempts") + 1
        )
    return list(Batch.objects.filter(id__in=ids, status=BatchStatus.PROCESSING, lease_until=lease).order_by("id"))


def complete(batches: Iterable[Batch], hours_by_project: dict[int, set[datetime]]) -> int:
    """Mark batches done and record the hours whose rollups are now stale, in one transaction."""
    now = timezone.now()
    ids = [b.id for b in batches]
    leases = {b.lease_until for b in batches}
    with transaction.atomic():
        # Only while our lease holds: a batch re-claimed by another drain is theirs to finish.
        done = Batch.objects.filter(id__in=ids, status=BatchStatus.PROCESSING, lease_until__in=leases).update(
            status=BatchStatus.DONE, done_at=now, lease_until=None, last_error=""
        )
        mark_dirty(hours_by_project, now)
    return done


def release(batch: Batch, error: str, *, data_error: bool) -> BatchStatus:
    """Give a batch back after a failed attempt: retry later with backoff, or dead-letter it.

    Connectivity failures (ClickHouse down) retry for as long as it takes. Other failures count
    towards ``OUTBOX_MAX_DATA_ATTEMPTS``; past it the batch is dead until an operator replays it.
    """
    failures = batch.data_failures + (1 if data_error else 0)
    dead = data_error and failures >= settings.OUTBOX_MAX_DATA_ATTEMPTS
    delay = min(
        settings.OUTBOX_RETRY_BASE_SECONDS * 2 ** min(max(batch.attempts - 1, 0), 20),
        settings.OUTBOX_RETRY_MAX_SECONDS,
    )
    status = BatchStatus.DEAD if dead else BatchStatus.PENDING
    Batch.objects.filter(id=batch.id, status=BatchStatus.PROCESSING, lease_until=batch.lease_until).update(
        status=status,
        lease_until=None,
        data_failures=failures,
        next_attempt_at=timezone.now() + timedelta(seconds=delay),
        last_error=error[:2000],
    )
    return status


def replay_dead(ids: Iterable[uuid.UUID] | None = None) -> int:
    """Queue dead batches again (all of them, or the given ones) with a fresh failure count."""
    qs = Batch.objects.filter(status=BatchStatus.DEAD)
    if ids is not None:
        qs = qs.filter(id__in=list(ids))
    return qs.update(status=BatchStatus.PENDING, data_failures=0, next_attempt_at=timezone.now())


PURGE_BATCH = 2000  # batches deleted per purge run: one short statement, never a table-long DELETE


def purge_done(older_than: timedelta, limit: int | None = None) -> tuple[int, bool]:
    """Delete up to ``limit`` (default ``PURGE_BATCH``) drained batches past the idempotency window;
    pending and dead ones stay. Returns (deleted, has_more): ``has_more`` when the limit was reached.
    (No ORDER BY: the status index finds ``limit`` of them without sorting every done batch.)"""
    limit = limit or PURGE_BATCH
    cutoff = timezone.now() - older_than
    expired = Batch.objects.filter(status=BatchStatus.DONE, done_at__lt=cutoff)
    ids = list(expired.values_list("id", flat=True)[:limit])
    if not ids:
        return 0, False
    deleted, _ = expired.filter(id__in=ids).delete()
    return deleted, len(ids) == limit
