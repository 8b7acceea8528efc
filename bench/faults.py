"""Fault harness: each fault of issue 11 reproduced against real processes, and what it cost.

    .venv/bin/python bench/faults.py [--quick] [--only NAME[,NAME]] [--keep]

Every fault runs on its own throwaway stores: a database copied from a migrated template in a
private PostgreSQL cluster (``pg_createcluster`` on a free port, dropped at the end; the machine's
shared cluster is never touched), a copy of a migrated chDB directory, and for the Celery faults a
private redis-server (broker and cache). Clients send realistic batches over loopback and retry
like the SDK: the same body with the same ``Idempotency-Key`` after a connection error, a 5xx, or
a 503/429 after its ``Retry-After``. Records accepted = the ``accepted`` of the 202 answers, once
per key (a replayed answer is not counted again).

Afterwards, with every process stopped, the chDB directory is opened by this harness (in a child
process) and counted: ``count()`` and ``uniqExact(event_id)`` of ``llm_calls FINAL`` and the rollup
totals. lost = accepted records that are not in ClickHouse and not waiting in the outbox; late =
accepted records still waiting (pending/processing) when the bounded wait ended; doubled = rows
beyond one per event id. "visible s" = the worst, over accepted batches, of the time from
max(recovery, its 202) to its outbox ``done_at`` (raw rows written), and for rollups the time from
max(recovery, the last 202) until no dirty hour was left; polled every 0.5 s, bounded by ``--wait``.

chDB is single-process: in the Celery faults exactly one worker process (``--pool solo``) opens the
chDB directory; gunicorn and beat get a ClickHouse URL nobody listens on (accepting only writes the
outbox). The harness exits 0 whatever it measured (it is a benchmark); misses are marked ``MISS``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# Run as ``python bench/faults.py``, this directory comes first on sys.path and bench/ingest.py would
# shadow the ``ingest`` package: put the repository root there instead.
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from bench._procs import (  # noqa: E402 - after the path fix above
    VENV_BIN,
    PgCluster,
    Proc,
    Procs,
    RedisServer,
    Tmpfs,
    children_of,
    chown_postgres,
    free_port,
    http_ok,
    wait_for,
)

PYTHON = str(VENV_BIN / "python")
TEMPLATE_DB = "faults_template"
TARGET_VISIBLE_S = 30.0
POLL_S = 0.5
SECRET = "faults-bench-only-secret"  # noqa: S105 - one signing key for every process of this throwaway run
FEATURES = ("chat-assistant", "support-triage", "doc-extract", "code-review", "search-rerank", "email-draft")
MODELS = (("openai", "gpt-4o"), ("openai", "gpt-4o-mini"), ("anthropic", "claude-sonnet-4-5"),
          ("anthropic", "claude-haiku-4-5"), ("openai", "o3"))  # fmt: skip


def say(msg: str) -> None:
    print(f"[faults {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --- requests and the client ------------------------------------------------------------------


@dataclass(frozen=True)
class Req:
    key: str  # the Idempotency-Key, reused by every retry of this body
    body: bytes
    ids: tuple[str, ...]
    tokens: int


def make_requests(count: int, size: int, seed: int, hours: int = 72) -> list[Req]:
    """Valid records spread over the last ``hours`` (so a drain dirties many rollup hours)."""
    rng = random.Random(seed)
    now_ms = int(time.time() * 1000) - 60_000
    reqs = []
    for _ in range(count):
        calls: list[dict[str, Any]] = []
        tokens = 0
        for _ in range(size):
            provider, model = rng.choice(MODELS)
            inp, out = rng.randint(50, 6000), rng.randint(5, 1500)
            tokens += inp + out
            calls.append({
                "event_id": uuid.UUID(int=rng.getrandbits(128), version=4).hex,
                "timestamp": now_ms - rng.randrange(hours * 3_600_000),
                "provider": provider, "model": model, "feature": rng.choice(FEATURES),
                "customer_id": f"cust-{rng.randrange(300)}", "environment": "prod",
                "input_tokens": inp, "cache_read_tokens": rng.choice((0, 0, inp // 2)), "output_tokens": out,
                "latency_ms": rng.randint(200, 9000), "status": "ok",
            })  # fmt: skip
        body = json.dumps({"calls": calls}, separators=(",", ":")).encode()
        reqs.append(Req(str(uuid.UUID(int=rng.getrandbits(128), version=4)), body,
                        tuple(c["event_id"] for c in calls), tokens))  # fmt: skip
    return reqs


@dataclass
class Acked:
    batch_id: str
    accepted: int
    at: float  # wall clock of the first 202


class Load:
    """Client threads sending ``reqs`` to 127.0.0.1:``port``, each retried until acknowledged or
    until ``give_up_at``; an optional rate cap (requests/s over all threads)."""

    def __init__(self, port: int, api_key: str, reqs: Sequence[Req], concurrency: int, rate: float | None) -> None:
        self.port, self.api_key, self.reqs, self.concurrency, self.rate = port, api_key, reqs, concurrency, rate
        self.lock = threading.Lock()
        self.acked: dict[str, Acked] = {}
        self.statuses: Counter[str] = Counter()  # "phase:status" -> count
        self.phase = "before"
        self.bad_5xx: list[str] = []  # 5xx answers other than 503 with Retry-After
        self.conn_errors = 0
        self.replays = 0
        self.unacked: list[Req] = []
        self.refused: list[str] = []  # 4xx answers to valid bodies (none expected)
        self.latency: dict[str, list[float]] = {}
        self._next = iter(range(len(reqs)))
        self._next_send = time.monotonic()
        self.stop_new = threading.Event()
        self.give_up_at = time.monotonic() + 3600.0
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(concurrency)]

    def start(self) -> Load:
        for t in self.threads:
            t.start()
        return self

    def accepted(self) -> int:
        with self.lock:
            return sum(a.accepted for a in self.acked.values())

    def join(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for t in self.threads:
            t.join(max(0.0, deadline - time.monotonic()))

    def count(self, status: str) -> int:
        with self.lock:
            return sum(n for k, n in self.statuses.items() if k.endswith(f":{status}"))

    def _take(self) -> Req | None:
        with self.lock:
            if self.stop_new.is_set():
                return None
            i = next(self._next, None)
            if i is None:
                return None
            if self.rate:
                wait = self._next_send - time.monotonic()
                self._next_send = max(self._next_send, time.monotonic()) + 1.0 / self.rate
            else:
                wait = 0.0
        if wait > 0:
            time.sleep(wait)
        return self.reqs[i]

    def _run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            while (req := self._take()) is not None:
                if not self._send_until_acked(conn, req):
                    with self.lock:
                        self.unacked.append(req)
        finally:
            conn.close()

    def _send_until_acked(self, conn: http.client.HTTPConnection, req: Req) -> bool:
        headers = {"Authorization": f"Bearer {self.api_key}", "Content-Type": "application/json",
                   "Idempotency-Key": req.key}  # fmt: skip
        while time.monotonic() < self.give_up_at:
            t0 = time.monotonic()
            try:
                conn.request("POST", "/v1/calls", body=req.body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
            except (OSError, http.client.HTTPException):
                conn.close()
                with self.lock:
                    self.conn_errors += 1
                    self.statuses[f"{self.phase}:conn-error"] += 1
                time.sleep(0.3)
                continue
            elapsed = time.monotonic() - t0
            retry_after = resp.getheader("Retry-After")
            label = str(resp.status) + ("+RA" if retry_after and resp.status in (429, 503) else "")
            with self.lock:
                self.statuses[f"{self.phase}:{label}"] += 1
                self.latency.setdefault(self.phase, []).append(elapsed)
            if resp.status == 202:
                answer = json.loads(data)
                with self.lock:
                    self.replays += resp.getheader("Idempotent-Replayed") == "true"
                    self.acked[req.key] = Acked(answer["batch_id"], int(answer["accepted"]), time.time())
                return True
            if resp.status >= 500 and not (resp.status == 503 and retry_after):
                with self.lock:
                    self.bad_5xx.append(f"{resp.status} {data[:160]!r}")
                time.sleep(1.0)
            elif resp.status in (429, 503):
                wait = retry_after or ""
                time.sleep(min(float(wait) if wait.isdigit() else 1.0, 5.0))
            else:  # a 4xx for a valid body: noted, and this body is given up
                with self.lock:
                    self.refused.append(f"{resp.status} {data[:160]!r}")
                return False
            conn.close()
        return False


def p50(load: Load, phase: str) -> float:
    with load.lock:
        lat = sorted(load.latency.get(phase, []))
    return lat[len(lat) // 2] if lat else 0.0


def phase_summary(load: Load, phase: str) -> str:
    with load.lock:
        items = sorted((k.split(":", 1)[1], n) for k, n in load.statuses.items() if k.startswith(f"{phase}:"))
        lat = sorted(load.latency.get(phase, []))
    text = ", ".join(f"{s} x{n}" for s, n in items) or "no answers"
    if lat:
        text += f" (answer p50 {lat[len(lat) // 2] * 1000:.0f} ms, max {lat[-1] * 1000:.0f} ms)"
    return text


# --- the stores ---------------------------------------------------------------------------------


def pg_query(url: str, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(url, connect_timeout=3, autocommit=True) as conn:
        cursor = conn.execute(sql, params)
        return list(cursor.fetchall()) if cursor.description is not None else []


def base_env(var_dir: Path, database_url: str, clickhouse_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR")}
    env.update({
        "DJANGO_SETTINGS_MODULE": "config.settings", "PYTHONPATH": str(ROOT), "METERLINE_VAR_DIR": str(var_dir),
        "DATABASE_URL": database_url, "CLICKHOUSE_URL": clickhouse_url, "SECRET_KEY": SECRET, "DEBUG": "false",
        "LOG_LEVEL": "INFO", "PYTHONUNBUFFERED": "1",
    })  # fmt: skip
    env.update(extra)
    return env


def run_child(mode: str, env: dict[str, str], *args: str, timeout: float = 300) -> dict[str, Any]:
    """Run this file in ``mode`` in a child process with ``env``; its last stdout line is JSON."""
    out = subprocess.run(
        [PYTHON, str(Path(__file__).resolve()), mode, *args],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    if out.returncode != 0:
        raise RuntimeError(f"{mode} failed ({out.returncode}): {out.stderr[-3000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def child_setup() -> dict[str, Any]:
    """(child) Migrate both stores, create the project and a key with ingest and read scopes."""
    import io
    from contextlib import redirect_stdout

    import django

    django.setup()
    from django.core.management import call_command

    with redirect_stdout(io.StringIO()):
        call_command("migrate", interactive=False, verbosity=0)
        call_command("migrate_clickhouse")
        call_command("create_project", "faults")
    out = io.StringIO()
    with redirect_stdout(out):
        call_command("create_api_key", project="faults", scopes="ingest,read", name="faults")
    from tenancy.models import Project

    return {"key": out.getvalue().strip().splitlines()[-1], "project": Project.objects.get(name="faults").pk}


def child_count(project: str, ids_file: str) -> dict[str, Any]:
    """(child) Count what ClickHouse holds for the project, and which accepted ids it lacks."""
    import django

    django.setup()
    from ledger.clickhouse.client import get_clickhouse

    ch = get_clickhouse()
    p = {"p": int(project)}
    final, distinct, tokens = ch.query(
        "SELECT count(), uniqExact(event_id), sum(input_tokens) + sum(output_tokens) FROM llm_calls FINAL "
        "WHERE project_id = {p:UInt64}",
        p,
    ).result_rows[0]
    rows = ch.query("SELECT count() FROM llm_calls WHERE project_id = {p:UInt64}", p).result_rows[0][0]
    r_calls, r_tokens = ch.query(
        "SELECT sum(calls), sum(input_tokens) + sum(output_tokens) FROM rollup_hour FINAL "
        "WHERE project_id = {p:UInt64}",
        p,
    ).result_rows[0]
    present = {
        r[0] for r in ch.query("SELECT DISTINCT event_id FROM llm_calls WHERE project_id = {p:UInt64}", p).result_rows
    }
    accepted = set(Path(ids_file).read_text().split())
    return {"final": int(final), "distinct": int(distinct), "tokens": int(tokens or 0), "rows": int(rows),
            "rollup_calls": int(r_calls or 0), "rollup_tokens": int(r_tokens or 0),
            "missing": sorted(accepted - present), "unacked_present": len(present - accepted)}  # fmt: skip


# --- one fault's stack ------------------------------------------------------------------------


@dataclass
class Run:
    """Shared by every fault: the private cluster, the migrated templates, the key, a var dir."""

    tmp: Path
    cluster: PgCluster
    template_ch: Path
    var_dir: Path
    api_key: str
    project: int
    quick: bool
    wait: float
    mounts: list[Tmpfs] = field(default_factory=list)


@dataclass
class Result:
    name: str
    how: str
    accepted: int = 0
    counted: int = 0
    lost: int = 0
    doubled: int = 0
    late: int = 0
    dead: int = 0
    raw_s: float | None = None
    rollup_s: float | None = None
    bad_5xx: int = 0
    notes: list[str] = field(default_factory=list)
    error: str | None = None

    def misses(self) -> list[str]:
        if self.error:
            return ["did not run"]
        out = []
        if self.lost:
            out.append("lost")
        if self.doubled:
            out.append("doubled")
        if self.bad_5xx:
            out.append("5xx")
        if self.late or self.dead or self.raw_s is None or self.raw_s > TARGET_VISIBLE_S:
            out.append("late")
        elif self.rollup_s is None or self.rollup_s > TARGET_VISIBLE_S:
            out.append("rollups late")
        return out


class Stack:
    """One fault's database, chDB directory, ports and processes."""

    def __init__(self, run: Run, name: str) -> None:
        self.run, self.name = run, name
        self.dir = run.tmp / name
        self.dir.mkdir()
        self.db = f"faults_{name.replace('-', '_')}"
        self.db_url = run.cluster.url(self.db)
        self.chdb = self.dir / "clickhouse"
        self.procs = Procs(self.dir)
        self.web_port = free_port()
        self.no_clickhouse = f"http://127.0.0.1:{free_port()}"  # nobody listens there
        self.redis: RedisServer | None = None
        admin = run.cluster.url("postgres")
        pg_query(admin, f'CREATE DATABASE "{self.db}" TEMPLATE "{TEMPLATE_DB}"')  # a bench-made name
        shutil.copytree(run.template_ch, self.chdb, symlinks=True)  # data/ links into store/, relative

    def env(self, clickhouse_url: str | None = None, broker: bool = False) -> dict[str, str]:
        extra = {}
        if broker and self.redis is not None:
            extra = {"CELERY_BROKER_URL": self.redis.url(0), "CACHE_URL": self.redis.url(1)}
            if clickhouse_url is None:  # the one worker that owns the chDB directory (web and beat never open it)
                extra["METERLINE_ALLOW_CHDB_WITH_BROKER"] = "true"
        return base_env(self.run.var_dir, self.db_url, clickhouse_url or f"chdb://{self.chdb}", **extra)

    # embedded
    def start_serve(self, clickhouse_url: str | None = None) -> Proc:
        proc = self.procs.start("serve", [PYTHON, "manage.py", "serve", "--host", "127.0.0.1", "--port",
                                          str(self.web_port)], self.env(clickhouse_url))  # fmt: skip
        if not wait_for(lambda: http_ok(self.web_port) or not proc.alive(), 90, 0.2) or not proc.alive():
            raise RuntimeError(f"serve did not start:\n{proc.tail()}")
        return proc

    # production shape: gunicorn + one Celery worker (owns chDB) + beat, on a private Redis
    def start_redis(self) -> None:
        self.redis = RedisServer(self.procs, free_port(), self.dir / "redis")
        self.redis.start()

    def start_web(self) -> Proc:
        cmd = [str(VENV_BIN / "gunicorn"), "config.wsgi:application", "--bind", f"127.0.0.1:{self.web_port}",
               "--workers", "2", "--threads", "4", "--timeout", "60", "--worker-tmp-dir", "/dev/shm",  # noqa: S108 - as the Dockerfile
               "--log-level", "warning"]  # fmt: skip
        proc = self.procs.start("gunicorn", cmd, self.env(self.no_clickhouse, broker=True))
        ok = wait_for(lambda: not proc.alive() or (http_ok(self.web_port) and len(children_of(proc.pid)) >= 2), 90)
        if not ok or not proc.alive():
            raise RuntimeError(f"gunicorn did not start:\n{proc.tail()}")
        return proc

    def start_worker(self) -> Proc:
        cmd = [str(VENV_BIN / "celery"), "-A", "config", "worker", "--pool", "solo", "-Q",
               "ingest,rollup,alerts,default", "--loglevel", "INFO", "--without-gossip", "--without-mingle",
               "-n", f"faults-{self.name}@%h"]  # fmt: skip
        proc = self.procs.start("worker", cmd, self.env(broker=True))
        mark = proc.log.stat().st_size if proc.log.exists() else 0

        def ready() -> bool:
            return not proc.alive() or " ready." in proc.log.read_text(errors="replace")[mark:]

        if not wait_for(ready, 90, 0.2) or not proc.alive():
            raise RuntimeError(f"the Celery worker did not start:\n{proc.tail()}")
        return proc

    def start_beat(self) -> Proc:
        cmd = [str(VENV_BIN / "celery"), "-A", "config", "beat", "-s", str(self.dir / "beat-schedule"),
               "--loglevel", "INFO"]  # fmt: skip
        return self.procs.start("beat", cmd, self.env(self.no_clickhouse, broker=True))

    def start_celery_stack(self) -> tuple[Proc, Proc, Proc]:
        self.start_redis()
        return self.start_web(), self.start_worker(), self.start_beat()

    def close(self, keep: bool) -> None:
        self.procs.stop_all()
        if not keep:
            try:
                pg_query(self.run.cluster.url("postgres"), f'DROP DATABASE IF EXISTS "{self.db}" WITH (FORCE)')
            except Exception as exc:  # noqa: BLE001 - clean-up goes on
                say(f"dropping {self.db}: {type(exc).__name__}: {exc}")

    # the outbox, seen from PostgreSQL
    def outbox(self) -> dict[str, int]:
        rows = pg_query(self.db_url, "SELECT status, count(*), coalesce(sum(record_count), 0) FROM ingest_batch "
                                     "WHERE record_count > 0 GROUP BY status")  # fmt: skip
        out: dict[str, int] = {}
        for status, n, records in rows:
            out[status], out[f"{status}_records"] = int(n), int(records)
        return out

    def processing(self) -> int:
        return int(pg_query(self.db_url, "SELECT count(*) FROM ingest_batch WHERE status = 'processing'")[0][0])

    def rollup_claimed(self) -> int:
        return int(pg_query(self.db_url, "SELECT count(*) FROM ledger_dirtybucket WHERE claim IS NOT NULL")[0][0])

    def log_lines(self, *needles: str) -> int:
        n = 0
        for log in self.dir.glob("*.log"):
            text = log.read_text(errors="replace")
            n += sum(text.count(needle) for needle in needles)
        return n


