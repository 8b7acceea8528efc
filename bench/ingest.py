"""Ingest benchmark: POST /v1/calls through gunicorn, the outbox drain, and the raw insert ceiling.

One run, three figures, against the real stores on this machine, in ``--rounds`` rounds (medians):

1. accept  — records/s through gunicorn (sync workers: fastest here; gthread is a flag away) from
   several loopback connections in this process, 500-record JSON batches of realistic traffic
   (``ops.demo``: mixed features, models, customers, retries, cache hits, tiers), a fixed number of
   requests; p50/p99 request latency. The web workers only write the PostgreSQL outbox (no
   ``CELERY_BROKER_URL``), which is checked after each round: no worker mapped chDB, ``llm_calls``
   did not grow, and every accepted record is a pending outbox row.
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

TARGET_ACCEPT = 50_000.0  # records/s
TARGET_P99_MS = 100.0  # per 500-record request
TARGET_DRAIN = 100_000.0  # records/s
TARGET_SHARE = 0.25  # end-to-end / ceiling

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


def setup_stores() -> str:
    """Migrate both stores, create a project and an ingest key; return the raw key."""
    import django
    from django.core.management import call_command

    django.setup()
    quiet = io.StringIO()
    with redirect_stdout(quiet):
        call_command("migrate", interactive=False, verbosity=0)
        call_command("migrate_clickhouse")
        call_command("create_project", "bench")
    out = io.StringIO()
    with redirect_stdout(out):
        call_command("create_api_key", project="bench", scopes="ingest", name="bench")
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


def make_bodies(requests: int, batch_size: int, seed: int) -> list[bytes]:
    it = records_as_json(requests * batch_size, seed)
    bodies = []
    for _ in range(requests):
        calls = [next(it) for _ in range(batch_size)]
        bodies.append(json.dumps({"calls": calls}, separators=(",", ":")).encode())
    return bodies


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


def post_all(port: int, key: str, bodies: Sequence[bytes], concurrency: int, timeout: float) -> LoadResult:
    """Send every body once over ``concurrency`` keep-alive connections; a global deadline bounds it."""
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
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
                    conn.request("POST", "/v1/calls", body=bodies[i], headers=headers)
                    resp = conn.getresponse()
                    data = resp.read()
                except (OSError, http.client.HTTPException) as exc:
                    conn.close()  # reconnects on the next request
                    with lock:
                        errors.append(f"request {i}: {type(exc).__name__}: {exc}")
                    continue
                elapsed = (time.perf_counter() - t0) * 1000
                with lock:
                    latencies.append(elapsed)
                    if resp.status == 202:
                        accepted[0] += json.loads(data)["accepted"]
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
    """CPU used by processes that are not this benchmark's: this machine is shared (test runs of
    other sessions), and two busy cores make every figure here noisy. Ours = this process, its
    descendants (gunicorn) and PostgreSQL backends of the bench database; PostgreSQL's own
    background processes count as neither."""

    def __init__(self, db_name: str, interval: float = 0.2, max_seconds: float = 3600) -> None:
        self.db_name = db_name
        self.interval = interval
        self.max_seconds = max_seconds
        self.hz = os.sysconf("SC_CLK_TCK")
        self._last: dict[int, int] = {}
        self._foreign = 0.0
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


def outbox_counts() -> dict[str, int]:
    from django.db.models import Count, Sum

    from ingest.models import Batch

    rows = Batch.objects.values("status").annotate(n=Count("id"), records=Sum("record_count"))
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
    p.add_argument("--workers", type=int, default=4, help="gunicorn workers (sync x4 measured fastest here)")
    p.add_argument("--worker-class", choices=("sync", "gthread"), default="sync")
    p.add_argument("--threads", type=int, default=2, help="threads per gthread worker")
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
            bodies = make_bodies(args.requests + warmup, args.batch_size, args.seed + r)
            kb = sum(map(len, bodies)) / len(bodies) / 1000
            say(f"round {r + 1}/{args.rounds}: built {len(bodies)} bodies of {args.batch_size} records "
                f"({kb:.0f} kB each) in {time.perf_counter() - t0:.1f}s")  # fmt: skip

            # 1. accept through gunicorn
            server = start_gunicorn(env, args.workers, args.worker_class, args.threads)
            watch.wait_idle(args.wait_idle, say)
            warm = post_all(server.port, key, bodies[:warmup], min(args.concurrency, warmup), 120)
            if warm.errors:
                raise RuntimeError(f"warm-up failed: {warm.errors[:3]}")
            foreign0 = watch.foreign_seconds()
            load = post_all(server.port, key, bodies[warmup:], args.concurrency, args.time_budget)
            busy_accept = watch.share(foreign0, load.wall)
            del bodies
            if load.errors:
                raise RuntimeError(f"{len(load.errors)} failed requests, e.g. {load.errors[:3]}")
            # The accept path must not have touched ClickHouse: no worker loaded chDB, no new rows,
            # and every accepted record waits in the outbox.
            touched = chdb_mapped([*server.worker_pids(), server.proc.pid])
            server.stop()
            server = None
            counts = outbox_counts()
            expected = warm.accepted + load.accepted
            if touched or ch_count("llm_calls") != in_ch or counts.get("pending_records") != expected:
                raise RuntimeError(f"accept path touched ClickHouse: chdb in {touched}, outbox {counts}")
            rnd = Round(
                accept_rate=load.accepted / load.wall,
                p50=percentile(load.latencies_ms, 0.5),
                p99=percentile(load.latencies_ms, 0.99),
                accepted=load.accepted,
                busy_accept=busy_accept,
            )
            say(f"  accept: {load.accepted:,} records in {len(load.latencies_ms)} requests over {args.concurrency} "
                f"connections, {load.wall:.2f}s = {rnd.accept_rate:,.0f} rec/s, p50 {rnd.p50:.1f} ms, "
                f"p99 {rnd.p99:.1f} ms, other processes {busy_accept:.0%} CPU; checked: workers never loaded "
                f"chDB, outbox holds {counts['pending']} pending batches / {expected:,} records")  # fmt: skip

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
        bare = fmt_rate(ceiling) + " (bare insert)"
        rows = [
            ("accept (HTTP, " + label + ")", fmt_rate(accept_rate), "-", "-", f">= {TARGET_ACCEPT:,.0f} rec/s",
             "yes" if accept_rate >= TARGET_ACCEPT else "NO"),
            (f"accept p50 per {args.batch_size}-record request", f"{p50:.1f} ms", "-", "-", "-", "-"),
            (f"accept p99 per {args.batch_size}-record request", f"{p99:.1f} ms", "-", "-",
             f"< {TARGET_P99_MS:.0f} ms", "yes" if p99 < TARGET_P99_MS else "NO"),
            ("drain into ClickHouse (drain_until_empty)", fmt_rate(drain_rate), bare, f"{drain_rate / ceiling:.1%}",
             f">= {TARGET_DRAIN:,.0f} rec/s", "yes" if drain_rate >= TARGET_DRAIN else "NO"),
            ("end-to-end 1/(1/accept+1/drain)", fmt_rate(e2e), bare, f"{e2e / ceiling:.1%}",
             f">= {TARGET_SHARE:.0%} of ceiling", "yes" if e2e / ceiling >= TARGET_SHARE else "NO"),
        ]  # fmt: skip
        print()
        print(
            f"Meterline ingest bench: {args.rounds} rounds x {args.requests} requests x {args.batch_size} records, "
            f"{args.concurrency} connections, {label}, PostgreSQL {args.db} outbox, chDB, {os.cpu_count()} CPUs"
        )
        print(f"medians over rounds (accept rec/s per round: "
              f"{', '.join(f'{r.accept_rate:,.0f}' for r in rounds)}; drain: "
              f"{', '.join(f'{r.drain_rate:,.0f}' for r in rounds)}); ceiling = median of {args.ceiling_repeats} "
              f"bare inserts of the last round's {expected:,} rows")  # fmt: skip
        print_table(rows)
        busy = max(med(r.busy_accept for r in rounds), med(r.busy_drain for r in rounds), busy_ceiling)
        print(
            f"other processes used {med(r.busy_accept for r in rounds):.0%} (accept), "
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
