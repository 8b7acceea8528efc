"""The embedded runner: in-process drain and periodic schedule for ``serve`` without a broker.

chDB locks its data directory to one process, so in embedded mode the web server's own process
drains the outbox and runs the schedule, on daemon threads. Both run the pipeline's tasks inline
(``ops.pipeline``): a drain is followed by its rollup, evaluation and deliveries in that thread.

At start, before either thread runs, the runner takes the chDB engine (which proves no other process
holds it, so no other drain or rollup is alive) and gives back every batch and dirty hour a killed
predecessor had claimed: they are drained at once instead of after their lease.
"""

from __future__ import annotations

import logging
import threading
import time

from clickhouse_connect.driver.exceptions import ClickHouseError
from django.db import DatabaseError, close_old_connections, connections

from config.schedule import PERIODIC
from ingest.outbox import release_orphans
from ledger import reprice_jobs
from ledger.claims import release_all_claims
from ledger.clickhouse.client import EngineLocked, get_clickhouse
from ops import pipeline

log = logging.getLogger(__name__)


class EmbeddedRunner:
    def __init__(self, idle_wait: float = 1.0) -> None:
        self.idle_wait = idle_wait
        self.wakeup = threading.Event()
        self.stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        pipeline.register_tasks()  # before the two threads look tasks up by name
        self.reclaim()
        pipeline.use_embedded_runner(self.wakeup)
        reprice_jobs.use_background(reprice_jobs.in_thread)  # a reprice never holds the request that asked
        for target, name in ((self._drain_loop, "meterline-drain"), (self._schedule_loop, "meterline-schedule")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def reclaim(self) -> tuple[int, int]:
        """Give back the batches and dirty hours a dead predecessor claimed, once this process holds the
        chDB directory (the proof that nobody else drains). With a ClickHouse server other drains may be
        alive: their leases are left to expire. Returns (batches, hours) given back."""
        ch = get_clickhouse()
        if not ch.embedded:
            return 0, 0
        try:
            ch.command("SELECT 1")  # opens the engine: fails while another process holds the directory
        except EngineLocked:
            log.warning("another process holds the chDB directory; its claims are left to expire")
            return 0, 0
        except ClickHouseError:  # not a lock error: nobody else holds the directory (not migrated yet?)
            pass
        try:
            batches, hours = release_orphans(), release_all_claims()
        except DatabaseError as exc:  # not migrated yet, or down: serve still starts; the leases expire
            log.warning("could not take back earlier claims (%s); they expire with their leases", type(exc).__name__)
            return 0, 0
        if batches or hours:
            log.warning("took back %d batch(es) and %d dirty hour(s) claimed before a restart", batches, hours)
        return batches, hours

    def stop(self, timeout: float = 10.0) -> None:
        self.stopping.set()
        self.wakeup.set()
        pipeline.use_embedded_runner(None)
        reprice_jobs.use_background(None)
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
