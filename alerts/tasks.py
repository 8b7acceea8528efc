"""Celery tasks of the alerts queue. They take ids; the database rows are the work list."""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings

from alerts import deliveries
from alerts.evaluate import evaluate_all, evaluate_projects

log = logging.getLogger(__name__)
EXPIRES = 300


@shared_task(name="alerts.tasks.evaluate_projects", acks_late=True, ignore_result=True, expires=EXPIRES)
def evaluate_projects_task(project_ids: list[int]) -> int:
    """Evaluate the budgets of projects a rollup just touched; returns the deliveries created."""
    return len(evaluate_projects(project_ids).delivery_ids)


@shared_task(name="alerts.tasks.evaluate_all", acks_late=True, ignore_result=True, expires=EXPIRES)
def evaluate_all_task() -> int:
    return len(evaluate_all().delivery_ids)


@shared_task(name="alerts.tasks.deliver", acks_late=True, ignore_result=True, expires=3600)
def deliver_task(delivery_id: int) -> str | None:
    """One attempt; with a broker a transient failure schedules the next attempt at its due time."""
    outcome = deliveries.attempt(delivery_id)
    if outcome == "retry" and settings.CELERY_BROKER_URL:
        from alerts.models import Delivery

        due = Delivery.objects.filter(pk=delivery_id).values_list("next_attempt_at", flat=True).first()
        if due is not None:
            countdown = max(0.0, (due - deliveries.utcnow()).total_seconds()) + 1
            deliver_task.apply_async((delivery_id,), queue="alerts", countdown=countdown, expires=countdown + 3600)
    return outcome


@shared_task(name="alerts.tasks.send_due_deliveries", acks_late=True, ignore_result=True, expires=EXPIRES)
def send_due_deliveries_task() -> dict[str, int]:
    """The sweep: deliveries whose nudge was lost, and retries whose time has come (embedded mode)."""
    return deliveries.send_due()


def enqueue_deliveries(delivery_ids: list[int]) -> None:
    """Send new deliveries now: a task each with a broker, in this process without one."""
    for delivery_id in delivery_ids:
        if settings.CELERY_BROKER_URL:
            deliver_task.apply_async((delivery_id,), queue="alerts", expires=3600)
        else:
            try:
                deliveries.attempt(delivery_id)
            except Exception:  # the row stays due: the periodic sweep retries it
                log.exception("delivery %s could not be attempted", delivery_id)
