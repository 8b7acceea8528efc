"""Reprices started from the dashboards: run in the background, their progress kept on a row.

Saving a price with "reprice" must not hold the request for the seconds a month of calls takes:
the view records a :class:`~ledger.models.RepriceJob` and returns; a worker (with a broker) or a
thread of the embedded server runs it and writes its progress, which the prices page shows.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from django.db import connection, transaction

from ledger.models import RepriceJob
from ledger.reprice import reprice

log = logging.getLogger(__name__)


# Where a job runs: ``ops`` installs a starter (a task with a broker, ``ops.pipeline.install``; a
# thread in the embedded server, ``ops.embedded``); without one (commands, tests) a job runs in
# this process at once, like the pipeline's tasks.
_background: Callable[[int], None] | None = None


def use_background(starter: Callable[[int], None] | None) -> None:
    """Run jobs through ``starter(job_id)`` when there is no broker (None: run them inline)."""
    global _background
    _background = starter


def start_reprice(project_id: int, start: datetime, end: datetime, reason: str = "") -> RepriceJob:
    """Record a reprice of [start, end) and start it through the installed starter (after the
    transaction commits), else now in this process."""
    job = RepriceJob.objects.create(project_id=project_id, start=start, end=end, reason=reason[:300])
    starter = _background
    if starter is not None:
        transaction.on_commit(lambda: starter(job.pk))
    else:
        run_job(job.pk)
        job.refresh_from_db()
    return job


def in_thread(job_id: int) -> None:
    """A background starter: run the job on a daemon thread of this process."""
    threading.Thread(target=_run_in_thread, args=(job_id,), name=f"meterline-reprice-{job_id}", daemon=True).start()


def _run_in_thread(job_id: int) -> None:
    try:
        run_job(job_id)
    finally:
        connection.close()  # this thread's own database connection


def run_job(job_id: int) -> None:
    """Run a queued job (once: a job another worker already took is left alone)."""
    if not RepriceJob.objects.filter(pk=job_id, status=RepriceJob.Status.QUEUED).update(
        status=RepriceJob.Status.RUNNING
    ):
        return
    job = RepriceJob.objects.get(pk=job_id)

    def progress(calls: int, share: float) -> None:
        RepriceJob.objects.filter(pk=job_id).update(calls=calls, percent=min(99, int(share * 100)))

    try:
        calls = reprice(job.project_id, job.start, job.end, progress=progress)
    except Exception as exc:  # the job says it failed (the page shows it); the traceback goes to the log
        log.exception("reprice job %s failed", job_id)
        RepriceJob.objects.filter(pk=job_id).update(
            status=RepriceJob.Status.FAILED, error=type(exc).__name__, finished_at=datetime.now(UTC)
        )
        return
    RepriceJob.objects.filter(pk=job_id).update(
        status=RepriceJob.Status.DONE, percent=100, calls=calls, finished_at=datetime.now(UTC)
    )
