"""The embedded runner: in-process drain and periodic schedule for ``serve`` without a broker.

chDB locks its data directory to one process, so in embedded mode the web server's own process
drains the outbox and runs the schedule, on daemon threads. Both run the pipeline's tasks inline
(``ops.pipeline``): a drain is followed by its rollup, evaluation and deliveries in that thread.
"""

from __future__ import annotations

import logging
import threading
import time

from django.db import close_old_connections, connections

from config.schedule import PERIODIC
from ops import pipeline

log = logging.getLogger(__name__)


class EmbeddedRunner:
    def __init__(self, idle_wait: float = 1.0) -> None:
        self.idle_wait = idle_wait
        self.wakeup = threading.Event()
        self.stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        pipeline.use_embedded_runner(self.wakeup)
        for target, name in ((self._drain_loop, "meterline-drain"), (self._schedule_loop, "meterline-schedule")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 10.0) -> None:
        self.stopping.set()
        self.wakeup.set()
        pipeline.use_embedded_runner(None)
        for thread in self._threads:
            thread.join(timeout)

    def _drain_loop(self) -> None:
        while not self.stopping.is_set():
            self.wakeup.wait(self.idle_wait)
            self.wakeup.clear()
            try:
                pipeline.run_inline(pipeline.DRAIN)  # then its rollup, evaluation and deliveries
            except Exception:
                log.exception("embedded drain failed; retrying")
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
                        pipeline.run_inline(periodic.task)
                    except Exception:
                        log.exception("periodic task %s failed", periodic.task)
                    finally:
                        close_old_connections()
            self.stopping.wait(max(0.05, min(next_run.values(), default=now + 1.0) - time.monotonic()))
        connections.close_all()
