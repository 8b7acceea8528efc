"""Celery tasks of the ingest queue. They take no objects: the outbox is the work list."""

from __future__ import annotations

from dataclasses import asdict
from datetime import timedelta

from celery import shared_task
from django.conf import settings

from ingest import outbox
from ingest.drain import drain_until_empty
from ledger.feedback import sync_feedback
from ops import pipeline


@shared_task(name="ingest.tasks.drain_outbox", acks_late=True, ignore_result=True)
def drain_outbox() -> dict[str, int | bool]:
    """Drain due batches for up to 30 s and copy new feedback; the pipeline decides what follows."""
    result = drain_until_empty(deadline_seconds=30)
    synced = sync_feedback()
    pipeline.after_drain(result, synced)
    return asdict(result)


@shared_task(name="ingest.tasks.purge_outbox", acks_late=True, ignore_result=True)
def purge_outbox() -> int:
    """Delete a bounded batch of drained batches older than the idempotency window; runs again while
    more are waiting. Returns how many this run deleted."""
    deleted, has_more = outbox.purge_done(timedelta(hours=settings.OUTBOX_KEEP_DONE_HOURS))
    pipeline.after_purge(has_more)
    return deleted
