"""The one periodic schedule: Celery beat in production, the ``serve`` loop in embedded mode.

Short intervals for the sweeps; a crontab for anything slower, because beat restarts an interval's
count when it restarts (a 5-minute interval could slip by minutes on every deploy) while a crontab
stays on the clock. Every entry carries an ``expires`` so a backlog after downtime never piles up
duplicates. The embedded ``serve`` loop runs each entry every ``every_seconds``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from celery.schedules import crontab

from config.queues import Queue, queue_for


@dataclass(frozen=True)
class Periodic:
    name: str
    task: str
    every_seconds: float
    minutes: str | None = None  # a crontab minute field ("*/5", "7") for beat; None: the interval

    @property
    def queue(self) -> Queue:
        return queue_for(self.task)

    def beat_entry(self) -> Any:
        return crontab(minute=self.minutes) if self.minutes is not None else self.every_seconds


PERIODIC: tuple[Periodic, ...] = (
    # Drains batches whose nudge was lost and retries failed ones once their backoff is over.
    Periodic("sweep-outbox", "ingest.tasks.drain_outbox", 15.0),
    Periodic("purge-outbox", "ingest.tasks.purge_outbox", 3600.0, minutes="7"),
    # Recomputes hours marked dirty by drains, feedback and reprices (a drain also enqueues it).
    Periodic("rollup-dirty", "ledger.tasks.rollup_dirty", 10.0),
    # Budgets are evaluated after every rollup; this catches period starts, amount changes and
    # anything a lost nudge missed. The sweep sends due deliveries (retries, lost nudges).
    Periodic("evaluate-budgets", "alerts.tasks.evaluate_all", 300.0, minutes="*/5"),
    Periodic("send-due-deliveries", "alerts.tasks.send_due_deliveries", 15.0),
)


def beat_schedule() -> dict[str, dict[str, object]]:
    return {
        p.name: {
            "task": p.task,
            "schedule": p.beat_entry(),
            # an entry expires when the next one is due: a backlog after downtime holds one of each
            "options": {"queue": p.queue.value, "expires": p.every_seconds},
        }
        for p in PERIODIC
    }