# --- measuring ----------------------------------------------------------------------------------


def wait_visible(stack: Stack, load: Load, t0: float, bound: float) -> tuple[float | None, float | None]:
    """After the load ended: seconds (from max(recovery, each 202)) until every acknowledged batch was
    done, and (from max(recovery, the last 202)) until no dirty rollup hour was left."""
    with load.lock:
        acked = dict(load.acked)
    ids = [a.batch_id for a in acked.values()]
    last_ack = max((a.at for a in acked.values()), default=t0)
    start = max(t0, last_ack)
    deadline = time.monotonic() + max(0.0, bound - (time.time() - start))
    raw_s: float | None = None
    rollup_s: float | None = None
    while True:
        now = time.time()
        try:
            if raw_s is None:
                rows = pg_query(stack.db_url, "SELECT id::text, done_at FROM ingest_batch WHERE id = ANY(%s::uuid[]) "
                                              "AND status = 'done'", (ids,))  # fmt: skip
                if len(rows) == len(ids):
                    done = {i: d.timestamp() for i, d in rows}
                    raw_s = max((max(0.0, done[a.batch_id] - max(t0, a.at)) for a in acked.values()), default=0.0)
            if raw_s is not None:
                dirty = int(pg_query(stack.db_url, "SELECT count(*) FROM ledger_dirtybucket")[0][0])
                if dirty == 0:
                    rollup_s = max(0.0, now - start)
                    return raw_s, rollup_s
        except Exception:  # noqa: BLE001, S110 - a store still coming back: poll again
            pass
        if time.monotonic() >= deadline:
            return raw_s, rollup_s
        time.sleep(POLL_S)


