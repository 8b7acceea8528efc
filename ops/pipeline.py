"""The pipeline, composed once: drain → feedback copy → rollup → budget evaluation → deliveries.

Each step is a Celery task of its app, known here only by its registered name; what follows a step
is decided here and nowhere else. With a broker (``CELERY_BROKER_URL``) the next step is sent to
its queue; without one (embedded ``serve``, commands, tests) it runs in this process, after the
step that asked for it returns. Every step is a nudge: the database rows are the work list, so a
lost or expired message only delays work until the periodic sweeps of ``config/schedule.py``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from celery import Task
from django.conf import settings
from django.db import transaction
from kombu.exceptions import OperationalError as KombuOperationalError

from config.celery import app as celery_app
from config.queues import EXPIRES_SECONDS, queue_for

if TYPE_CHECKING:
    from ingest.drain import DrainResult
    from ledger.rollups import RollupResult

log = logging.getLogger(__name__)

DRAIN = "ingest.tasks.drain_outbox"
PURGE = "ingest.tasks.purge_outbox"
ROLLUP = "ledger.tasks.rollup_dirty"
EVALUATE = "alerts.tasks.evaluate_projects"
DELIVER = "alerts.tasks.deliver"
REPRICE_JOB = "ledger.tasks.reprice_job"

_inline = threading.local()  # .pending: the steps waiting to run inline in this thread
_embedded_wakeup: threading.Event | None = None


def has_broker() -> bool:
    return bool(settings.CELERY_BROKER_URL)


def enqueue(name: str, *args: Any) -> None:
    """Run the task ``name``: sent to its queue with a broker, else run in this process."""
    if has_broker():
        send(name, *args)
    else:
        run_inline(name, *args)


def send(name: str, *args: Any, countdown: float | None = None) -> None:
    """Send the task ``name`` to its queue; it expires ``EXPIRES_SECONDS`` after it is due."""
    celery_app.send_task(
        name, args=args, queue=queue_for(name).value, countdown=countdown, expires=(countdown or 0) + EXPIRES_SECONDS
    )


def run_inline(name: str, *args: Any) -> None:
    """Run the task ``name`` now, then whatever it enqueues, one after the other (not nested).

    A step enqueued while another runs in this thread waits for it, like a queue: a drain that
    re-enqueues itself loops instead of recursing. The first step's exception reaches the caller
    (after the steps it enqueued have run); a later step's is logged and the others still run."""
    pending: deque[tuple[str, tuple[Any, ...]]] | None = getattr(_inline, "pending", None)
    if pending is not None:
        pending.append((name, args))
        return
    pending = _inline.pending = deque([(name, args)])
    error: Exception | None = None
    first = True
    try:
        while pending:
            step, step_args = pending.popleft()
            try:
                _task(step)(*step_args)
            except Exception as exc:
                if first:
                    error = exc
                else:
                    log.exception("inline task %s failed", step)
            first = False
    finally:
        _inline.pending = None
    if error is not None:
        raise error


_registering = threading.Lock()


def register_tasks() -> None:
    """Import every app's tasks module (once; threads that ask meanwhile wait for it to finish)."""
    with _registering:
        if DRAIN not in celery_app.tasks:
            celery_app.loader.import_default_modules()


def _task(name: str) -> Task:
    if name not in celery_app.tasks:
        register_tasks()
    return celery_app.tasks[name]


# --- what follows each step ----------------------------------------------------------------


NUDGE_BREAK_SECONDS = 5.0
_nudge_broken_until = 0.0


def batch_accepted() -> None:
    """A batch or feedback was stored: nudge a drain (a task, or the embedded runner's thread).

    The nudge is an optimisation (the outbox row is the work; the sweep drains it anyway), so a
    request never waits on a broker that is down: one attempt without kombu's retries, and after a
    failure no attempts for ``NUDGE_BREAK_SECONDS``."""
    global _nudge_broken_until
    if has_broker():
        if time.monotonic() < _nudge_broken_until:
            return
        try:
            celery_app.send_task(DRAIN, queue=queue_for(DRAIN).value, expires=EXPIRES_SECONDS, retry=False)
        except (KombuOperationalError, OSError) as exc:  # the batch is durable; the sweep will pick it up
            _nudge_broken_until = time.monotonic() + NUDGE_BREAK_SECONDS
            log.warning("could not enqueue a drain (%s); the periodic sweep will drain it", type(exc).__name__)
    elif _embedded_wakeup is not None:
        _embedded_wakeup.set()


def after_drain(result: DrainResult, feedback_synced: int = 0) -> None:
    """Drain again while batches wait; recompute the hours this drain (or feedback) touched now."""
    if result.has_more:
        enqueue(DRAIN)
    if result.records or feedback_synced:
        enqueue(ROLLUP)


def after_rollup(result: RollupResult) -> None:
    """Roll up again while hours wait; evaluate the budgets of the projects whose spend changed."""
    if result.has_more:
        enqueue(ROLLUP)
    if result.project_ids:
        enqueue(EVALUATE, list(result.project_ids))


def after_evaluation(delivery_ids: Iterable[int]) -> None:
    """Send the deliveries an evaluation created, once the transaction that created them commits."""
    ids = list(delivery_ids)
    if ids:
        transaction.on_commit(lambda: _deliver_each(ids))


def _deliver_each(delivery_ids: list[int]) -> None:
    for delivery_id in delivery_ids:
        try:
            enqueue(DELIVER, delivery_id)
        except Exception:  # the row stays due: the send-due-deliveries sweep sends it
            log.exception("delivery %s could not be attempted", delivery_id)


def after_delivery_attempt(delivery_id: int, outcome: str | None) -> None:
    """With a broker, a transient failure is attempted again at its due time; without one the
    ``send-due-deliveries`` sweep does it."""
    if outcome != "retry" or not has_broker():
        return
    from alerts.deliveries import utcnow
    from alerts.models import Delivery

    due = Delivery.objects.filter(pk=delivery_id).values_list("next_attempt_at", flat=True).first()
    if due is not None:
        send(DELIVER, delivery_id, countdown=max(0.0, (due - utcnow()).total_seconds()) + 1)


def after_purge(has_more: bool) -> None:
    """The purge deletes a bounded batch per run; it runs again while more are past the window."""
    if has_more:
        enqueue(PURGE)


# --- wiring ----------------------------------------------------------------------------------


def use_embedded_runner(event: threading.Event | None) -> None:
    """The embedded runner's wake-up event (None: no runner) that ``batch_accepted`` sets."""
    global _embedded_wakeup
    _embedded_wakeup = event


def install() -> None:
    """Make the accept path's nudge (``ingest.dispatch``) this pipeline's; called at app start."""
    from ingest import dispatch
    from ledger import reprice_jobs

    dispatch.set_nudge(batch_accepted)
    if has_broker():  # a reprice from the dashboards is a task (without a broker: see ops.embedded)
        reprice_jobs.use_background(lambda job_id: send(REPRICE_JOB, job_id))
