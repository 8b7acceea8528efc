"""Feedback: kept in the Django DB on receipt (durable), then copied to ClickHouse, where rollups
join it to its call by event_id. The call's hour is marked dirty so its rollups pick it up; a call
that arrives later marks its own hour when it is drained."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime

from django.db import transaction
from django.utils import timezone

from ledger.clickhouse.client import get_clickhouse
from ledger.dirty import mark_dirty
from ledger.models import Feedback


def sync_feedback(limit: int = 5000) -> int:
    """Copy unsynced feedback to ClickHouse and mark the hours of known calls dirty."""
    pending = list(Feedback.objects.filter(synced_at__isnull=True).order_by("pk")[:limit])
    if not pending:
        return 0
    ch = get_clickhouse()
    ch.insert(
        "feedback",
        [
            [f.project_id for f in pending],
            [f.event_id for f in pending],
            [f.score for f in pending],
            [int(f.created_at.timestamp() * 1000) for f in pending],
        ],
        ["project_id", "event_id", "score", "created_at"],
    )
    hours: dict[int, set[datetime]] = defaultdict(set)
    by_project: dict[int, list[str]] = defaultdict(list)
    for f in pending:
        by_project[f.project_id].append(f.event_id)
    for project_id, event_ids in by_project.items():
        rows = ch.query(
            "SELECT DISTINCT toStartOfHour(timestamp) FROM llm_calls"
            " WHERE project_id = {p:UInt64} AND event_id IN {ids:Array(String)}",
            parameters={"p": project_id, "ids": event_ids},
        ).result_rows
        hours[project_id].update(r[0].replace(tzinfo=UTC) for r in rows)
    with transaction.atomic():
        mark_dirty(hours)
        Feedback.objects.filter(pk__in=[f.pk for f in pending]).update(synced_at=timezone.now())
    return len(pending)
