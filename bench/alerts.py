"""Alert benchmark: threshold-crossing latency (accept -> webhook receiver) and budget evaluation cost.

    .venv/bin/python bench/alerts.py [--crossings 20] [--calls 10000000] [--budgets 1000]

(a) embedded: one process runs the web server (waitress, real HTTP), the in-process drain ->
    rollup -> evaluation -> delivery, and chDB, on SQLite (what ``make run`` starts);
(b) Celery: ``manage.py serve`` (accept only; it never opens ClickHouse), a Celery worker (threads
    pool, the only process that opens chDB) and beat on Redis, PostgreSQL as the Django database;
(c) evaluating N budgets (mixed scopes, time zones and rules) over the query bench's 10 M calls.

Latency is measured from the 202 of the POST /v1/calls carrying the crossing record to the moment
a local webhook receiver (stdlib http.server) gets the alert. Each part runs in its own process
with its own settings; fresh temporary directories and a fresh PostgreSQL database are used.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
PG_URL = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432")
PG_DB = "meterline_alerts_bench"
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
TARGET_P95_S = 15.0
TARGET_EVAL_S = 5.0


# --- shared pieces ---------------------------------------------------------------------------


class Receiver:
    """A webhook receiver that notes when each budget's alert arrived."""

    def __init__(self) -> None:
        self.arrived: dict[int, float] = {}
        self.cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                now = time.perf_counter()
                budget_id = json.loads(body)["budget"]["id"]
                with receiver.cond:
                    receiver.arrived.setdefault(budget_id, now)
                    receiver.cond.notify_all()
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, budget_id: int, timeout: float) -> float | None:
        with self.cond:
            self.cond.wait_for(lambda: budget_id in self.arrived, timeout)
            return self.arrived.get(budget_id)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def post_call(base_url: str, key: str, record: dict[str, Any]) -> None:
    request = urllib.request.Request(
        f"{base_url}/v1/calls",
        data=json.dumps({"calls": [record]}).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        if answer.status != 202 or json.loads(answer.read())["accepted"] != 1:
            raise RuntimeError("the crossing record was not accepted")


def setup_crossings(n: int, receiver_url: str) -> tuple[str, list[int]]:
    """A project with an ingest key, a webhook channel and n budgets of $1 (each crosses 100 % once)."""
    from alerts.models import Budget, Channel, Rule
    from tenancy.models import ApiKey, Organization, Project

    project = Project.objects.create(organization=Organization.objects.create(name="bench-alerts"), name="bench")
    key = ApiKey.issue(project, ["ingest"])[1]
    channel = Channel.objects.create(
        project=project, kind="webhook", name="receiver", config={"url": receiver_url, "secret": "b" * 32}
    )
    ids = []
    for i in range(n + 1):  # the first one warms up and is not counted
        budget = Budget.objects.create(project=project, name=f"probe {i}", amount="1.00", scope={"feature": [f"p{i}"]})
        rule = Rule.objects.create(budget=budget, kind="actual", thresholds=[100])
        rule.channels.set([channel])
        ids.append(budget.pk)
    return key, ids


def run_crossings(base_url: str, key: str, budget_ids: list[int], receiver: Receiver) -> list[float]:
    latencies = []
    for i, budget_id in enumerate(budget_ids):
        record = {"provider": "openai", "model": "gpt-4o", "feature": f"p{i}", "input_tokens": 10, "output_tokens": 1,
                  "cost_usd": "1.50"}  # fmt: skip
        post_call(base_url, key, record)
        accepted = time.perf_counter()
        arrived = receiver.wait(budget_id, timeout=120)
        if arrived is None:
            raise RuntimeError(f"alert {i} never arrived")
        if i:  # the first crossing warms caches and connections
            latencies.append(arrived - accepted)
    return latencies


def summary(label: str, samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[max(0, round(0.95 * len(ordered)) - 1)]
    verdict = "ok" if p95 <= TARGET_P95_S else "MISSED"
    return (
        f"{label:<44} n={len(ordered):<3} p50 {statistics.median(ordered):6.2f}s  p95 {p95:6.2f}s  "
        f"max {ordered[-1]:6.2f}s   (target p95 <= {TARGET_P95_S:.0f} s: {verdict})"
    )


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise RuntimeError(f"timed out waiting for {what}")


def django_env(workdir: str, database_url: str, broker: str | None) -> dict[str, str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "METERLINE_VAR_DIR": workdir,
        "DATABASE_URL": database_url,
        "CLICKHOUSE_URL": f"chdb://{workdir}/clickhouse",
        "LOG_LEVEL": "WARNING",
        "SECRET_KEY": "bench-only",
        "ALERTS_ALLOWED_PRIVATE_HOSTS": "127.0.0.1",  # the webhook receiver is local
        "PYTHONPATH": str(ROOT),
    }
    env.pop("CELERY_BROKER_URL", None)
    if broker:
        env["CELERY_BROKER_URL"] = broker
        # The worker is the only process that opens chDB here (serve only accepts; nothing reads).
        env["METERLINE_ALLOW_CHDB_WITH_BROKER"] = "true"
    return env


# --- (a) embedded ----------------------------------------------------------------------------


def embedded(crossings: int) -> None:
    import django

    django.setup()
    from django.core.management import call_command
    from waitress.server import create_server

    from config.wsgi import application
    from ledger.clickhouse.client import get_clickhouse
    from ledger.clickhouse.migrate import migrate
    from ops.embedded import EmbeddedRunner

    call_command("migrate", verbosity=0)
    migrate(get_clickhouse())
    receiver = Receiver()
    key, ids = setup_crossings(crossings, receiver.url)
    server = create_server(application, host="127.0.0.1", port=0, threads=4)
    threading.Thread(target=server.run, daemon=True).start()
    runner = EmbeddedRunner()
    runner.start()
    try:
        base = f"http://127.0.0.1:{server.effective_port}"
        print(summary("(a) embedded (serve: waitress + runner)", run_crossings(base, key, ids, receiver)))
    finally:
        runner.stop()
        server.close()


# --- (b) Celery worker + beat on Redis, PostgreSQL -------------------------------------------


def celery_mode(crossings: int) -> None:
    import psycopg
    import redis

    workdir = os.environ["METERLINE_VAR_DIR"]
    with psycopg.connect(f"{PG_URL}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {PG_DB}")
        conn.execute(f"CREATE DATABASE {PG_DB}")
    redis.Redis.from_url(REDIS_URL).flushdb()
    env = dict(os.environ)
    manage = [PYTHON, str(ROOT / "manage.py")]
    subprocess.run([*manage, "migrate", "--noinput", "-v0"], env=env, check=True, cwd=ROOT)
    subprocess.run([*manage, "migrate_clickhouse"], env=env, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)

    import django

    django.setup()  # this process only touches PostgreSQL; chDB belongs to the worker
    receiver = Receiver()
    key, ids = setup_crossings(crossings, receiver.url)
    port = free_port()
    logs = open(Path(workdir) / "processes.log", "w")
    celery = [str(Path(PYTHON).parent / "celery"), "-A", "config"]
    procs = [
        subprocess.Popen(
            [
                *celery,
                "worker",
                "-P",
                "threads",
                "-c",
                "4",
                "-Q",
                "ingest,rollup,alerts,default",
                "--loglevel",
                "WARNING",
                "--without-gossip",
                "--without-mingle",
            ],
            env=env,
            cwd=ROOT,
            stdout=logs,
            stderr=logs,
        ),
        subprocess.Popen(
            [*celery, "beat", "-s", f"{workdir}/beat-schedule", "--loglevel", "WARNING"],
            env=env,
            cwd=ROOT,
            stdout=logs,
            stderr=logs,
        ),
        subprocess.Popen([*manage, "serve", "--port", str(port)], env=env, cwd=ROOT, stdout=logs, stderr=logs),
    ]
    try:
        base = f"http://127.0.0.1:{port}"

        def up() -> bool:
            try:
                with urllib.request.urlopen(f"{base}/healthz", timeout=2) as answer:
                    return bool(answer.status == 200)
            except OSError:
                return False

        wait_until(up, 60, "the web server")
        print(summary("(b) Celery worker + beat on Redis, PostgreSQL", run_crossings(base, key, ids, receiver)))
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        logs.close()
        from django.db import connections

        connections.close_all()
        with psycopg.connect(f"{PG_URL}/postgres", autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {PG_DB}")


# --- (c) evaluating many budgets on the 10 M-call data set ------------------------------------


def evaluation(calls: int, budgets: int) -> None:
    from datetime import UTC, datetime, timedelta

    from bench import query as qb  # sets up Django on its own scratch directory

    try:
        from django.core.management import call_command

        import alerts.evaluate as _ev

        evaluate_all = _ev.evaluate_all
        from alerts.models import Budget, Rule
        from ledger.clickhouse.client import get_clickhouse
        from ledger.clickhouse.migrate import migrate
        from ledger.rollups import mark_range_dirty, rollup_dirty
        from tenancy.models import Organization, Project

        call_command("migrate", verbosity=0)
        ch = get_clickhouse()
        migrate(ch)
        project = Project.objects.create(organization=Organization.objects.create(name="bench"), name="bench")
        now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        t0 = time.perf_counter()
        for offset in range(0, calls, 2_000_000):
            ch.command(qb.GENERATE, parameters={"project": project.pk, "end_ms": int(now.timestamp() * 1000),
                                                "span_ms": 90 * 86_400_000, "offset": offset,
                                                "count": min(2_000_000, calls - offset)})  # fmt: skip
        mark_range_dirty(now - timedelta(days=91), now + timedelta(hours=1), project.pk)
        while rollup_dirty().has_more:
            pass
        print(f"(c) data: {calls:,} calls over 90 days generated and rolled up in {time.perf_counter() - t0:.0f}s")
        features = ["chat-assistant", "support-triage", "doc-extract", "code-review", "search-rerank",
                    "smart-compose", "agent-planner", "email-draft"]  # fmt: skip
        models = ["gpt-4o", "gpt-4o-mini", "o3", "claude-sonnet-4-5", "claude-haiku-4-5", "gemini-2.5-pro"]
        kinds = {"feature": 0, "feature+model": 0, "customer": 0, "tag": 0, "project": 0, "anomaly": 0}
        for i in range(budgets):
            # Mixed like a real install: mostly feature budgets, some per model, per customer, per team.
            slot = i % 20
            tz = "Europe/Berlin" if i % 3 == 0 else "UTC"
            period = ("month", "week", "quarter", "day")[i % 4]
            rules: list[tuple[str, list[int]]] = [("actual", [50, 80, 100])]
            if slot < 9:
                scope: dict[str, Any] = {"feature": [features[i % 8]]}
                kinds["feature"] += 1
            elif slot < 14:
                scope = {"feature": [features[i % 8]], "model": [models[i % 6]]}
                kinds["feature+model"] += 1
            elif slot < 18:
                scope, tz = {"customer_id": [f"customer-{i % 50}"]}, "UTC"
                kinds["customer"] += 1
            elif slot < 19:
                scope = {"tag": {"team": ["growth" if i % 2 else "platform"]}}
                kinds["tag"] += 1
            else:
                scope = {}
                kinds["project"] += 1
            if i % 2:
                rules.append(("forecast", [100]))
            if i % 100 == 0:
                rules.append(("anomaly", [500]))
                kinds["anomaly"] += 1
            # amounts far above the spend, so the runs measure evaluation, not alert fan-out
            budget = Budget.objects.create(project=project, name=f"b{i}", amount="100000000", scope=scope,
                                           period=period, timezone=tz)  # fmt: skip
            for kind, thresholds in rules:
                Rule.objects.create(budget=budget, kind=kind, thresholds=thresholds)
        print(f"(c) {budgets} budgets: " + ", ".join(f"{v} {k}" for k, v in kinds.items()) +
              "; periods day/week/month/quarter; 1/3 in Europe/Berlin; half with a forecast rule")  # fmt: skip
        samples = []
        for _ in range(5):
            t0 = time.perf_counter()
            report = evaluate_all()
            samples.append(time.perf_counter() - t0)
        assert report.budgets == budgets
        median = statistics.median(samples)
        verdict = "ok" if median <= TARGET_EVAL_S else "MISSED"
        spread = f"min {min(samples):.2f}s, max {max(samples):.2f}s over {len(samples)} runs"
        print(f"(c) evaluating {budgets} budgets: median {median:.2f}s, {spread}"
              f"   (target <= {TARGET_EVAL_S:.0f} s: {verdict})")  # fmt: skip
    finally:
        shutil.rmtree(qb.WORKDIR, ignore_errors=True)


# --- driver ----------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--crossings", type=int, default=20)
    parser.add_argument("--calls", type=int, default=10_000_000)
    parser.add_argument("--budgets", type=int, default=1000)
    parser.add_argument("--part", choices=["embedded", "celery", "evaluation"])
    args = parser.parse_args()
    if args.part:
        {"embedded": lambda: embedded(args.crossings), "celery": lambda: celery_mode(args.crossings),
         "evaluation": lambda: evaluation(args.calls, args.budgets)}[args.part]()  # fmt: skip
        return
    print(f"Meterline alert benchmark: {args.crossings} threshold crossings per mode, accept (202) -> webhook")
    for part, database, broker in (
        ("embedded", "sqlite:///{w}/bench.sqlite3", None),
        ("celery", f"{PG_URL}/{PG_DB}", REDIS_URL),
        ("evaluation", None, None),
    ):
        workdir = tempfile.mkdtemp(prefix=f"meterline-bench-alerts-{part}-")
        (Path(workdir) / "static").mkdir()  # whitenoise wants STATIC_ROOT to exist
        try:
            env = django_env(workdir, (database or "sqlite:///{w}/x.sqlite3").format(w=workdir), broker)
            command = [PYTHON, str(Path(__file__).resolve()), "--part", part, "--crossings", str(args.crossings),
                       "--calls", str(args.calls), "--budgets", str(args.budgets)]  # fmt: skip
            subprocess.run(command, env=env, cwd=ROOT, check=True)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
