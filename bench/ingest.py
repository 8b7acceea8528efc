"""Ingest benchmark: POST /v1/calls through gunicorn, the outbox drain, and the raw insert ceiling.

One run, three figures, against the real stores on this machine, in ``--rounds`` rounds (medians):

1. accept  — records/s through gunicorn as the image runs it (gthread, 2 workers x 4 threads: also the
   fastest here, 120k against sync x4's 104k rec/s on 2026-12-07; sync is a flag away) from
   several loopback connections in this process, 500-record JSON batches of realistic traffic
   (``ops.demo``: mixed features, models, customers, retries, cache hits, tiers), a fixed number of
   requests; p50/p99 request latency. The web workers only write the PostgreSQL outbox (no
   ``CELERY_BROKER_URL``), which is checked after each round: no worker mapped chDB, ``llm_calls``
   did not grow, and every accepted record is a pending outbox row.
   Its reference: the same bodies through ``ingest.accept.accept`` in as many forked processes as
   there are CPUs, without HTTP (``bench/_accept_profile.py``): the ceiling of this design. The CPU a
   request costs is split between the web worker, PostgreSQL's backends and this load generator,
   and each step of ``accept`` is timed on its own.
2. drain   — gunicorn stopped, this process drains that backlog into chDB with the production
   ``ingest.drain.drain_until_empty`` (the production entry point: claims, prices and inserts in a pipeline).
3. ceiling — a bare clickhouse-connect column-oriented ``insert`` of the very same columns (built
   by ``ingest.drain.build_rows`` before timing, grouped as the drain grouped them) into fresh
   ``AS llm_calls`` tables; the median of a few repeats. End-to-end, 1/(1/accept + 1/drain), is
   reported as a fraction of it.

This machine is shared, and two busy cores make every figure noisy: the bench waits (bounded) for
other processes to go quiet before each timed phase and prints how much CPU they took meanwhile.

Everything lives in throwaway places: a PostgreSQL database it creates and migrates
(``meterline_bench`` by default, dropped at the end unless ``--keep-db``), a fresh chDB directory
and ``METERLINE_VAR_DIR`` under a temp dir. Only loopback traffic; every loop is bounded.

    cd /work/main && .venv/bin/python bench/ingest.py [--rounds 3] [--requests 400] [--workers 4] ...
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import redirect_stdout
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# Run as ``python bench/ingest.py``, this file's directory comes first on sys.path and its name
# would shadow the ``ingest`` package: put the repository root there instead.
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from bench._accept_profile import CpuMeter, in_process, step_medians  # noqa: E402 - after the path fix

TARGET_ACCEPT = 100_000.0  # records/s
TARGET_P99_MS = 50.0  # per 500-record request
TARGET_DRAIN_SHARE = 0.90  # drain / bare insert of the same columns
TARGET_SHARE = 0.25  # end-to-end / ceiling
INPROC_PROJECT = "bench-inproc"  # the in-process reference's own outbox rows, deleted after each round
PROFILED_REQUESTS = 100  # bodies of the first round timed step by step
TARGET_OTLP_SHARE = 0.50  # OTLP spans/s / /v1/calls records/s, the same calls in the same run
OTLP_PROJECT = "bench-otlp"  # its own project, so its outbox rows are told apart from /v1/calls'

PG_ADMIN_URL = "postgres://postgres@127.0.0.1:5432/postgres"


# --- environment ------------------------------------------------------------------------------


@dataclass
class Env:
    tmp: Path
    db_name: str
    vars: dict[str, str] = field(default_factory=dict)


def make_env(db_name: str) -> Env:
    tmp = Path(tempfile.mkdtemp(prefix="meterline-bench-"))
    chdb_dir = tmp / "clickhouse"
    var_dir = tmp / "var"
    var_dir.mkdir()
    env = Env(tmp, db_name)
    env.vars = {
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{db_name}",
        "CLICKHOUSE_URL": f"chdb://{chdb_dir}",
        "METERLINE_VAR_DIR": str(var_dir),
        "DEBUG": "false",
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
    }
    return env


def apply_env(env: Env) -> None:
    """This process gets the same settings as the gunicorn workers (no broker, no rate limit)."""
    for name in ("CELERY_BROKER_URL", "INGEST_RATE_LIMIT", "CACHE_URL", "SECRET_KEY"):
        os.environ.pop(name, None)
    os.environ.update(env.vars)


def recreate_database(name: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # a checked, bench-owned name
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(name: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def setup_stores(name: str = "bench", migrate: bool = True) -> str:
    """Migrate both stores, create a project and an ingest key; return the raw key."""
    import django
    from django.core.management import call_command

    django.setup()
    quiet = io.StringIO()
    with redirect_stdout(quiet):
        if migrate:
            call_command("migrate", interactive=False, verbosity=0)
            call_command("migrate_clickhouse")
        call_command("create_project", name)
    out = io.StringIO()
    with redirect_stdout(out):
        call_command("create_api_key", project=name, scopes="ingest", name=name)
    return out.getvalue().strip().splitlines()[-1]


# --- realistic request bodies -----------------------------------------------------------------


def records_as_json(total: int, seed: int) -> Iterator[dict[str, Any]]:
    """``ops.demo`` traffic (mixed features, models, customers, retries, caching, tiers) as the
    JSON an SDK sends: UUIDv7 event ids, RFC 3339 timestamps, defaults left out, and a provider
    reported cost on a few records."""
    from ingest.records import FIELDS, uuid7
    from ops.demo import generate

    rng = random.Random(seed)
    end_ms = int(time.time() * 1000) - 60_000
    for packed in generate(total, end_ms, days=7, seed=seed):
        record: dict[str, Any] = {}
        for name, value in zip(FIELDS[: len(packed)], packed, strict=True):  # demo may omit added fields
            if name == "event_id":
                record[name] = uuid7()
            elif name == "ts_ms":
                ts = datetime.fromtimestamp(value / 1000, tz=UTC)
                record["timestamp"] = ts.isoformat(timespec="milliseconds").replace("+00:00", "Z")
            elif name == "reported_pusd":
                if rng.random() < 0.05:
                    record["cost_usd"] = round(rng.uniform(0.0001, 0.05), 6)
            elif value is not None and value != "":
                record[name] = value
        yield record


def make_bodies(requests: int, batch_size: int, seed: int) -> tuple[list[bytes], list[bytes]]:
    """The same calls twice: ``/v1/calls`` JSON bodies and OTLP protobuf bodies of GenAI spans."""
    it = records_as_json(requests * batch_size, seed)
    bodies, spans = [], []
    rng = random.Random(seed)
    for _ in range(requests):
        calls = [next(it) for _ in range(batch_size)]
        bodies.append(json.dumps({"calls": calls}, separators=(",", ":")).encode())
        spans.append(spans_body(calls, rng))
    return bodies, spans


# CallRecord field → the span attribute an OpenTelemetry GenAI instrumentation (plus the app's
# meterline.* attribution) would carry it in: the mapping of docs/otlp.md read backwards.
SPAN_ATTRIBUTES = {
    "provider": "gen_ai.provider.name", "model": "gen_ai.request.model", "response_model": "gen_ai.response.model",
    "input_tokens": "gen_ai.usage.input_tokens", "cache_read_tokens": "gen_ai.usage.cache_read.input_tokens",
    "cache_write_tokens": "gen_ai.usage.cache_creation.input_tokens", "output_tokens": "gen_ai.usage.output_tokens",
    "reasoning_tokens": "gen_ai.usage.reasoning.output_tokens", "max_tokens": "gen_ai.request.max_tokens",
    "service_tier": "openai.response.service_tier", "streamed": "gen_ai.request.stream", "user_id": "user.id",
    "session_id": "session.id", "environment": "deployment.environment.name",
}  # fmt: skip
SPAN_SKIPPED = {
    "event_id", "timestamp", "trace_id", "latency_ms", "ttft_ms", "status", "error_type", "finish_reason", "tags",
}  # fmt: skip


def spans_body(calls: list[dict[str, Any]], rng: random.Random) -> bytes:
    """One ``ExportTraceServiceRequest`` holding ``calls`` as GenAI client spans (and what real
    instrumentations add beside: operation name, response id, server address)."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue
    from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

    def value(v: Any) -> AnyValue:
        if isinstance(v, bool):
            return AnyValue(bool_value=v)
        if isinstance(v, int):
            return AnyValue(int_value=v)
        if isinstance(v, float):
            return AnyValue(double_value=v)
        if isinstance(v, list):
            return AnyValue(array_value=ArrayValue(values=[value(x) for x in v]))
        return AnyValue(string_value=str(v))

    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.append(KeyValue(key="service.name", value=value("bench-app")))
    scope = resource_spans.scope_spans.add()
    scope.scope.name = "opentelemetry.instrumentation.openai_v2"
    for call in calls:
        start = int(datetime.fromisoformat(call["timestamp"]).timestamp() * 1000) * 1_000_000
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat", "gen_ai.response.id": f"chatcmpl-{rng.getrandbits(64):x}",
            "server.address": "api.example.com", "server.port": 443,
        }  # fmt: skip
        for name, v in call.items():
            if name in SPAN_ATTRIBUTES:
                attributes[SPAN_ATTRIBUTES[name]] = v
            elif name not in SPAN_SKIPPED:
                attributes[f"meterline.{name}"] = v  # feature, customer_id, route, traffic, attempt, cost_usd, …
        for key, v in call.get("tags", {}).items():
            attributes[f"meterline.tags.{key}"] = v
        if "ttft_ms" in call:
            attributes["gen_ai.response.time_to_first_chunk"] = call["ttft_ms"] / 1000
        if "finish_reason" in call:
            attributes["gen_ai.response.finish_reasons"] = [call["finish_reason"]]
        status = call.get("status", "ok")
        if status != "ok":
            attributes["error.type"] = call.get("error_type") or status
        span = Span(
            trace_id=rng.getrandbits(128).to_bytes(16, "big"), span_id=rng.getrandbits(64).to_bytes(8, "big"),
            name=f"chat {call['model']}", kind=Span.SPAN_KIND_CLIENT, start_time_unix_nano=start,
            end_time_unix_nano=start + int(call.get("latency_ms", 1000) * 1_000_000),
            status=Status(code=Status.STATUS_CODE_ERROR if status != "ok" else Status.STATUS_CODE_UNSET),
        )  # fmt: skip
        span.attributes.extend(KeyValue(key=k, value=value(v)) for k, v in attributes.items())
        scope.spans.append(span)
    return bytes(request.SerializeToString())


