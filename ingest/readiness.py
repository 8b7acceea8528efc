"""Readiness: the Django DB answers, the outbox backlog (pending, dead, oldest age), ClickHouse answers."""

from __future__ import annotations

from typing import Any

from clickhouse_connect.driver.exceptions import ClickHouseError
from django.db import DatabaseError, connection
from django.db.models import Min
from django.utils import timezone

from ingest.models import Batch, BatchStatus
from ledger.clickhouse.client import get_clickhouse


def readiness() -> tuple[bool, dict[str, Any]]:
    checks: dict[str, Any] = {}
    ok = True
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
        oldest = Batch.objects.filter(status=BatchStatus.PENDING).aggregate(oldest=Min("received_at"))["oldest"]
        checks["outbox"] = {
            "pending": Batch.objects.filter(status=BatchStatus.PENDING).count(),
            "dead": Batch.objects.filter(status=BatchStatus.DEAD).count(),
            "oldest_pending_seconds": round((timezone.now() - oldest).total_seconds()) if oldest else 0,
        }
    except DatabaseError as exc:
        ok = False
        checks["database"] = f"unavailable: {type(exc).__name__}"
    try:
        get_clickhouse().command("SELECT 1")
        checks["clickhouse"] = "ok"
    except (ClickHouseError, OSError, RuntimeError) as exc:  # RuntimeError: chDB cannot open its directory
        ok = False
        checks["clickhouse"] = f"unavailable: {type(exc).__name__}"
    return ok, checks
