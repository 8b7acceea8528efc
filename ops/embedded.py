"""The embedded runner: in-process drain and periodic schedule for ``serve`` without a broker.

chDB locks its data directory to one process, so in embedded mode the web server's own process
drains the outbox and runs the schedule, on daemon threads.
"""

from __future__ import annotations

import logging
import threading
import time

from django.db import close_old_connections, connections

from alerts.evaluate import evaluate_projects
from config.celery import app as celery_app
from config.schedule import PERIODIC
from ingest import dispatch
from ingest.drain import drain_until_empty
from ledger.feedback import sync_feedback
from ledger.models import DirtyBucket
from ledger.rollups import rollup_dirty

log = logging.getLogger(__name__)


class EmbeddedRunner:
    def __init__(self, idle_wait: float = 1.0) -> None:
        self.idle_wait = idle_wait
        self.wakeup = threading.Event()
        self.stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        celery_app.loader.import_default_modules()  # register every app's tasks before scheduling them
        dispatch.use_embedded_runner(self.wakeup)
        for target, name in ((self._drain_loop, "meterline-drain"), (self._schedule_loop, "meterline-schedule")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 10.0) -> None:
        self.stopping.set()
        self.wakeup.set()
        dispatch.use_embedded_runner(None)
        for thread in self._threads:
            thread.join(timeout)

    def _drain_loop(self) -> None:
        while not self.stopping.is_set():
            self.wakeup.wait(self.idle_wait)
            self.wakeup.clear()
            try:
                drained = drain_until_empty(deadline_seconds=30).records
                if sync_feedback() or drained or DirtyBucket.objects.exists():
                    touched = rollup_dirty().project_ids
                    if touched:  # budgets see fresh spend right after the rollup, in this thread
                        evaluate_projects(touched)
            except Exception:
                log.exception("embedded drain or rollup failed; retrying")
                self.stopping.wait(self.idle_wait)
            finally:
                close_old_connections()
        connections.close_all()

    def _schedule_loop(self) -> None:
        next_run = {p.name: time.monotonic() for p in PERIODIC}
        while not self.stopping.is_set():
            now = time.monotonic()
            for periodic in PERIODIC:
                if now >= next_run[periodic.name]:
                    next_run[periodic.name] = now + periodic.every_seconds
                    try:
                        celery_app.tasks[periodic.task].apply()
                    except Exception:
                        log.exception("periodic task %s failed", periodic.task)
                    finally:
                        close_old_connections()
            self.stopping.wait(max(0.05, min(next_run.values(), default=now + 1.0) - time.monotonic()))
        connections.close_all()