# --- gunicorn -----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    def worker_pids(self) -> list[int]:
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == self.proc.pid:
                pids.append(int(entry.name))
        return pids

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the web workers have used so far: what a request costs them,
        whatever else the shared machine runs meanwhile."""
        total = 0
        for pid in self.worker_pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
        return total / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.proc.poll() is not None:
            return
        # gunicorn runs in its own session; stop exactly that group (the master and its workers).
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        except ProcessLookupError:
            pass


def start_gunicorn(env: Env, workers: int, worker_class: str, threads: int) -> Server:
    port = free_port()
    log = env.tmp / "gunicorn.log"
    cmd = [
        str(ROOT / ".venv" / "bin" / "gunicorn"),
        "config.wsgi:application",
        "--chdir", str(ROOT),
        "--bind", f"127.0.0.1:{port}",
        "--workers", str(workers),
        "--worker-class", worker_class,
        "--timeout", "60",
        "--log-level", "warning",
        "--worker-tmp-dir", str(env.tmp),
    ]  # fmt: skip
    if worker_class == "gthread":
        cmd += ["--threads", str(threads), "--keep-alive", "30"]
    sub_env = {k: v for k, v in os.environ.items() if k not in ("CELERY_BROKER_URL", "INGEST_RATE_LIMIT")}
    sub_env.update(env.vars)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=sub_env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = Server(proc, port, log)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", "/healthz")
                ok = conn.getresponse().status == 200
                conn.close()
                if ok and len(server.worker_pids()) >= workers:
                    return server
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError("gunicorn did not answer /healthz within 60 s")
    except BaseException:  # not up (or interrupted while starting): leave no server behind
        server.stop()
        raise


# --- the load generator -------------------------------------------------------------------------


@dataclass
class LoadResult:
    wall: float
    accepted: int
    latencies_ms: list[float]
    errors: list[str]


def calls_accepted(status: int, data: bytes, sent: int) -> int | None:
    return int(json.loads(data)["accepted"]) if status == 202 else None


def spans_accepted(status: int, data: bytes, sent: int) -> int | None:
    """Spans taken by an OTLP answer; every bench span is a model call, so a rejected one is an error."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

    if status != 200:
        return None
    answer = ExportTraceServiceResponse()
    answer.ParseFromString(data)
    return None if answer.partial_success.rejected_spans else sent  # an error, reported with the answer