def usage_calls(stack: Stack, api_key: str) -> int | None:
    """Calls the usage API reports over the records' time range (embedded mode: serve reads chDB)."""
    start = (datetime.now(UTC) - timedelta(days=4)).strftime("%Y-%m-%dT%H:00:00Z")
    end = (datetime.now(UTC) + timedelta(hours=2)).strftime("%Y-%m-%dT%H:00:00Z")
    conn = http.client.HTTPConnection("127.0.0.1", stack.web_port, timeout=30)
    try:
        conn.request("GET", f"/v1/usage?from={start}&to={end}&granularity=day&metrics=calls",
                     headers={"Authorization": f"Bearer {api_key}"})  # fmt: skip
        resp = conn.getresponse()
        data = resp.read()
        if resp.status != 200:
            return None
        return sum(int(row.get("calls", 0)) for row in json.loads(data)["data"])
    except (OSError, http.client.HTTPException, ValueError, KeyError):
        return None
    finally:
        conn.close()


def settle(stack: Stack, load: Load, result: Result, t0: float) -> None:
    """Let the clients finish, wait (bounded) for visibility, stop everything, count."""
    load.join(120)  # the rest of the load goes on after the recovery (bounded)
    load.stop_new.set()
    load.give_up_at = time.monotonic() + 30
    load.join(45)
    result.raw_s, result.rollup_s = wait_visible(stack, load, t0, stack.run.wait)
    if stack.procs.started and stack.procs.started[0].name == "serve" and stack.procs.started[-1].alive():
        calls = usage_calls(stack, stack.run.api_key)
        result.notes.append(f"GET /v1/usage sums {calls if calls is not None else '(no answer)'} calls")
    unacked_ids = sum(len(r.ids) for r in load.unacked)
    if load.unacked:
        result.notes.append(f"{len(load.unacked)} request(s) ({unacked_ids} records) never acknowledged")
    stack.procs.stop_all()
    count_into(stack, load, result)


