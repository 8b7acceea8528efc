"""The outbox: every accepted batch is a row here before the client hears 202."""

from __future__ import annotations

import uuid
from typing import ClassVar

from django.db import models
from django.utils import timezone

from tenancy.models import Project


class BatchStatus(models.TextChoices):
    PENDING = "pending"  # waiting for the drain (or for its next retry)
    PROCESSING = "processing"  # claimed by a drain until lease_until
    DONE = "done"  # in ClickHouse
    DEAD = "dead"  # failed for reasons other than connectivity too often: an operator must look


class Batch(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="batches")
    received_at = models.DateTimeField(default=timezone.now)
    status = models.CharField(max_length=16, choices=BatchStatus.choices, default=BatchStatus.PENDING)
    # msgpack of the accepted records, column by column in ingest.records.FIELDS order.
    payload = models.BinaryField()
    record_count = models.PositiveIntegerField()
    rejected_count = models.PositiveIntegerField(default=0)
    attempts = models.PositiveIntegerField(default=0)
    data_failures = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    lease_until = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    done_at = models.DateTimeField(null=True, blank=True)
    # NULL, not "", when absent: the unique constraint below only applies to batches that have a key.
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001
    body_sha256 = models.CharField(max_length=64, blank=True)
    response = models.JSONField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "batches"
        constraints: ClassVar = [
            models.UniqueConstraint(
                fields=["project", "idempotency_key"],
                condition=models.Q(idempotency_key__isnull=False),
                name="one_batch_per_idempotency_key",
            ),
        ]
        indexes: ClassVar = [
            models.Index(fields=["status", "next_attempt_at"], name="batch_due"),
        ]

    def __str__(self) -> str:
        return f"batch {self.id} ({self.status}, {self.record_count} records)"