@dataclass(frozen=True)
class Door:
    """An ingest endpoint as the load generator posts to it."""

    path: str
    content_type: str
    accepted: Callable[[int, bytes, int], int | None]


CALLS = Door("/v1/calls", "application/json", calls_accepted)
OTLP = Door("/v1/otlp/v1/traces", "application/x-protobuf", spans_accepted)


def post_all(
    port: int, key: str, bodies: Sequence[bytes], concurrency: int, timeout: float, door: Door = CALLS, batch: int = 0
) -> LoadResult:
    """Send every body once over ``concurrency`` keep-alive connections; a global deadline bounds it."""
    headers = {"Authorization": f"Bearer {key}", "Content-Type": door.content_type}
    lock = threading.Lock()
    next_index = iter(range(len(bodies)))
    latencies: list[float] = []
    errors: list[str] = []
    accepted = [0]
    deadline = time.monotonic() + timeout

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            while time.monotonic() < deadline:
                with lock:
                    i = next(next_index, None)
                if i is None:
                    return
                t0 = time.perf_counter()
                try:
                    conn.request("POST", door.path, body=bodies[i], headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                except (OSError, http.client.HTTPException) as exc:
                    conn.close()  # reconnects on the next request
                    with lock:
                        errors.append(f"request {i}: {type(exc).__name__}: {exc}")
                    continue
                elapsed = (time.perf_counter() - t0) * 1000
                taken = door.accepted(resp.status, data, batch)
                with lock:
                    latencies.append(elapsed)
                    if taken is not None:
                        accepted[0] += taken
                    else:
                        errors.append(f"request {i}: HTTP {resp.status}: {data[:200]!r}")
        finally:
            conn.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()) + 35)
    wall = time.perf_counter() - started
    if any(t.is_alive() for t in threads):
        errors.append("load generator hit its deadline")
    return LoadResult(wall, accepted[0], latencies, errors)


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


# --- other processes on the machine ------------------------------------------------------------


