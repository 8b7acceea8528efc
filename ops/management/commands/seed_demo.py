from __future__ import annotations

import json
import os
import secrets
import time
import uuid
from decimal import ROUND_CEILING, Decimal
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction
from tqdm import tqdm

from alerts.models import Budget, Rule
from ledger.clickhouse.client import get_clickhouse
from ledger.feedback import sync_feedback
from ledger.models import Feedback
from ledger.pricebook import load_price_book
from ledger.pricing import PriceBook, pusd_to_usd
from ledger.raw import CallColumns, CallGroup, write_calls
from ops.demo import generate, with_capacity
from tenancy.models import ApiKey, Membership, Organization, Project, Role, hash_key

CHUNK = 20_000
# The demo's keys: (name, scopes). The admin one serves the README's budget and channel examples.
DEMO_KEYS = (("demo", ["ingest", "read"]), ("demo-admin", ["admin"]))


def credentials_path(project: str) -> Path:
    """Where the demo's login and raw keys are kept between runs (under var/, mode 0600, demo only)."""
    return Path(settings.VAR_DIR) / f"demo-credentials-{project}.json"


def _read_credentials(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_credentials(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(data, out, indent=2)
    path.chmod(0o600)  # an older file may have been created with wider rights


class Command(BaseCommand):
    help = "Create the demo project with 30 days of realistic traffic (once), a login and API keys (kept across runs)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--calls", type=int, default=120_000)
        parser.add_argument("--project", default="demo")
        parser.add_argument("--url", default="http://127.0.0.1:8000/", help="the address to print")

    def handle(self, *args: Any, **options: Any) -> None:
        with transaction.atomic():
            org, _ = Organization.objects.get_or_create(name="Demo Inc")
            # doc-extract's document jobs can wait: half already go through the Batch API.
            project, _ = Project.objects.get_or_create(
                name=options["project"], defaults={"organization": org, "batch_eligible_features": ["doc-extract"]}
            )
            user, _ = get_user_model().objects.get_or_create(username="admin", defaults={"is_staff": True})
            path = credentials_path(project.name)
            saved = _read_credentials(path)
            # Keep the login and keys of an earlier run (a restart must not log people out or break
            # an SDK set up with the printed key); make new ones only when the kept ones no longer work.
            password = saved.get("password")
            if not isinstance(password, str) or not user.check_password(password):
                password = secrets.token_urlsafe(9)
                user.set_password(password)
            user.is_staff = user.is_superuser = True
            user.save()
            Membership.objects.get_or_create(user=user, organization=org, defaults={"role": Role.ADMIN})
            stored = saved.get("keys")
            kept: dict[str, Any] = stored if isinstance(stored, dict) else {}
            keys: dict[str, str] = {}
            for name, scopes in DEMO_KEYS:
                raw = kept.get(name)
                active = ApiKey.objects.active().filter(project=project, name=name)
                if isinstance(raw, str) and active.filter(key_hash=hash_key(raw), scopes=scopes).exists():
                    keys[name] = raw
                    continue
                for old in active:
                    old.revoke()
                keys[name] = ApiKey.issue(project, scopes, name=name)[1]
            _write_credentials(path, {"project": project.name, "login": "admin", "password": password, "keys": keys})

        # FINAL: a repriced call has several row versions until a merge; count each call once.
        existing = get_clickhouse().command(
            "SELECT count() FROM llm_calls FINAL WHERE project_id = {p:UInt64}", parameters={"p": project.pk}
        )
        if int(existing) > 0:
            self.stdout.write(f"demo data already present ({int(existing):,} calls); not generating again")
        else:
            self._seed(project, options["calls"])
        self._budgets(project)
        first, last = (
            get_clickhouse()
            .query(
                "SELECT toDate(min(timestamp)), toDate(max(timestamp)) FROM llm_calls WHERE project_id = {p:UInt64}",
                parameters={"p": project.pk},
            )
            .result_rows[0]
        )
        self.stdout.write(
            f"\n  Meterline demo\n  URL:      {options['url']}\n  project:  {project.name} (id {project.pk})\n"
            f"  data:     calls from {first} to {last} (UTC)\n"
            f"  login:    admin / {password}\n  API key:  {keys['demo']}  (scopes ingest, read)\n"
            f"  admin key: {keys['demo-admin']}  (scope admin: budgets, channels, prices)\n"
            f"  These stay the same on the next start; they are kept in {path} (mode 0600, demo only).\n"
        )

    def _budgets(self, project: Project) -> None:
        """Two demo budgets sized from the demo's own spend: one on course, one that runs over."""
        if Budget.objects.filter(project=project).exists():
            return
        spent = pusd_to_usd(
            int(
                get_clickhouse().command(
                    "SELECT sum(cost_pusd) FROM llm_calls FINAL WHERE project_id = {p:UInt64}"
                    " AND timestamp >= now() - INTERVAL 30 DAY",
                    parameters={"p": project.pk},
                )
            )
        )
        plans: list[tuple[str, dict[str, list[str]], Decimal]] = [
            ("Monthly LLM spend", {}, (spent * Decimal("1.3")).quantize(Decimal(1), ROUND_CEILING)),
            ("chat-assistant (tight)", {"feature": ["chat-assistant"]}, (spent * Decimal("0.2")).quantize(Decimal(1))),
        ]
        for name, scope, amount in plans:
            amount = amount if amount >= 1 else Decimal(1)
            budget = Budget.objects.create(project=project, name=name, scope=scope, period="month", amount=amount)
            Rule.objects.create(budget=budget, kind="actual", thresholds=[50, 80, 100])
            Rule.objects.create(budget=budget, kind="forecast", thresholds=[100])
            if not scope:  # the providers' rate limits, judged on the whole project's traffic
                Rule.objects.create(budget=budget, kind="capacity", thresholds=[80])

    def _seed(self, project: Project, total: int) -> None:
        started = time.monotonic()
        book = {project.pk: load_price_book(project.pk)}
        end_ms = int(time.time() * 1000)
        chunk: list[tuple[Any, ...]] = []
        thumbs: list[tuple[str, float]] = []
        written = 0
        with tqdm(total=total, unit="call", desc="seeding demo traffic") as bar:
            for record in with_capacity(generate(total, end_ms, feedback=thumbs)):
                chunk.append(record)
                if len(chunk) == CHUNK:
                    written += self._write(project, chunk, book)
                    bar.update(len(chunk))
                    chunk = []
            if chunk:
                written += self._write(project, chunk, book)
                bar.update(len(chunk))
        # The users' thumbs go the way POST /v1/feedback sends them: Django rows, copied to ClickHouse,
        # whose rollups join them to their calls (the hours are marked dirty).
        Feedback.objects.bulk_create(
            [Feedback(project=project, event_id=event_id, score=score) for event_id, score in thumbs], batch_size=5000
        )
        while sync_feedback():
            pass
        self.stdout.write(
            f"seeded {written:,} calls and {len(thumbs):,} feedback scores in {time.monotonic() - started:.1f}s"
        )

    def _write(self, project: Project, records: list[tuple[Any, ...]], books: dict[int, PriceBook]) -> int:
        # The ledger's own pricing and insert, as the drain uses them: a deterministic batch id and
        # token per chunk makes a re-run after a crash insert nothing twice.
        batch_id = uuid.uuid5(uuid.NAMESPACE_URL, f"meterline-demo/{project.pk}/{records[0][0]}")
        group = CallGroup(project.pk, batch_id, time.time_ns() // 1_000_000, CallColumns.from_records(records))
        return write_calls([group], books, version=time.time_ns() // 1000, token=str(batch_id)).count
