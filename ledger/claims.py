"""Claims on dirty hours: a rollup leases the marks it recomputes, so two never take the same hour.

A claim is a token and a lease on each ``DirtyBucket`` row, taken in one short transaction (rows
locked by another claimer are skipped on PostgreSQL; the update only takes unheld marks on every
database). Nothing is locked while ClickHouse recomputes. A mark re-set meanwhile (a drain wrote
to the hour again) keeps its row: it is handed back dirty and recomputed by the next rollup.

The lease is short (``ROLLUP_CLAIM_SECONDS``) and renewed by a helper thread while the rollup runs
(:func:`kept`), so a killed worker's hours are claimed again within one lease, while a recompute
that takes minutes keeps its hours.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from functools import reduce
from operator import or_
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connections, transaction
from django.db.models import Q
from django.utils import timezone

from ledger.models import DirtyBucket

log = logging.getLogger(__name__)

Mark = tuple[int, int, datetime, datetime]  # (pk, project_id, hour, marked_at) of a DirtyBucket


def claim_dirty(limit: int, now: datetime | None = None) -> tuple[uuid.UUID, list[Mark]]:
    """Lease up to ``limit`` of the oldest unheld dirty hours to the caller, for
    ``ROLLUP_CLAIM_SECONDS`` (renew it with :func:`kept` while working on them)."""
    now = now or timezone.now()
    token = uuid.uuid4()
    free = Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)
    lease = now + timedelta(seconds=settings.ROLLUP_CLAIM_SECONDS)
    with transaction.atomic():
        ids = list(
            DirtyBucket.objects.filter(free)
            .order_by("hour")
            .select_for_update(skip_locked=True)
            .values_list("pk", flat=True)[:limit]
        )
        for chunk in _chunks(ids, 500):
            DirtyBucket.objects.filter(Q(pk__in=chunk) & free).update(claim=token, claimed_until=lease)
    marks: list[Mark] = []
    for chunk in _chunks(ids, 500):
        rows = DirtyBucket.objects.filter(pk__in=chunk, claim=token)
        marks += rows.values_list("pk", "project_id", "hour", "marked_at")
    return token, sorted(marks, key=lambda m: m[2])


def finish_claim(token: uuid.UUID, marks: Sequence[Mark]) -> None:
    """Clear the recomputed marks nobody re-marked meanwhile; hand the others back, still dirty."""
    for chunk in _chunks(marks, 200):  # bounded OR chains (SQLite caps expression depth)
        unchanged = reduce(or_, (Q(pk=pk, marked_at=marked) for pk, _, _, marked in chunk))
        DirtyBucket.objects.filter(unchanged, claim=token).delete()
    release_claim(token, marks)


def release_claim(token: uuid.UUID, marks: Sequence[Mark]) -> None:
    """Give claimed marks back without clearing them: any rollup may take them at once."""
    for chunk in _chunks([m[0] for m in marks], 500):
        DirtyBucket.objects.filter(pk__in=chunk, claim=token).update(claim=None, claimed_until=None)


def renew_claim(token: uuid.UUID, now: datetime | None = None) -> int:
    """Extend the lease of the marks ``token`` still holds (a mark another claimer took after the
    lease ran out has their token, and stays theirs). Returns how many it holds."""
    lease = (now or timezone.now()) + timedelta(seconds=settings.ROLLUP_CLAIM_SECONDS)
    return DirtyBucket.objects.filter(claim=token).update(claimed_until=lease)


@contextmanager
def kept(token: uuid.UUID) -> Iterator[None]:
    """Renew ``token``'s claim every third of ``ROLLUP_CLAIM_SECONDS`` while the body runs, on a
    helper thread (a recompute is one long ClickHouse statement after another)."""
    stop = threading.Event()

    def renew_until_stopped() -> None:
        try:
            while not stop.wait(settings.ROLLUP_CLAIM_SECONDS / 3):
                try:
                    renew_claim(token)
                except DatabaseError as exc:  # the next tick tries again; the lease has two more thirds
                    log.warning("could not renew rollup claim %s (%s)", token, type(exc).__name__)
        finally:
            connections.close_all()  # this thread's connections only

    renewer = threading.Thread(target=renew_until_stopped, name="meterline-rollup-claim", daemon=True)
    renewer.start()
    try:
        yield
    finally:
        stop.set()
        renewer.join()


def release_all_claims() -> int:
    """Hand every claimed mark back. Only for a process that has proven no other rollup is alive
    (embedded ``serve``, holding the chDB directory): the claimers are gone."""
    return DirtyBucket.objects.filter(claim__isnull=False).update(claim=None, claimed_until=None)


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