class CpuWatch:
    """CPU used by processes that are not this benchmark's, and stolen by the hypervisor: this
    machine is shared (test runs of other sessions, other guests), and two busy cores make every
    figure here noisy. Ours = this process, its
    descendants (gunicorn) and PostgreSQL backends of the bench database; PostgreSQL's own
    background processes count as neither."""

    def __init__(self, db_name: str, interval: float = 0.2, max_seconds: float = 3600) -> None:
        self.db_name = db_name
        self.interval = interval
        self.max_seconds = max_seconds
        self.hz = os.sysconf("SC_CLK_TCK")
        self._last: dict[int, int] = {}
        self._foreign = 0.0
        self._steal: int | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        me = os.getpid()
        parents: dict[int, int] = {}
        usage: dict[int, tuple[int, str]] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                cmd = (entry / "cmdline").read_bytes()[:200].replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            pid = int(entry.name)
            parents[pid] = int(fields[1])
            usage[pid] = (int(fields[11]) + int(fields[12]), cmd)
        foreign = 0
        for pid, (ticks, cmd) in usage.items():
            previous = self._last.get(pid)
            self._last[pid] = ticks
            if previous is None:
                continue  # first sight: only what it uses from now on counts
            if cmd.startswith("postgres"):
                continue  # the bench database's backends are ours; the server's housekeeping is shared
            ancestor, hops = pid, 0
            while ancestor not in (0, 1, me) and hops < 64:
                ancestor, hops = parents.get(ancestor, 0), hops + 1
            if ancestor != me:
                foreign += ticks - previous
        # The hypervisor's steal time: CPU this VM was owed but another guest ran.
        steal = int(Path("/proc/stat").read_text().split("\n", 1)[0].split()[8])
        if self._steal is not None:
            foreign += steal - self._steal
        self._steal = steal
        with self._lock:
            self._foreign += foreign / self.hz

    def _run(self) -> None:
        stop = time.monotonic() + self.max_seconds
        while not self._stop.wait(self.interval) and time.monotonic() < stop:
            self._sample()

    def start(self) -> CpuWatch:
        self._sample()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def foreign_seconds(self) -> float:
        with self._lock:
            return self._foreign

    def share(self, since: float, wall: float) -> float:
        """Foreign CPU-seconds since the ``since`` reading, as a share of the machine over ``wall``."""
        return (self.foreign_seconds() - since) / (wall * (os.cpu_count() or 1)) if wall > 0 else 0.0

    def wait_idle(self, limit: float, say: Callable[[str], None]) -> None:
        """Wait (at most ``limit`` s) for two quiet seconds: other processes under 10 % of the CPUs."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            before, t0 = self.foreign_seconds(), time.monotonic()
            time.sleep(2)
            if self.share(before, time.monotonic() - t0) < 0.10:
                return
        if limit > 0:
            say(f"the machine stayed busy for {limit:.0f}s (other processes); measuring anyway")


# --- checks, drain and ceiling ------------------------------------------------------------------


def chdb_mapped(pids: Sequence[int]) -> list[int]:
    """The pids whose memory maps hold the chDB engine (a worker that opened ClickHouse)."""
    hits = []
    for pid in pids:
        try:
            maps = Path(f"/proc/{pid}/maps").read_text()
        except OSError:
            continue
        if "chdb" in maps:
            hits.append(pid)
    return hits


def outbox_counts(project: str = "bench") -> dict[str, int]:
    from django.db.models import Count, Sum

    from ingest.models import Batch

    rows = (
        Batch.objects.filter(project__name=project)
        .values("status")
        .annotate(n=Count("id"), records=Sum("record_count"))
    )
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["status"]] = row["n"]
        counts[f"{row['status']}_records"] = row["records"] or 0
    return counts


def ch_count(table: str) -> int:
    from ledger.clickhouse.client import get_clickhouse

    return int(get_clickhouse().command(f"SELECT count() FROM {table}"))  # noqa: S608 (bench-owned table names)


@dataclass
class DrainRun:
    wall: float
    records: int
    batches: int
    failed: int
    calls: int  # drain_until_empty calls (one unless the time budget ran out)


@dataclass
class Round:
    accept_rate: float
    p50: float
    p99: float
    accepted: int
    busy_accept: float = 0.0
    otlp_rate: float = 0.0
    otlp_p50: float = 0.0
    otlp_p99: float = 0.0
    busy_otlp: float = 0.0
    cpu_calls_ms: float = 0.0  # web worker CPU per /v1/calls request
    pg_calls_ms: float = 0.0  # the bench database's PostgreSQL backends, per /v1/calls request
    client_calls_ms: float = 0.0  # this process (the load generator), per /v1/calls request
    inproc_rate: float = 0.0  # the same bodies through accept() in forked processes, no HTTP
    inproc_cpu_ms: float = 0.0  # their own CPU per request
    cpu_otlp_ms: float = 0.0  # web worker CPU per OTLP request (the same calls)
    drain_rate: float = 0.0
    busy_drain: float = 0.0


def run_drain(expected_batches: int, time_budget: float) -> DrainRun:
    """Drain the backlog with the production entry point (pipelined ``drain_until_empty``)."""
    from ingest.drain import drain_until_empty

    records = batches = failed = calls = 0
    stop = time.monotonic() + time_budget
    started = time.perf_counter()
    while batches < expected_batches and not failed and time.monotonic() < stop and calls < 10:
        result = drain_until_empty(deadline_seconds=max(1.0, stop - time.monotonic()))
        calls += 1
        records, batches, failed = records + result.records, batches + result.batches, failed + result.failed
        if not result.batches:
            break
    return DrainRun(time.perf_counter() - started, records, batches, failed, calls)


def precompute_groups(records: int) -> list[list[list[Any]]]:
    """The last ``records`` drained records' columns, grouped as the drain grouped them (untimed)."""
    from django.conf import settings

    from ingest.drain import build_rows
    from ingest.models import Batch
    from ledger.pricebook import load_price_book

    batches = list(Batch.objects.order_by("-done_at", "id"))
    taken = 0
    for i, b in enumerate(batches):  # the newest batches holding ``records`` records
        taken += b.record_count
        if taken >= records:
            batches = sorted(batches[: i + 1], key=lambda b: (b.next_attempt_at, b.id))
            break
    books = {pid: load_price_book(pid) for pid in {b.project_id for b in batches}}
    size = settings.OUTBOX_DRAIN_BATCHES
    version = time.time_ns() // 1000
    return [build_rows(batches[i : i + size], books, version).columns for i in range(0, len(batches), size)]


