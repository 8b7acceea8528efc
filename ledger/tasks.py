"""Celery tasks of the rollup queue."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

from celery import shared_task

from ledger.reprice import reprice
from ledger.rollups import rollup_dirty
from ops import pipeline


@shared_task(name="ledger.tasks.rollup_dirty", acks_late=True, ignore_result=True)
def rollup_dirty_task() -> dict[str, Any]:
    """Recompute the dirty hours this worker claims; the pipeline re-enqueues it and evaluates budgets."""
    result = rollup_dirty()
    pipeline.after_rollup(result)
    return asdict(result)


@shared_task(name="ledger.tasks.reprice", acks_late=True, ignore_result=True)
def reprice_task(project_id: int, start: str, end: str) -> int:
    """Recompute the cost of a project's calls in [start, end) (ISO datetimes); rollups follow."""
    return reprice(project_id, datetime.fromisoformat(start), datetime.fromisoformat(end))


@shared_task(name="ledger.tasks.reprice_job", acks_late=True, ignore_result=True)
def reprice_job_task(job_id: int) -> None:
    """Run a reprice the dashboards recorded (ledger.reprice_jobs), writing its progress."""
    from ledger.reprice_jobs import run_job

    run_job(job_id)
