"""Celery queue names, which task goes to which queue, and how long a sent task stays valid.

Used by the settings (task routes), the schedule and ``ops.pipeline`` (apply_async), so a queue
name is written once.
"""

from __future__ import annotations

from enum import StrEnum


class Queue(StrEnum):
    INGEST = "ingest"  # drains and the outbox purge
    ROLLUP = "rollup"  # rollup recomputes and reprices
    ALERTS = "alerts"  # budget evaluation and deliveries
    DEFAULT = "default"  # anything unrouted


# A task module's tasks all go to one queue (Celery task-route globs).
ROUTES: dict[str, Queue] = {
    "ingest.tasks.*": Queue.INGEST,
    "ledger.tasks.*": Queue.ROLLUP,
    "alerts.tasks.*": Queue.ALERTS,
}

# Seconds a sent task may wait in its queue before it is dropped unstarted (after its countdown, if
# any). Every pipeline task is a nudge: the database rows are the work list and the periodic sweeps
# pick up whatever an expired nudge would have done, so a backlog never piles up duplicates.
EXPIRES_SECONDS = 300


def queue_for(task_name: str) -> Queue:
    """The queue a task (by its registered name) is sent to."""
    for pattern, queue in ROUTES.items():
        if task_name.startswith(pattern.removesuffix("*")):
            return queue
    return Queue.DEFAULT