def count_into(stack: Stack, load: Load, result: Result) -> None:
    with load.lock:
        acked = dict(load.acked)
        by_key = {r.key: r for r in load.reqs}
        result.bad_5xx = len(load.bad_5xx)
        if load.bad_5xx:
            result.notes.append(f"5xx: {Counter(s.split(' ', 1)[0] for s in load.bad_5xx)}; e.g. {load.bad_5xx[0]}")
        if load.refused:
            result.notes.append(f"{len(load.refused)} valid bodies refused, e.g. {load.refused[0]}")
    result.accepted = sum(a.accepted for a in acked.values())
    accepted_ids = [i for k in acked for i in by_key[k].ids]
    if result.accepted != len(accepted_ids):
        result.notes.append(f"202 answers accepted {result.accepted} of {len(accepted_ids)} valid records sent")
    ids_file = stack.dir / "accepted-ids.txt"
    ids_file.write_text("\n".join(accepted_ids))
    counts = run_child("--_count", stack.env(), str(stack.run.project), str(ids_file))
    result.counted = counts["final"]
    result.doubled = counts["final"] - counts["distinct"]
    missing = set(counts["missing"])
    # Missing records whose batch still waits in the outbox are late, not lost.
    batch_of = {i: acked[k].batch_id for k in acked for i in by_key[k].ids}
    waiting_batches = {b for (b,) in pg_query(stack.db_url, "SELECT id::text FROM ingest_batch WHERE status IN "
                                                            "('pending', 'processing')")}  # fmt: skip
    dead = pg_query(stack.db_url, "SELECT count(*), coalesce(sum(record_count), 0) FROM ingest_batch "
                                  "WHERE status = 'dead'")[0]  # fmt: skip
    result.dead = int(dead[1])
    result.late = sum(1 for i in missing if batch_of.get(i) in waiting_batches)
    result.lost = len(missing) - result.late
    if dead[0]:
        result.notes.append(f"{dead[0]} batch(es) / {dead[1]} records DEAD")
    if result.late:
        leased = pg_query(stack.db_url, "SELECT status, count(*), max(attempts) FROM ingest_batch WHERE status IN "
                                        "('pending', 'processing') GROUP BY status")  # fmt: skip
        result.notes.append("still in the outbox: " + ", ".join(f"{s} {n} (attempts<={a})" for s, n, a in leased))
    expected_tokens = sum(by_key[k].tokens for k in acked)
    if counts["distinct"] == len(accepted_ids) and counts["tokens"] != expected_tokens:
        result.notes.append(f"raw tokens {counts['tokens']} != sent {expected_tokens}")
    if counts["rollup_calls"] != counts["final"] or counts["rollup_tokens"] != counts["tokens"]:
        result.notes.append(f"rollups: {counts['rollup_calls']} calls / {counts['rollup_tokens']} tokens vs raw "
                            f"{counts['final']} / {counts['tokens']}")  # fmt: skip
    else:
        result.notes.append("rollups = raw (calls and tokens)")
    if counts["rows"] != counts["final"]:
        result.notes.append(f"{counts['rows'] - counts['final']} duplicate raw rows collapsed by FINAL")
    if counts["unacked_present"]:
        result.notes.append(f"{counts['unacked_present']} records in ClickHouse were never acknowledged")


