"""`manage.py serve` (embedded, chDB) for real, as subprocesses: a chDB directory held by another
process is an outage (reads 503, batches wait, none counts a data failure), and after a kill -9 the
restarted serve takes back what its dead predecessor had claimed: everything accepted is visible in
/v1/usage within 30 s of the restart, though the leases would hold for an hour."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
BATCHES, PER_BATCH = 5, 20
HOLD_CHDB = """
import sys, time
import clickhouse_connect
client = clickhouse_connect.get_client(dsn=sys.argv[1])  # kept: the engine (and its lock) lives with it
client.command("SELECT 1")
print("held", flush=True)
time.sleep(600)
"""
SETUP = """
from tenancy.models import ApiKey, Organization, Project
project = Project.objects.create(organization=Organization.objects.create(name="restart"), name="restart")
print(ApiKey.issue(project, ["ingest"])[1], ApiKey.issue(project, ["read"])[1])
"""
# What a serve killed mid-drain and mid-rollup leaves: its batches processing and an hour claimed, for an hour.
ORPHAN = """
import uuid
from datetime import timedelta
from django.utils import timezone
from ingest.models import Batch
from ledger.models import DirtyBucket
later = timezone.now() + timedelta(hours=1)
print(Batch.objects.update(status="processing", lease_until=later))
project = Batch.objects.first().project
hour = timezone.now().replace(minute=0, second=0, microsecond=0)
DirtyBucket.objects.create(project=project, hour=hour, claim=uuid.uuid4(), claimed_until=later)
"""
BATCH_STATE = """
import json
from ingest.models import Batch
print(json.dumps([[b.status, b.data_failures, b.last_error[:200]] for b in Batch.objects.all()]))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(tmp: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "METERLINE_VAR_DIR": str(tmp),
        "DATABASE_URL": f"sqlite:///{tmp}/db.sqlite3",
        "CLICKHOUSE_URL": f"chdb://{tmp}/clickhouse",
        "SECRET_KEY": "test-only-secret-key",
        # Leases and claims that would hold for an hour: only the restart's take-back makes this quick.
        "OUTBOX_LEASE_SECONDS": "3600",
        "ROLLUP_CLAIM_SECONDS": "3600",
    }
    for name in ("CELERY_BROKER_URL", "CACHE_URL", "INGEST_RATE_LIMIT"):
        env.pop(name, None)
    return env


def _manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, result.stderr
    return (result.stdout.strip().splitlines() or [""])[-1]  # `shell` says how many objects it imported first


def _request(url: str, key: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, str], Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Authorization": f"Bearer {key}"})  # noqa: S310 - loopback
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310 - http://127.0.0.1 only
            return answer.status, dict(answer.headers), json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def _serve(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
    )
    deadline = time.monotonic() + 90
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
                if answer.status == 200:
                    return server
        except OSError:
            pass
        assert server.poll() is None, log.read_text()
        assert time.monotonic() < deadline, "serve did not answer in 90 s"
        time.sleep(0.2)


def _usage_url(base: str) -> str:
    now = datetime.now(UTC)
    query = urllib.parse.urlencode({
        "from": (now - timedelta(hours=2)).isoformat(), "to": (now + timedelta(hours=1)).isoformat(),
        "granularity": "total", "metrics": "calls",
    })  # fmt: skip
    return f"{base}/v1/usage?{query}"


def _usage_calls(base: str, read_key: str) -> int:
    status, _, body = _request(_usage_url(base), read_key)
    assert status == 200, (status, body)
    return sum(int(row["calls"]) for row in body["data"])


def test_a_locked_chdb_is_an_outage_and_a_restart_takes_back_a_killed_serve_s_claims(tmp_path: Path) -> None:
    env = _env(tmp_path)
    _manage(env, "migrate", "--noinput", "-v0")
    _manage(env, "migrate_clickhouse")
    ingest_key, read_key = _manage(env, "shell", "-c", SETUP).split()
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_CHDB, env["CLICKHOUSE_URL"]], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    servers: list[subprocess.Popen[bytes]] = []
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        # 1. serve while another process holds the chDB directory: accepted, reads 503, nothing goes bad
        servers.append(_serve(env, port, tmp_path / "serve-1.log"))
        for b in range(BATCHES):
            calls = [{"event_id": f"r{b}-{i}", "provider": "openai", "model": "gpt-4o", "input_tokens": 3}
                     for i in range(PER_BATCH)]  # fmt: skip
            status, _, body = _request(f"{base}/v1/calls", ingest_key, {"calls": calls})
            assert status == 202, body
        status, headers, _ = _request(_usage_url(base), read_key)
        assert status == 503
        assert headers.get("Retry-After") == "5"
        deadline = time.monotonic() + 30
        while True:  # the drain thread tried every batch and met the lock
            states = json.loads(_manage(env, "shell", "-c", BATCH_STATE))
            if all(s[0] == "pending" and "EngineLocked" in s[2] for s in states):
                break
            assert time.monotonic() < deadline, states
            time.sleep(0.5)
        assert len(states) == BATCHES
        assert [s[1] for s in states] == [0] * BATCHES  # a lock is never a data failure
        # 2. kill -9 it, leaving what a serve killed mid-drain and mid-rollup leaves
        servers[0].send_signal(signal.SIGKILL)
        servers[0].wait(10)
        assert _manage(env, "shell", "-c", ORPHAN).strip() == str(BATCHES)
        holder.terminate()
        holder.wait(10)
        # 3. restart: everything accepted is in /v1/usage within 30 s
        restarted = time.monotonic()
        servers.append(_serve(env, port, tmp_path / "serve-2.log"))
        while _usage_calls(base, read_key) < BATCHES * PER_BATCH:
            assert time.monotonic() - restarted < 30, (tmp_path / "serve-2.log").read_text()
            time.sleep(0.25)
        print(f"visible {time.monotonic() - restarted:.1f} s after the restart")  # noqa: T201
        assert _usage_calls(base, read_key) == BATCHES * PER_BATCH
        assert "took back 5 batch(es) and 1 dirty hour(s)" in (tmp_path / "serve-2.log").read_text()
    finally:
        for server in servers:
            if server.poll() is None:
                server.terminate()
                server.wait(30)
        if holder.poll() is None:
            holder.kill()
            holder.wait(10)
