"""Celery tasks of the rollup queue."""

from __future__ import annotations

from dataclasses import asdict

from celery import shared_task
from django.conf import settings

from ledger.rollups import rollup_dirty


@shared_task(name="ledger.tasks.rollup_dirty", acks_late=True, ignore_result=True)
def rollup_dirty_task() -> dict[str, int | bool]:
    """Recompute dirty hours; re-enqueue while more are waiting."""
    result = rollup_dirty()
    if result.has_more and settings.CELERY_BROKER_URL:
        rollup_dirty_task.apply_async(queue="rollup", expires=300)
    return asdict(result)