# --- the faults ---------------------------------------------------------------------------------


@dataclass
class Plan:
    requests: int
    size: int
    concurrency: int
    rate: float | None  # requests/s; None: as fast as the clients go


def plan(run: Run, kind: str) -> Plan:
    q = run.quick
    if kind == "burst":  # kill faults: a backlog, so the kill lands mid-work
        return Plan(80 if q else 200, 250, 4, None)
    # outage faults: a steady stream over the outage
    return Plan(90 if q else 200, 200, 3, 6.0 if q else 8.0)


def trigger(predicate: Callable[[], bool], timeout: float) -> bool:
    return wait_for(predicate, timeout, 0.02)


def after_share(load: Load, share: float) -> Callable[[], bool]:
    total = sum(len(r.ids) for r in load.reqs)
    return lambda: load.accepted() >= share * total


def fault_serve_kill(run: Run, stack: Stack, result: Result) -> None:
    p = plan(run, "burst")
    serve = stack.start_serve()
    load = Load(stack.web_port, run.api_key, make_requests(p.requests, p.size, 1), p.concurrency, p.rate).start()
    enough = after_share(load, 0.3)
    caught = trigger(lambda: enough() and stack.processing() > 0, 60)
    load.phase = "outage"
    before = stack.outbox()
    serve.kill9()
    result.notes.append(f"killed {'mid-drain' if caught else 'NOT caught mid-drain'}: outbox then {before}")
    time.sleep(1.0)
    t0 = time.time()
    stack.procs.started.remove(serve)
    stack.start_serve()
    load.phase = "after"
    result.notes.append(f"restart to /healthz {time.time() - t0:.1f}s; clients while down: "
                        f"{phase_summary(load, 'outage')}")  # fmt: skip
    settle(stack, load, result, t0)


