"""Dirty hours: which (project, hour) rollups must be recomputed because raw rows changed."""

from __future__ import annotations

from datetime import datetime

from django.utils import timezone

from ledger.models import DirtyBucket


def mark_dirty(hours_by_project: dict[int, set[datetime]], now: datetime | None = None) -> None:
    """Record hours whose rollups must be recomputed (an upsert: marking twice is one mark)."""
    now = now or timezone.now()
    DirtyBucket.objects.bulk_create(
        [
            DirtyBucket(project_id=project_id, hour=hour, marked_at=now)
            for project_id, hours in hours_by_project.items()
            for hour in sorted(hours)
        ],
        update_conflicts=True,
        unique_fields=["project", "hour"],
        update_fields=["marked_at"],
    )
