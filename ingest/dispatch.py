"""Tell a drain that work is waiting: a Celery task with a broker, else the in-process runner.

Dispatch is a nudge, never the record of the work: the outbox row is. If the nudge is lost
(broker down, process killed) the periodic sweep drains the batch anyway.
"""

from __future__ import annotations

import logging
import threading

from django.conf import settings

log = logging.getLogger(__name__)
_embedded_wakeup: threading.Event | None = None


def use_embedded_runner(event: threading.Event | None) -> None:
    global _embedded_wakeup
    _embedded_wakeup = event


def batch_accepted() -> None:
    if settings.CELERY_BROKER_URL:
        from ingest.tasks import drain_outbox

        try:
            drain_outbox.apply_async(queue="ingest", expires=300)
        except Exception as exc:  # the batch is durable; the sweep will pick it up
            log.warning("could not enqueue a drain (%s); the periodic sweep will drain it", type(exc).__name__)
    elif _embedded_wakeup is not None:
        _embedded_wakeup.set()