def fault_worker_kill(run: Run, stack: Stack, result: Result, mid: str) -> None:
    p = plan(run, "burst")
    _, worker, _ = stack.start_celery_stack()
    load = Load(stack.web_port, run.api_key, make_requests(p.requests, p.size, 2), p.concurrency, p.rate).start()
    enough = after_share(load, 0.3)
    busy = stack.processing if mid == "drain" else stack.rollup_claimed
    caught = trigger(lambda: enough() and busy() > 0, 90)
    load.phase = "outage"
    state = stack.outbox()
    claimed = stack.rollup_claimed()
    worker.kill9()
    result.notes.append(f"killed {'mid-' + mid if caught else 'NOT caught mid-' + mid}: outbox {state}, "
                        f"{claimed} dirty hours claimed")  # fmt: skip
    time.sleep(1.0)
    t0 = time.time()
    stack.procs.started.remove(worker)
    stack.start_worker()
    load.phase = "after"
    result.notes.append(f"worker restart to ready {time.time() - t0:.1f}s")
    settle(stack, load, result, t0)


def kill_after_commit(stack: Stack, master: int, timeout: float = 5.0) -> bool:
    """SIGKILL every gunicorn worker the moment a new outbox row is committed, so the 202 of that
    request is likely lost on the way out and the client's retry must be answered as a replay."""
    import psycopg

    with psycopg.connect(stack.db_url, autocommit=True) as conn:
        first = conn.execute("SELECT count(*) FROM ingest_batch").fetchone()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if conn.execute("SELECT count(*) FROM ingest_batch").fetchone() != first:
                for pid in children_of(master):
                    os.kill(pid, signal.SIGKILL)
                return True
    return False


def fault_gunicorn_kill(run: Run, stack: Stack, result: Result) -> None:
    p = plan(run, "burst")
    web, _, _ = stack.start_celery_stack()
    load = Load(stack.web_port, run.api_key, make_requests(p.requests, p.size, 3), p.concurrency, p.rate).start()
    trigger(after_share(load, 0.15), 60)
    load.phase = "outage"
    rounds = 2 if run.quick else 4
    rng = random.Random(4)
    on_commit = 0
    for _ in range(rounds):
        workers = children_of(web.pid)
        if workers:  # one worker at a random moment
            os.kill(rng.choice(workers), signal.SIGKILL)
        time.sleep(1.0)
        wait_for(lambda: len(children_of(web.pid)) >= 2 and http_ok(stack.web_port), 30)
        on_commit += kill_after_commit(stack, web.pid)  # all workers, right after a commit
        wait_for(lambda: len(children_of(web.pid)) >= 2 and http_ok(stack.web_port), 30)
    t0 = time.time()
    load.phase = "after"
    result.notes.append(f"{rounds} x (one gunicorn worker SIGKILLed at random + all of them right after an outbox "
                        f"commit: {on_commit} caught); clients meanwhile: {phase_summary(load, 'outage')}")  # fmt: skip
    settle(stack, load, result, t0)
    result.notes.append(f"retries answered as replays of a committed batch (Idempotent-Replayed): {load.replays}")


def fault_postgres(run: Run, stack: Stack, result: Result) -> None:
    p = plan(run, "steady")
    stack.start_celery_stack()
    load = Load(stack.web_port, run.api_key, make_requests(p.requests, p.size, 5), p.concurrency, p.rate).start()
    trigger(after_share(load, 0.25), 60)
    load.phase = "outage"
    run.cluster.stop()
    try:
        time.sleep(6 if run.quick else 10)
    finally:
        run.cluster.start()  # the next faults need it, whatever happened here
    t0 = time.time()
    load.phase = "after"
    result.notes.append(f"while PostgreSQL was down clients got: {phase_summary(load, 'outage')}")
    settle(stack, load, result, t0)
    result.notes.append(f"after it came back: {phase_summary(load, 'after')}")


def fault_clickhouse(run: Run, stack: Stack, result: Result) -> None:
    p = plan(run, "steady")
    serve = stack.start_serve(stack.no_clickhouse)
    load = Load(stack.web_port, run.api_key, make_requests(p.requests, p.size, 6), p.concurrency, p.rate).start()
    load.phase = "outage"
    trigger(after_share(load, 0.5), 90)
    time.sleep(5 if run.quick else 10)
    state = stack.outbox()
    attempts = pg_query(stack.db_url, "SELECT coalesce(max(attempts), 0) FROM ingest_batch")[0][0]
    result.notes.append(f"with ClickHouse unreachable: outbox {state}, max attempts {attempts}, "
                        f"{stack.log_lines('not drained (OperationalError)')} 'not drained' log lines")  # fmt: skip
    load.phase = "restart"
    serve.stop()  # SIGTERM, as docker stop or systemd would
    stack.procs.started.remove(serve)
    result.notes.append(f"SIGTERM of serve left {stack.processing()} batch(es) processing (leased)")
    t0 = time.time()
    stack.start_serve()  # ClickHouse reachable again (the real chdb:// directory)
    load.phase = "after"
    result.notes.append(f"clients while unreachable: {phase_summary(load, 'outage')}; during the restart: "
                        f"{phase_summary(load, 'restart')}")  # fmt: skip
    settle(stack, load, result, t0)


