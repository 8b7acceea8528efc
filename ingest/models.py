"""The outbox: every accepted batch is a row here before the client hears 202."""

from __future__ import annotations

import uuid
from contextlib import nullcontext
from functools import cache
from typing import Any, ClassVar

import psycopg
from django.db import connections, models, router, transaction
from django.db.backends.utils import CursorWrapper
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

    def save(self, *args: Any, **kwargs: Any) -> None:
        """``save(force_insert=True)`` of a new batch (what accepting does) is one INSERT whose
        parameters are bound server-side (PostgreSQL; SQLite takes the ORM's); any other save is the ORM's.

        Django's psycopg cursors bind on the client: a 500-record payload (~150 kB) would travel as a
        ~300 kB hex literal inside the SQL text for PostgreSQL to parse. Bound, it goes as a
        parameter: 2.4 → 0.6 ms a request, 0.7 → 0.1 ms of the worker's CPU (measured in-process).
        Outside a transaction the statement commits on its own; inside one it takes a savepoint, so
        a refused row (a duplicate Idempotency-Key) leaves the caller's transaction usable. Errors
        come back as Django's (``IntegrityError``, ``OperationalError``…), as from the ORM."""
        alias = router.db_for_write(Batch, instance=self)
        db = connections[alias]
        if args or kwargs != {"force_insert": True} or not self._state.adding or db.vendor != "postgresql":
            super().save(*args, **kwargs)
            return
        fields = Batch._meta.concrete_fields
        values = [f.get_db_prep_save(f.pre_save(self, add=True), db) for f in fields]
        with transaction.atomic(using=alias) if db.in_atomic_block else nullcontext():
            db.ensure_connection()
            with CursorWrapper(psycopg.Cursor(db.connection), db) as cursor:
                cursor.execute(_insert_sql(db.ops.quote_name), values)
        self._state.adding = False
        self._state.db = alias


def column_list(quote: Any) -> str:
    """Every column of the outbox table, quoted, in ``concrete_fields`` order (for raw statements)."""
    return ", ".join(quote(str(f.column)) for f in Batch._meta.concrete_fields)


@cache
def _insert_sql(quote: Any) -> str:
    # Names from this model's own metadata, quoted; every value is a bound parameter.
    slots = ", ".join(["%s"] * len(Batch._meta.concrete_fields))
    return f"INSERT INTO {quote(Batch._meta.db_table)} ({column_list(quote)}) VALUES ({slots})"  # noqa: S608
