"""Accept a batch of CallRecords: decode, validate, write the outbox row, then answer.

Nothing is acknowledged before it is durable: the 202 leaves only after the outbox row commits.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import DatabaseError, IntegrityError, transaction

from ingest import dispatch
from ingest.models import Batch, BatchStatus
from ingest.records import (
    EnvelopeError,
    Validated,
    Window,
    decode_envelope,
    encode_records,
    validate,
    validate_fields,
)
from ledger import telemetry
from tenancy.models import Project

log = logging.getLogger(__name__)
RETRY_AFTER_SECONDS = 5
# HTTP forbids control characters but tab in a field value; a NUL would also fail the PostgreSQL look-up.
_HEADER_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


@dataclass
class IngestError(Exception):
    """A request-level failure with its HTTP status; ``message`` is safe to show the client."""

    status: int
    message: str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]
    replayed: bool = False


def decode_body(raw: bytes, content_encoding: str) -> bytes:
    """Undo ``Content-Encoding`` (identity or gzip) without ever holding more than the limit."""
    limit = settings.INGEST_MAX_BYTES
    encoding = content_encoding.strip().lower()
    if encoding in ("", "identity"):
        if len(raw) > limit:
            raise IngestError(413, f"body is larger than {limit} bytes")
        return raw
    if encoding not in ("gzip", "x-gzip"):
        raise IngestError(415, f"Content-Encoding {content_encoding!r} is not supported; use gzip or none")
    body = bytearray()
    rest = raw
    # A gzip body may be several members in a row (RFC 1952); ignoring the later ones would drop records.
    while True:
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        try:
            body += inflater.decompress(rest, limit + 1 - len(body))
        except zlib.error as exc:
            raise IngestError(400, f"body is not valid gzip: {exc}") from None
        if len(body) > limit or inflater.unconsumed_tail:
            raise IngestError(413, f"decompressed body is larger than {limit} bytes")
        if not inflater.eof:
            raise IngestError(400, "body is not valid gzip: the stream is truncated")
        rest = inflater.unused_data
        if not rest:
            return bytes(body)


def current_window() -> Window:
    now_ms = time.time_ns() // 1_000_000
    # A day's margin inside the TTL so a record is never accepted and then expired before drain.
    retention = settings.CLICKHOUSE_RAW_TTL_DAYS - 1
    return Window(
        now_ms=now_ms,
        oldest_ms=now_ms - retention * 86_400_000,
        newest_ms=now_ms + settings.INGEST_MAX_FUTURE_SECONDS * 1000,
        retention_days=retention,
    )


def accept(project: Project, body: bytes, idempotency_key: str | None) -> Answer:
    """Validate ``body`` and commit the accepted records to the outbox."""
    if idempotency_key is not None and (
        not 1 <= len(idempotency_key) <= 255 or _HEADER_CONTROL.search(idempotency_key)
    ):
        raise IngestError(400, "Idempotency-Key must be 1 to 255 characters, with no control characters but tab")
    digest = hashlib.sha256(body).hexdigest() if idempotency_key else ""
    if idempotency_key:
        previous = _previous(project, idempotency_key)
        if previous is not None:
            return _replay(previous, digest)

    try:
        raws = decode_envelope(body)
    except EnvelopeError as exc:
        raise IngestError(400, str(exc)) from None
    if not raws:
        raise IngestError(400, "calls is empty: send at least one CallRecord")
    return _commit(project, raws, idempotency_key, digest)


def accept_records(project: Project, records: Sequence[dict[str, Any]]) -> Answer:
    """Validate CallRecords made by another door (OTLP spans) and commit them as ``accept`` does.

    Each dict holds CallRecord fields as JSON would carry them: it is validated exactly as a record of
    ``POST /v1/calls`` (same rules, same error messages, same outbox row)."""
    return _commit(project, records, None, "", validate_fields)


def _commit(
    project: Project,
    records: Sequence[Any],
    idempotency_key: str | None,
    digest: str,
    check: Callable[[Any, Window], Validated] = validate,
) -> Answer:
    if len(records) > settings.INGEST_MAX_RECORDS:
        raise IngestError(413, f"{len(records)} records in one request; the limit is {settings.INGEST_MAX_RECORDS}")
    result = check(records, current_window())

    batch = Batch(
        project=project,
        payload=encode_records(result.accepted) if result.accepted else b"",
        record_count=len(result.accepted),
        rejected_count=len(result.rejected),
        idempotency_key=idempotency_key,
        body_sha256=digest,
    )
    if not result.accepted:
        batch.status = BatchStatus.DONE
    answer = {"batch_id": str(batch.id), "accepted": len(result.accepted), "rejected": result.rejected}
    batch.response = answer if idempotency_key else None
    try:
        batch.save(force_insert=True)  # one statement: durable when it returns (or with the caller's transaction)
    except IntegrityError:
        if idempotency_key:  # a concurrent request with the same key won the race
            previous = _previous(project, idempotency_key)
            if previous is not None:
                return _replay(previous, digest)
        raise
    except DatabaseError as exc:
        # The class says why (OperationalError, DiskFull, …); its text may quote data, so it stays out.
        log.warning("answered 503: the outbox could not be written (%s)", type(exc.__cause__ or exc).__name__)
        raise IngestError(
            503, "the outbox cannot be written right now; retry", {"Retry-After": str(RETRY_AFTER_SECONDS)}
        ) from None
    if result.accepted:
        transaction.on_commit(dispatch.batch_accepted)  # at once unless a caller's transaction holds it
    telemetry.count_accepted(len(result.accepted), len(result.rejected))
    return Answer(202, answer)


def _previous(project: Project, key: str) -> Batch | None:
    try:
        return Batch.objects.only("body_sha256", "response").filter(project=project, idempotency_key=key).first()
    except DatabaseError as exc:
        log.warning("answered 503: the outbox could not be read (%s)", type(exc.__cause__ or exc).__name__)
        raise IngestError(
            503, "the outbox cannot be read right now; retry", {"Retry-After": str(RETRY_AFTER_SECONDS)}
        ) from None


def _replay(previous: Batch, digest: str) -> Answer:
    if previous.body_sha256 != digest:
        raise IngestError(422, "Idempotency-Key was already used with a different body")
    if previous.response is None:  # every keyed batch stores its answer in the same transaction
        raise RuntimeError(f"batch {previous.pk} has an Idempotency-Key but no stored answer")
    return Answer(202, previous.response, replayed=True)