def fault_redis(run: Run, stack: Stack, result: Result) -> None:
    p = plan(run, "steady")
    stack.start_celery_stack()
    assert stack.redis is not None
    load = Load(stack.web_port, run.api_key, make_requests(p.requests, p.size, 7), p.concurrency, p.rate).start()
    trigger(after_share(load, 0.25), 60)
    load.phase = "outage"
    stack.redis.stop()
    time.sleep(6 if run.quick else 10)
    stack.redis.start()
    t0 = time.time()
    load.phase = "after"
    result.notes.append(f"while Redis was down clients got: {phase_summary(load, 'outage')}; before: "
                        f"{phase_summary(load, 'before')}")  # fmt: skip
    slow = p50(load, "outage") > 3 * p50(load, "before") + 0.05
    if slow:
        result.notes.append("SLOW: ingest waited on Redis while it was down (202 p50 above 3x its p50 before)")
    settle(stack, load, result, t0)


def fault_disk_full(run: Run, stack: Stack, result: Result) -> None:
    p = plan(run, "steady")
    disk = Tmpfs(stack.dir / "outbox-disk", "16m")
    disk.mount()
    run.mounts.append(disk)
    chown_postgres(disk.path)
    space = disk.path / "ts"
    space.mkdir()
    chown_postgres(space)
    admin = run.cluster.url("postgres")
    pg_query(admin, f"CREATE TABLESPACE outbox_disk LOCATION '{space}'")  # a path this harness made
    try:
        pg_query(stack.db_url, "ALTER TABLE ingest_batch SET TABLESPACE outbox_disk")
        for (index,) in pg_query(stack.db_url, "SELECT indexname FROM pg_indexes WHERE tablename = 'ingest_batch'"):
            pg_query(stack.db_url, f'ALTER INDEX "{index}" SET TABLESPACE outbox_disk')
        filler = disk.path / "filler"
        with filler.open("wb") as f:
            f.write(b"\0" * max(0, disk.free_bytes() - 400_000))
        result.notes.append(f"outbox table on a 16 MB tmpfs tablespace with {disk.free_bytes() // 1000} kB free")
        stack.start_serve()
        load = Load(stack.web_port, run.api_key, make_requests(p.requests, p.size, 8), p.concurrency, p.rate).start()
        full = trigger(lambda: load.count("503+RA") + len(load.bad_5xx) > 0, 60)
        load.phase = "outage"
        time.sleep(5 if run.quick else 8)
        state = stack.outbox()
        filler.unlink()
        t0 = time.time()
        load.phase = "after"
        result.notes.append(f"{'disk filled' if full else 'disk NEVER filled'}; while full clients got: "
                            f"{phase_summary(load, 'outage')}; outbox then {state}")  # fmt: skip
        settle(stack, load, result, t0)
        named = stack.log_lines("No space left", "DiskFull", "disk full")
        result.notes.append(f"log lines naming the full disk: {named}; '503' log lines: "
                            f"{stack.log_lines('Service Unavailable: /v1/calls')}")  # fmt: skip
    finally:
        stack.procs.stop_all()
        try:
            pg_query(admin, f'DROP DATABASE IF EXISTS "{stack.db}" WITH (FORCE)')
            pg_query(admin, "DROP TABLESPACE IF EXISTS outbox_disk")
        except Exception as exc:  # noqa: BLE001 - the cluster is dropped at the end anyway
            say(f"dropping the tablespace: {type(exc).__name__}: {exc}")
        disk.umount()


FAULTS: dict[str, tuple[str, Callable[[Run, Stack, Result], None]]] = {
    "serve-kill": (
        "embedded `manage.py serve` (PostgreSQL + chDB); SIGKILL of its process group while a "
        "drain held claimed batches; restarted on the same port",
        fault_serve_kill,
    ),
    "worker-kill-drain": (
        "gunicorn 2x4 + Celery worker (solo, owns chDB) + beat on Redis; SIGKILL of the "
        "worker while batches were processing; worker restarted",
        lambda r, s, x: fault_worker_kill(r, s, x, "drain"),
    ),
    "worker-kill-rollup": (
        "as above; SIGKILL of the worker while it held claimed dirty rollup hours; restarted",
        lambda r, s, x: fault_worker_kill(r, s, x, "rollup"),
    ),
    "gunicorn-kill": (
        "Celery stack, gunicorn 2x4 under a burst; SIGKILL of a random gunicorn worker, then of all of them "
        "right after an outbox commit (a lost 202), repeated; clients retry with the same Idempotency-Key",
        fault_gunicorn_kill,
    ),
    "postgres-stop": (
        "Celery stack; the private PostgreSQL cluster stopped (pg_ctlcluster stop -m fast) under a "
        "steady load, then started",
        fault_postgres,
    ),
    "clickhouse-down": (
        "embedded serve with CLICKHOUSE_URL = a port nobody listens on (drains fail to connect), "
        "then restarted with the real chdb:// directory",
        fault_clickhouse,
    ),
    "redis-stop": (
        "Celery stack; the private redis-server (broker + cache, no persistence) stopped under load, "
        "then started empty on the same port",
        fault_redis,
    ),
    "disk-full": (
        "embedded serve; ingest_batch (table, TOAST, indexes) in a tablespace on a 16 MB tmpfs filled "
        "up by a filler file; the filler deleted under load",
        fault_disk_full,
    ),
}


