"""Celery tasks of the rollup queue."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

from celery import shared_task
from django.conf import settings

from ledger.reprice import reprice
from ledger.rollups import rollup_dirty


@shared_task(name="ledger.tasks.rollup_dirty", acks_late=True, ignore_result=True)
def rollup_dirty_task() -> dict[str, Any]:
    """Recompute dirty hours; re-enqueue while more are waiting; evaluate the touched projects' budgets."""
    result = rollup_dirty()
    if result.has_more and settings.CELERY_BROKER_URL:
        rollup_dirty_task.apply_async(queue="rollup", expires=300)
    if result.project_ids:
        # Budgets react to fresh spend right away rather than at the next scheduled evaluation.
        from alerts.tasks import evaluate_projects_task

        if settings.CELERY_BROKER_URL:
            evaluate_projects_task.apply_async((list(result.project_ids),), queue="alerts", expires=300)
        else:
            evaluate_projects_task(list(result.project_ids))
    return asdict(result)


@shared_task(name="ledger.tasks.reprice", acks_late=True, ignore_result=True)
def reprice_task(project_id: int, start: str, end: str) -> int:
    """Recompute the cost of a project's calls in [start, end) (ISO datetimes); rollups follow."""
    return reprice(project_id, datetime.fromisoformat(start), datetime.fromisoformat(end))
