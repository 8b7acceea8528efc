"""Celery tasks of the alerts queue. They take ids; the database rows are the work list."""

from __future__ import annotations

from collections.abc import Iterable

from celery import shared_task

from alerts import deliveries
from alerts.evaluate import evaluate_all, evaluate_projects
from ops import pipeline


@shared_task(name="alerts.tasks.evaluate_projects", acks_late=True, ignore_result=True)
def evaluate_projects_task(project_ids: list[int]) -> int:
    """Evaluate the budgets of projects a rollup just touched; returns the deliveries created."""
    report = evaluate_projects(project_ids)
    pipeline.after_evaluation(report.delivery_ids)
    return len(report.delivery_ids)


@shared_task(name="alerts.tasks.evaluate_all", acks_late=True, ignore_result=True)
def evaluate_all_task() -> int:
    report = evaluate_all()
    pipeline.after_evaluation(report.delivery_ids)
    return len(report.delivery_ids)


@shared_task(name="alerts.tasks.deliver", acks_late=True, ignore_result=True)
def deliver_task(delivery_id: int) -> str | None:
    """One attempt; the pipeline schedules the next one after a transient failure."""
    outcome = deliveries.attempt(delivery_id)
    pipeline.after_delivery_attempt(delivery_id, outcome)
    return outcome


@shared_task(name="alerts.tasks.send_due_deliveries", acks_late=True, ignore_result=True)
def send_due_deliveries_task() -> dict[str, int]:
    """The sweep: deliveries whose nudge was lost, and retries whose time has come (embedded mode)."""
    return deliveries.send_due()


def enqueue_deliveries(delivery_ids: Iterable[int]) -> None:
    """Send new deliveries once the current transaction commits (for callers of ``alerts.evaluate``)."""
    pipeline.after_evaluation(delivery_ids)