def run_fault(run: Run, name: str, keep: bool) -> Result:
    how, fn = FAULTS[name]
    result = Result(name, how)
    say(f"--- {name}: {how}")
    stack: Stack | None = None
    started = time.monotonic()
    try:
        stack = Stack(run, name)
        fn(run, stack, result)
    except Exception as exc:  # noqa: BLE001 - one fault's failure is reported; the others still run
        result.error = f"{type(exc).__name__}: {str(exc)[:1500]}"
        say(f"{name} did not run to the end: {result.error}")
    finally:
        if stack is not None:
            stack.close(keep)
    say(f"{name}: {time.monotonic() - started:.0f}s; {result.accepted} accepted, {result.counted} counted, "
        f"lost {result.lost}, doubled {result.doubled}, late {result.late}")  # fmt: skip
    return result


def fmt_s(value: float | None, bound: float) -> str:
    return f">{bound:.0f}" if value is None else f"{value:.1f}"


def print_report(results: Sequence[Result], run: Run) -> None:
    head = ("fault", "accepted", "counted", "lost", "doubled", "late", "raw visible s", "rollups s", "5xx", "met")
    rows = []
    for r in results:
        misses = r.misses()
        if r.error:
            rows.append((r.name, "-", "-", "-", "-", "-", "-", "-", "-", "MISS: did not run"))
            continue
        rows.append((r.name, f"{r.accepted:,}", f"{r.counted:,}", str(r.lost), str(r.doubled), str(r.late + r.dead),
                     fmt_s(r.raw_s, run.wait), fmt_s(r.rollup_s, run.wait), str(r.bad_5xx),
                     "yes" if not misses else "MISS: " + ", ".join(misses)))  # fmt: skip
    widths = [max(len(row[i]) for row in [head, *rows]) for i in range(len(head))]
    line = "  ".join("-" * w for w in widths)
    print()
    print(f"Meterline fault harness ({'quick' if run.quick else 'full'}; targets: 0 lost, 0 doubled, 0 5xx other "
          f"than 503 + Retry-After, everything visible <= {TARGET_VISIBLE_S:.0f} s after recovery; wait bound "
          f"{run.wait:.0f} s; {os.cpu_count()} CPUs)")  # fmt: skip
    print(line)
    print("  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)))
    print(line)
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    print(line)
    print("late = accepted records still waiting in the outbox (pending/processing/dead) when the wait ended; "
          "visible s = from max(recovery, the 202) until written (raw) / all rolled up")  # fmt: skip
    print()
    for r in results:
        print(f"{r.name}: {r.how}")
        for note in ([f"ERROR: {r.error}"] if r.error else []) + r.notes:
            print(f"    - {note}")


@contextmanager
def private_stores(tmp: Path) -> Iterator[PgCluster]:
    cluster = PgCluster(f"faults{os.getpid()}", free_port(), tmp / "pg")
    try:
        cluster.create()
        cluster.start()
        yield cluster
    finally:
        cluster.drop()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller loads, shorter outages and waits")
    parser.add_argument("--only", default="", help=f"comma-separated faults: {', '.join(FAULTS)}")
    parser.add_argument("--wait", type=float, default=None, help="seconds to wait for visibility (75; quick: 45)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs) and fault databases")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(FAULTS)
    unknown = [n for n in names if n not in FAULTS]
    if unknown:
        parser.error(f"unknown fault(s) {unknown}; choose from {', '.join(FAULTS)}")
    if os.geteuid() != 0:
        parser.error("run as root: the harness creates a PostgreSQL cluster and mounts a tmpfs")
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    tmp = Path(tempfile.mkdtemp(prefix="meterline-faults-"))
    os.chmod(tmp, 0o755)  # noqa: S103 - the postgres user walks into its data directory below
    mounts: list[Tmpfs] = []
    try:
        with private_stores(tmp) as cluster:
            say(f"private PostgreSQL 15 cluster {cluster.name} on 127.0.0.1:{cluster.port}; work dir {tmp}")
            pg_query(cluster.url("postgres"), f'CREATE DATABASE "{TEMPLATE_DB}"')
            var_dir = tmp / "var"
            (var_dir / "static").mkdir(parents=True)
            template_ch = tmp / "template-clickhouse"
            made = run_child("--_setup", base_env(var_dir, cluster.url(TEMPLATE_DB), f"chdb://{template_ch}"))
            run = Run(tmp, cluster, template_ch, var_dir, made["key"], made["project"], args.quick,
                      args.wait or (45.0 if args.quick else 75.0), mounts)  # fmt: skip
            results = [run_fault(run, name, args.keep) for name in names]
            print_report(results, run)
    finally:
        for disk in mounts:
            disk.umount()
        if args.keep:
            print(f"[faults] kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--_setup":
        print(json.dumps(child_setup()))
    elif len(sys.argv) > 1 and sys.argv[1] == "--_count":
        print(json.dumps(child_count(sys.argv[2], sys.argv[3])))
    else:
        sys.exit(main())