def timed_ceiling(groups: list[list[list[Any]]], repeats: int) -> list[float]:
    """Records/s of bare clickhouse-connect column inserts into a fresh ``AS llm_calls`` table."""
    from ledger.clickhouse.client import get_clickhouse
    from ledger.raw import COLUMNS

    ch = get_clickhouse()
    client = ch.client
    total = sum(len(g[0]) for g in groups)
    rates = []
    for r in range(repeats):
        table = f"bench_ceiling_{r}"
        ch.command(f"DROP TABLE IF EXISTS {table}")
        ch.command(f"CREATE TABLE {table} AS llm_calls")
        started = time.perf_counter()
        for columns in groups:
            client.insert(table, columns, column_names=list(COLUMNS), column_oriented=True)
        elapsed = time.perf_counter() - started
        if ch_count(table) != total:
            raise RuntimeError(f"ceiling table {table} holds {ch_count(table)} rows, expected {total}")
        ch.command(f"DROP TABLE {table}")
        rates.append(total / elapsed)
    return rates


# --- report -------------------------------------------------------------------------------------


def fmt_rate(x: float) -> str:
    return f"{x:,.0f} rec/s"


def print_table(rows: list[tuple[str, str, str, str, str, str]]) -> None:
    head = ("figure", "ours", "reference", "ratio", "target", "met")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    line = "  ".join("-" * w for w in widths)
    print(line)
    print("  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)))
    print(line)
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    print(line)


def db_name(value: str) -> str:
    """The bench database name goes into DDL: letters, digits and underscores only."""
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", value) or value in ("postgres", "template0", "template1"):
        raise argparse.ArgumentTypeError(f"{value!r} is not a bench database name (a-z, 0-9, _)")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=400, help="timed POST /v1/calls requests per round")
    p.add_argument("--rounds", type=int, default=3, help="accept + drain rounds (medians are reported)")
    p.add_argument("--batch-size", type=int, default=500, help="records per request")
    p.add_argument("--concurrency", type=int, default=4, help="load generator connections")
    p.add_argument("--workers", type=int, default=2, help="gunicorn workers (the image: WEB_CONCURRENCY=2)")
    p.add_argument("--worker-class", choices=("sync", "gthread"), default="gthread")
    p.add_argument("--threads", type=int, default=4, help="threads per gthread worker (the image: 4)")
    p.add_argument("--ceiling-repeats", type=int, default=3)
    p.add_argument("--db", type=db_name, default="meterline_bench", help="PostgreSQL database to create and drop")
    p.add_argument("--keep-db", action="store_true", help="keep the bench database and temp dir")
    p.add_argument("--seed", type=int, default=11)
    p.add_argument(
        "--wait-idle",
        type=float,
        default=60.0,
        help="before each timed phase, wait up to this many seconds for other processes to go quiet",
    )
    p.add_argument("--time-budget", type=float, default=600.0, help="seconds for each timed phase")
    args = p.parse_args(argv)

    # A SIGTERM (timeout, make, CI) unwinds through the clean-up below like Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    env = make_env(args.db)
    apply_env(env)
    server: Server | None = None
    say: Callable[[str], None] = lambda msg: print(f"[bench] {msg}", flush=True)  # noqa: E731
    try:
        say(f"PostgreSQL db {args.db}, chDB {env.vars['CLICKHOUSE_URL']}, var {env.vars['METERLINE_VAR_DIR']}")
        recreate_database(args.db)
        key = setup_stores()
        otlp_key = setup_stores(OTLP_PROJECT, migrate=False)
        setup_stores(INPROC_PROJECT, migrate=False)
        from tenancy.models import Project

        inproc_id = Project.objects.get(name=INPROC_PROJECT).pk
        meter = CpuMeter(args.db)
        steps: dict[str, float] = {}
        step_cpu = step_wall = 0.0
        from django.conf import settings

        assert not settings.CELERY_BROKER_URL, "the accept path must not enqueue: CELERY_BROKER_URL is set"
        label = f"gunicorn {args.worker_class} x{args.workers}" + (
            f" ({args.threads} threads)" if args.worker_class == "gthread" else ""
        )
        warmup = 2 * args.workers * (args.threads if args.worker_class == "gthread" else 1)
        rounds: list[Round] = []
        in_ch = 0
        watch = CpuWatch(args.db).start()
        for r in range(args.rounds):
            t0 = time.perf_counter()
            bodies, span_bodies = make_bodies(args.requests + warmup, args.batch_size, args.seed + r)
            kb = sum(map(len, bodies)) / len(bodies) / 1000
            span_kb = sum(map(len, span_bodies)) / len(span_bodies) / 1000
            say(f"round {r + 1}/{args.rounds}: built {len(bodies)} bodies of {args.batch_size} records "
                f"({kb:.0f} kB JSON, {span_kb:.0f} kB OTLP protobuf each) "
                f"in {time.perf_counter() - t0:.1f}s")  # fmt: skip

            # 1. accept through gunicorn
            server = start_gunicorn(env, args.workers, args.worker_class, args.threads)
            watch.wait_idle(args.wait_idle, say)
            warm = post_all(server.port, key, bodies[:warmup], min(args.concurrency, warmup), 120)
            warm_otlp = post_all(
                server.port, otlp_key, span_bodies[:warmup], min(args.concurrency, warmup), 120, OTLP, args.batch_size
            )
            if warm.errors or warm_otlp.errors:
                raise RuntimeError(f"warm-up failed: {(warm.errors + warm_otlp.errors)[:3]}")
            # The same calls through both doors, back to back on the same server; which goes first
            # alternates by round so a busier stretch of the shared machine does not favour one.
            measured: dict[str, tuple[LoadResult, float]] = {}
            worker_cpu: dict[str, float] = {}
            pg_cpu = client_cpu = 0.0
            for name in ("calls", "otlp") if r % 2 == 0 else ("otlp", "calls"):
                foreign0, cpu0 = watch.foreign_seconds(), server.cpu_seconds()
                pg0, me0 = meter.postgres(), meter.me()
                if name == "calls":
                    run = post_all(server.port, key, bodies[warmup:], args.concurrency, args.time_budget)
                else:
                    run = post_all(server.port, otlp_key, span_bodies[warmup:], args.concurrency, args.time_budget,
                                   OTLP, args.batch_size)  # fmt: skip
                measured[name] = (run, watch.share(foreign0, run.wall))
                worker_cpu[name] = (server.cpu_seconds() - cpu0) * 1000 / max(1, len(run.latencies_ms))
                if name == "calls":
                    pg_cpu = (meter.postgres() - pg0) * 1000 / max(1, len(run.latencies_ms))
                    client_cpu = (meter.me() - me0) * 1000 / max(1, len(run.latencies_ms))
                if run.errors:
                    raise RuntimeError(f"{len(run.errors)} failed {name} requests, e.g. {run.errors[:3]}")
            (load, busy_accept), (otlp_load, busy_otlp) = measured["calls"], measured["otlp"]
            del span_bodies
            # The accept path must not have touched ClickHouse: no worker loaded chDB, no new rows,
            # and every accepted record waits in the outbox.
            touched = chdb_mapped([*server.worker_pids(), server.proc.pid])
            server.stop()
            server = None
            counts = outbox_counts()
            expected = warm.accepted + load.accepted
            if touched or ch_count("llm_calls") != in_ch or counts.get("pending_records") != expected:
                raise RuntimeError(f"accept path touched ClickHouse: chdb in {touched}, outbox {counts}")
            otlp_counts = outbox_counts(OTLP_PROJECT)
            otlp_expected = warm_otlp.accepted + otlp_load.accepted
            if otlp_counts.get("pending_records") != otlp_expected or otlp_expected != expected:
                raise RuntimeError(f"OTLP accepted {otlp_expected:,} spans, /v1/calls {expected:,}: {otlp_counts}")
            # The spans' outbox rows were checked; the drain below measures the /v1/calls backlog alone,
            # as before (the spans would drain the very same records a second time).
            from ingest.models import Batch

            Batch.objects.filter(project__name=OTLP_PROJECT).delete()

            # The reference: the same bodies through accept() in forked processes, no HTTP.
            watch.wait_idle(args.wait_idle, say)
            foreign0 = watch.foreign_seconds()
            inproc = in_process(inproc_id, bodies[warmup:], os.cpu_count() or 1)
            busy_inproc = watch.share(foreign0, inproc.wall)
            if inproc.records != load.accepted:
                raise RuntimeError(f"in process: {inproc.records:,} records accepted, over HTTP {load.accepted:,}")
            if r == 0:  # before any drain: no background merges in this process yet
                steps, step_cpu, step_wall = step_medians(inproc_id, bodies[warmup : warmup + PROFILED_REQUESTS])
            Batch.objects.filter(project__name=INPROC_PROJECT).delete()
            del bodies
            rnd = Round(
                accept_rate=load.accepted / load.wall,
                p50=percentile(load.latencies_ms, 0.5),
                p99=percentile(load.latencies_ms, 0.99),
                accepted=load.accepted,
                busy_accept=busy_accept,
                otlp_rate=otlp_load.accepted / otlp_load.wall,
                otlp_p50=percentile(otlp_load.latencies_ms, 0.5),
                otlp_p99=percentile(otlp_load.latencies_ms, 0.99),
                busy_otlp=busy_otlp,
                cpu_calls_ms=worker_cpu["calls"],
                pg_calls_ms=pg_cpu,
                client_calls_ms=client_cpu,
                inproc_rate=inproc.rate,
                inproc_cpu_ms=inproc.cpu_ms,
                cpu_otlp_ms=worker_cpu["otlp"],
            )
            say(f"  accept: {load.accepted:,} records in {len(load.latencies_ms)} requests over {args.concurrency} "
                f"connections, {load.wall:.2f}s = {rnd.accept_rate:,.0f} rec/s, p50 {rnd.p50:.1f} ms, "
                f"p99 {rnd.p99:.1f} ms, other processes {busy_accept:.0%} CPU; checked: workers never loaded "
                f"chDB, outbox holds {counts['pending']} pending batches / {expected:,} records")  # fmt: skip
            say(f"  accept OTLP: {otlp_load.accepted:,} spans in {len(otlp_load.latencies_ms)} protobuf requests, "
                f"{otlp_load.wall:.2f}s = {rnd.otlp_rate:,.0f} spans/s ({rnd.otlp_rate / rnd.accept_rate:.0%} of "
                f"/v1/calls), p50 {rnd.otlp_p50:.1f} ms, p99 {rnd.otlp_p99:.1f} ms, other processes "
                f"{busy_otlp:.0%} CPU; checked: {otlp_counts['pending']} pending batches / {otlp_expected:,} "
                f"records in the outbox")  # fmt: skip
            say(f"  web worker CPU per request: OTLP {rnd.cpu_otlp_ms:.1f} ms, /v1/calls {rnd.cpu_calls_ms:.1f} ms "
                f"({rnd.cpu_calls_ms / rnd.cpu_otlp_ms:.0%}); per /v1/calls request PostgreSQL "
                f"{rnd.pg_calls_ms:.1f} ms, "
                f"the load generator {rnd.client_calls_ms:.1f} ms")  # fmt: skip
            say(f"  in process (no HTTP, {os.cpu_count()} processes): {inproc.records:,} records in {inproc.wall:.2f}s "
                f"= {inproc.rate:,.0f} rec/s, {inproc.cpu_ms:.1f} ms CPU a request, other processes "
                f"{busy_inproc:.0%} CPU")  # fmt: skip

            # 2. drain this backlog (gunicorn is down; this process owns chDB)
            watch.wait_idle(args.wait_idle, say)
            foreign0 = watch.foreign_seconds()
            drain = run_drain(counts["pending"], args.time_budget)
            rnd.busy_drain = watch.share(foreign0, drain.wall)
            in_ch += expected
            if drain.failed or drain.records != expected or ch_count("llm_calls") != in_ch:
                raise RuntimeError(f"drain incomplete: {drain}, llm_calls {ch_count('llm_calls')}")
            rnd.drain_rate = drain.records / drain.wall
            say(f"  drain: {drain.records:,} records in {drain.batches} batches, inserts of up to "
                f"{settings.OUTBOX_DRAIN_BATCHES} batches, {drain.wall:.2f}s = {rnd.drain_rate:,.0f} rec/s, "
                f"other processes {rnd.busy_drain:.0%} CPU")  # fmt: skip
            rounds.append(rnd)

        # 3. the ceiling: the last round's columns, bare client.insert, fresh tables
        t0 = time.perf_counter()
        groups = precompute_groups(expected)
        say(f"ceiling: precomputed {len(groups)} column groups ({sum(len(g[0]) for g in groups):,} rows) "
            f"in {time.perf_counter() - t0:.2f}s (untimed)")  # fmt: skip
        watch.wait_idle(args.wait_idle, say)
        foreign0, t0 = watch.foreign_seconds(), time.perf_counter()
        ceiling_rates = timed_ceiling(groups, args.ceiling_repeats)
        busy_ceiling = watch.share(foreign0, time.perf_counter() - t0)
        watch.stop()
        ceiling = statistics.median(ceiling_rates)
        say(
            "ceiling: " + ", ".join(f"{r:,.0f}" for r in ceiling_rates) + f" rec/s, other processes "
            f"{busy_ceiling:.0%} CPU"
        )

        med = statistics.median
        accept_rate = med(r.accept_rate for r in rounds)
        p50, p99 = med(r.p50 for r in rounds), med(r.p99 for r in rounds)
        drain_rate = med(r.drain_rate for r in rounds)
        e2e = med(1 / (1 / r.accept_rate + 1 / r.drain_rate) for r in rounds)
        otlp_rate = med(r.otlp_rate for r in rounds)
        otlp_share = med(r.otlp_rate / r.accept_rate for r in rounds)  # paired within each round
        otlp_p50, otlp_p99 = med(r.otlp_p50 for r in rounds), med(r.otlp_p99 for r in rounds)
        cpu_otlp, cpu_calls = med(r.cpu_otlp_ms for r in rounds), med(r.cpu_calls_ms for r in rounds)
        cpu_share = med(r.cpu_calls_ms / r.cpu_otlp_ms for r in rounds)  # the rate share were the workers CPU-bound
        bare = fmt_rate(ceiling) + " (bare insert)"
        inproc_rate = med(r.inproc_rate for r in rounds)
        inproc_share = med(r.accept_rate / r.inproc_rate for r in rounds)  # paired within each round
        worker, pg, client = (med(r.cpu_calls_ms for r in rounds), med(r.pg_calls_ms for r in rounds),
                              med(r.client_calls_ms for r in rounds))  # fmt: skip
        inproc_cpu = med(r.inproc_cpu_ms for r in rounds)
        rows = [
            ("accept (HTTP, " + label + ")", fmt_rate(accept_rate), fmt_rate(inproc_rate) + " (in process, no HTTP)",
             f"{inproc_share:.1%}", f">= {TARGET_ACCEPT:,.0f} rec/s", "yes" if accept_rate >= TARGET_ACCEPT else "NO"),
            (f"accept p50 per {args.batch_size}-record request", f"{p50:.1f} ms", "-", "-", "-", "-"),
            (f"accept p99 per {args.batch_size}-record request", f"{p99:.1f} ms", "-", "-",
             f"< {TARGET_P99_MS:.0f} ms", "yes" if p99 < TARGET_P99_MS else "NO"),
            (f"accept OTLP spans (protobuf, {args.batch_size}/request)", f"{otlp_rate:,.0f} spans/s",
             fmt_rate(accept_rate) + " (/v1/calls, same calls)", f"{otlp_share:.1%}",
             f">= {TARGET_OTLP_SHARE:.0%} of /v1/calls", "yes" if otlp_share >= TARGET_OTLP_SHARE else "NO"),
            (f"OTLP p50 per {args.batch_size}-span request", f"{otlp_p50:.1f} ms", f"{p50:.1f} ms (/v1/calls)",
             f"{otlp_p50 / p50:.2f}x", "-", "-"),
            (f"OTLP p99 per {args.batch_size}-span request", f"{otlp_p99:.1f} ms", f"{p99:.1f} ms (/v1/calls)",
             f"{otlp_p99 / p99:.2f}x", "-", "-"),
            (f"web worker CPU per {args.batch_size}-span OTLP request", f"{cpu_otlp:.1f} ms",
             f"{cpu_calls:.1f} ms (/v1/calls)", f"{cpu_share:.1%}", "-", "-"),
            (f"web worker CPU per {args.batch_size}-record request", f"{worker:.1f} ms",
             f"{inproc_cpu:.1f} ms (accept() in process)", f"{worker / inproc_cpu:.2f}x", "-", "-"),
            (f"PostgreSQL backends' CPU per {args.batch_size}-record request", f"{pg:.1f} ms", "-", "-", "-", "-"),
            (f"load generator's CPU per {args.batch_size}-record request", f"{client:.1f} ms", "-", "-", "-", "-"),
            *((f"  accept step: {step} (1 process, median)", f"{ms:.2f} ms", "-", "-", "-", "-")
              for step, ms in steps.items()),
            ("  accept() whole, 1 process: CPU / wall", f"{step_cpu:.2f} / {step_wall:.2f} ms", "-", "-", "-", "-"),
            ("drain into ClickHouse (drain_until_empty)", fmt_rate(drain_rate), bare, f"{drain_rate / ceiling:.1%}",
             f">= {TARGET_DRAIN_SHARE:.0%} of bare insert",
             "yes" if drain_rate / ceiling >= TARGET_DRAIN_SHARE else "NO"),
            ("end-to-end 1/(1/accept+1/drain)", fmt_rate(e2e), bare, f"{e2e / ceiling:.1%}",
             f">= {TARGET_SHARE:.0%} of ceiling", "yes" if e2e / ceiling >= TARGET_SHARE else "NO"),
        ]  # fmt: skip
        print()
        print(
            f"Meterline ingest bench: {args.rounds} rounds x {args.requests} requests x {args.batch_size} records, "
            f"{args.concurrency} connections, {label}, PostgreSQL {args.db} outbox, chDB, {os.cpu_count()} CPUs"
        )
        print(f"medians over rounds (accept rec/s per round: "
              f"{', '.join(f'{r.accept_rate:,.0f}' for r in rounds)}; OTLP spans/s: "
              f"{', '.join(f'{r.otlp_rate:,.0f}' for r in rounds)}; drain: "
              f"{', '.join(f'{r.drain_rate:,.0f}' for r in rounds)}); ceiling = median of {args.ceiling_repeats} "
              f"bare inserts of the last round's {expected:,} rows")  # fmt: skip
        print_table(rows)
        busy = max(med(r.busy_accept for r in rounds), med(r.busy_otlp for r in rounds),
                   med(r.busy_drain for r in rounds), busy_ceiling)  # fmt: skip
        print(
            f"other processes and hypervisor steal took {med(r.busy_accept for r in rounds):.0%} (accept), "
            f"{med(r.busy_otlp for r in rounds):.0%} (OTLP accept), "
            f"{med(r.busy_drain for r in rounds):.0%} (drain), {busy_ceiling:.0%} (ceiling) of the CPUs"
            + ("  <- the machine was shared: figures are pessimistic, rerun when idle" if busy > 0.10 else "")
        )
        return 0
    finally:
        if server is not None:
            server.stop()
        try:
            from django.db import connections

            connections.close_all()
        except Exception as exc:  # noqa: BLE001 - cleanup goes on whatever failed
            print(f"[bench] closing DB connections: {exc}", file=sys.stderr)
        try:
            from ledger.clickhouse.client import get_clickhouse

            get_clickhouse().close()
        except Exception as exc:  # noqa: BLE001
            print(f"[bench] closing chDB: {exc}", file=sys.stderr)
        if not args.keep_db:
            try:
                drop_database(args.db)
            except Exception as exc:  # noqa: BLE001
                print(f"[bench] dropping {args.db}: {exc}", file=sys.stderr)
            shutil.rmtree(env.tmp, ignore_errors=True)
        else:
            print(f"[bench] kept database {args.db} and {env.tmp}")


if __name__ == "__main__":
    sys.exit(main())
