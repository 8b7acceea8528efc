"""The accept path without HTTP, for ``bench/ingest.py``: its in-process ceiling and where a request's
time goes.

- ``in_process``: the very bodies the HTTP run sent, each through ``ingest.accept.accept`` (decode,
  validate, pack, commit the outbox row) in ``procs`` forked processes, no WSGI, no Django request,
  no DRF, no socket. Records/s over the wall time from a common start: the ceiling of this design on
  this machine, the HTTP figure's reference.
- ``step_medians``: one process, one body at a time, each step of ``accept`` timed on its own
  (median ms per request), and the CPU of a whole ``accept``.
- ``CpuMeter``: CPU-seconds of the bench database's PostgreSQL backends and of this process (the
  load generator), to split what an HTTP request costs the machine.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import resource
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HZ = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class InProcess:
    rate: float  # records/s over the wall time, all processes together
    records: int
    wall: float
    cpu_ms: float  # CPU per request, the forked processes' own (their PostgreSQL backends not included)


def _child(project_id: int, bodies: Sequence[bytes], start: Any, out: Any) -> None:
    from django.db import connections

    from ingest.accept import accept
    from tenancy.models import Project

    connections.close_all()  # never the parent's socket: a fresh connection of our own
    project = Project.objects.get(pk=project_id)
    accepted = 0
    start.wait(60)
    t0 = time.perf_counter()
    c0 = time.process_time()
    for body in bodies:
        accepted += int(accept(project, body, None).body["accepted"])
    out.put((accepted, time.perf_counter() - t0, time.process_time() - c0, len(bodies)))
    connections.close_all()


def in_process(project_id: int, bodies: Sequence[bytes], procs: int) -> InProcess:
    """``accept`` over ``bodies`` in ``procs`` forked processes, the bodies dealt round-robin."""
    from django.db import connections

    connections.close_all()  # a forked child must not inherit an open connection
    ctx = mp.get_context("fork")
    start = ctx.Barrier(procs + 1)
    out: Any = ctx.Queue()
    children = [
        ctx.Process(target=_child, args=(project_id, bodies[i::procs], start, out), daemon=True) for i in range(procs)
    ]
    for child in children:
        child.start()
    try:
        start.wait(120)
        t0 = time.perf_counter()
        results = [out.get(timeout=600) for _ in children]
        wall = time.perf_counter() - t0
    finally:
        for child in children:
            child.join(30)
            if child.is_alive():
                child.kill()
    records = sum(r[0] for r in results)
    requests = sum(r[3] for r in results)
    return InProcess(records / wall, records, wall, sum(r[2] for r in results) * 1000 / max(1, requests))


STEPS = ("decode the JSON envelope", "validate and pack", "encode the msgpack payload", "insert the outbox row")


def step_medians(project_id: int, bodies: Sequence[bytes]) -> tuple[dict[str, float], float, float]:
    """Median ms per request of each step of ``accept`` (one process, its own outbox rows), then the
    CPU and wall ms of a whole ``accept`` of the same bodies."""
    from ingest.accept import accept, current_window
    from ingest.models import Batch
    from ingest.records import decode_envelope, encode_records, validate
    from tenancy.models import Project

    project = Project.objects.get(pk=project_id)
    times: dict[str, list[float]] = {step: [] for step in STEPS}
    for body in bodies:
        t0 = time.perf_counter()
        raws = decode_envelope(body)
        t1 = time.perf_counter()
        result = validate(raws, current_window())
        t2 = time.perf_counter()
        payload = encode_records(result.accepted)
        t3 = time.perf_counter()
        Batch(project=project, payload=payload, record_count=len(result.accepted)).save(force_insert=True)
        t4 = time.perf_counter()
        for step, (a, b) in zip(STEPS, ((t0, t1), (t1, t2), (t2, t3), (t3, t4)), strict=True):
            times[step].append((b - a) * 1000)
    c0, w0 = time.process_time(), time.perf_counter()
    for body in bodies:
        accept(project, body, None)
    cpu = (time.process_time() - c0) * 1000 / len(bodies)
    wall = (time.perf_counter() - w0) * 1000 / len(bodies)
    return {step: statistics.median(values) for step, values in times.items()}, cpu, wall


class CpuMeter:
    """CPU-seconds so far of the PostgreSQL backends serving ``db_name`` and of this process."""

    def __init__(self, db_name: str) -> None:
        self.marker = f" {db_name} ".encode()

    def postgres(self) -> float:
        ticks = 0
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if self.marker not in (entry / "cmdline").read_bytes().replace(b"\0", b" ") + b" ":
                    continue
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            ticks += int(fields[11]) + int(fields[12])
        return ticks / HZ

    @staticmethod
    def me() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
