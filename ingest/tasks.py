"""Celery tasks of the ingest queue. They take no objects: the outbox is the work list."""

from __future__ import annotations

from dataclasses import asdict
from datetime import timedelta

from celery import shared_task
from django.conf import settings

from ingest import outbox
from ingest.drain import drain_until_empty
from ledger.feedback import sync_feedback


@shared_task(name="ingest.tasks.drain_outbox", acks_late=True, ignore_result=True)
def drain_outbox() -> dict[str, int | bool]:
    """Drain due batches for up to 30 s; re-enqueue itself while more are waiting."""
    result = drain_until_empty(deadline_seconds=30)
    synced = sync_feedback()
    if settings.CELERY_BROKER_URL:
        if result.has_more:
            drain_outbox.apply_async(queue="ingest", expires=300)
        if result.records or synced:  # keep rollups fresh: recompute the hours this drain touched now
            from ledger.tasks import rollup_dirty_task

            rollup_dirty_task.apply_async(queue="rollup", expires=300)
    return asdict(result)


@shared_task(name="ingest.tasks.purge_outbox", acks_late=True, ignore_result=True)
def purge_outbox() -> int:
    """Delete drained batches older than the idempotency window."""
    return outbox.purge_done(timedelta(hours=settings.OUTBOX_KEEP_DONE_HOURS))
