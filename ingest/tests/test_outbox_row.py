"""The outbox row an accepted batch becomes: one INSERT bound server-side, the payload lz4-compressed,
and exactly the row the ORM would have written."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from django.db import IntegrityError, connection, transaction

from ingest import outbox
from ingest.models import Batch, BatchStatus
from tenancy.models import Project

pytestmark = pytest.mark.django_db

COLUMNS = [str(f.column) for f in Batch._meta.concrete_fields]


def stored(batch_id: uuid.UUID) -> dict[str, Any]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {', '.join(COLUMNS)} FROM ingest_batch WHERE id = %s", [batch_id])
        row = cursor.fetchone()
    assert row is not None
    return dict(zip(COLUMNS, [bytes(v) if isinstance(v, memoryview) else v for v in row], strict=True))


def cursor_classes(action: Callable[[], None]) -> list[type]:
    """The psycopg cursor class of each INSERT or UPDATE that ``action`` runs (savepoints aside)."""
    seen: list[type] = []

    def spy(execute: Any, sql: str, params: Any, many: bool, context: dict[str, Any]) -> Any:
        if sql.lstrip().upper().startswith(("INSERT", "UPDATE")):
            seen.append(type(context["cursor"].cursor))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(spy):
        action()
    return seen


def test_a_new_batch_is_the_row_the_orm_writes(project: Project) -> None:
    payload = os.urandom(3000) * 30
    fields = {"payload": payload, "record_count": 7, "rejected_count": 2, "body_sha256": "ab" * 32}
    keyed = {"idempotency_key": "k-1", "response": {"accepted": 7, "rejected": [{"index": 1}]}}
    for extra in ({}, keyed):
        fast = Batch(project=project, **fields, **extra)
        classes = cursor_classes(lambda: fast.save(force_insert=True))  # noqa: B023 - called at once
        assert classes == [psycopg.Cursor], "the accepted batch must be one server-bound INSERT"
        orm = Batch(project=project, **fields, **{**extra, "idempotency_key": "k-2" if extra else None})
        super(Batch, orm).save(force_insert=True)
        assert not fast._state.adding
        ours, theirs = stored(fast.id), stored(orm.id)
        for column in ("id", "idempotency_key"):
            ours.pop(column), theirs.pop(column)
        for column in ("received_at", "next_attempt_at"):
            assert abs(ours.pop(column) - theirs.pop(column)).total_seconds() < 5
        assert ours == theirs
        assert ours["payload"] == payload
        assert ours["status"] == BatchStatus.PENDING


def test_other_saves_stay_the_orm_s(project: Project) -> None:
    batch = Batch(project=project, payload=b"x", record_count=1)
    batch.save(force_insert=True)
    batch.status = BatchStatus.DONE
    assert cursor_classes(lambda: batch.save(update_fields=["status"])) != [psycopg.Cursor]
    assert Batch.objects.get(id=batch.id).status == BatchStatus.DONE


def test_the_payload_is_lz4_compressed(project: Project) -> None:
    batch = Batch(project=project, payload=b"openai gpt-4o-mini chat acme " * 5000, record_count=1)
    batch.save(force_insert=True)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_column_compression(payload) FROM ingest_batch WHERE id = %s", [batch.id])
        assert cursor.fetchone() == ("lz4",)


def test_a_refused_row_leaves_the_caller_s_transaction_usable(project: Project) -> None:
    Batch(project=project, payload=b"x", record_count=1, idempotency_key="same").save(force_insert=True)
    with transaction.atomic():
        with pytest.raises(IntegrityError):
            Batch(project=project, payload=b"y", record_count=1, idempotency_key="same").save(force_insert=True)
        assert Batch.objects.filter(project=project, idempotency_key="same").count() == 1


def test_a_claimed_batch_reads_as_the_orm_reads_it_in_binary(project: Project) -> None:
    payload = os.urandom(5000) * 20
    keyed = Batch(
        project=project, payload=payload, record_count=3, idempotency_key="k", response={"accepted": 3, "rejected": []}
    )
    keyed.save(force_insert=True)
    formats: list[psycopg.pq.Format] = []

    def spy(execute: Any, sql: str, params: Any, many: bool, context: dict[str, Any]) -> Any:
        if "payload" in sql and sql.lstrip().upper().startswith("SELECT"):
            formats.append(context["cursor"].cursor.format)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(spy):
        (claimed,) = outbox.claim(10)
    assert formats == [psycopg.pq.Format.BINARY], "the payloads must be read in binary, not as hex text"
    orm = Batch.objects.get(id=keyed.id)
    for field in Batch._meta.concrete_fields:
        ours, theirs = getattr(claimed, field.attname), getattr(orm, field.attname)
        assert ours == (bytes(theirs) if isinstance(theirs, memoryview) else theirs), field.attname
    assert claimed.payload == payload
    assert claimed.response == {"accepted": 3, "rejected": []}
    assert claimed.status == BatchStatus.PROCESSING
    assert claimed.lease_until is not None
    assert claimed.lease_until.utcoffset() is not None
    assert not claimed._state.adding
