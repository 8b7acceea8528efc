"""Outbox leases are short and renewed while a drain works: a renewed lease is never stolen, an
expired one is, and a dead drain's batches are drained by another within the lease."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.db import connections
from django.utils import timezone
from rest_framework.test import APIClient

from config.schedule import PERIODIC
from ingest import drain as drain_module
from ingest import outbox
from ingest.drain import drain_until_empty
from ingest.models import Batch, BatchStatus
from ingest.tests.helpers import post_calls, raw_count
from ledger.raw import RawRows
from tenancy.models import Project


def calls(n: int, prefix: str) -> list[dict[str, object]]:
    return [
        {"event_id": f"{prefix}{i}", "provider": "openai", "model": "gpt-4o", "input_tokens": 5, "output_tokens": 1}
        for i in range(n)
    ]


def test_a_dead_drain_s_batches_are_due_and_swept_within_thirty_seconds() -> None:
    sweep = next(p for p in PERIODIC if p.name == "sweep-outbox")
    assert django_settings.OUTBOX_LEASE_SECONDS + sweep.every_seconds <= 30


@pytest.mark.django_db
def test_a_renewed_lease_is_never_stolen(api: APIClient, project: Project) -> None:
    assert post_calls(api, calls(3, "r-")).status_code == 202
    lease = timedelta(seconds=django_settings.OUTBOX_LEASE_SECONDS)
    t0 = timezone.now()
    leases = outbox.Leases()
    mine = outbox.claim(10, t0)
    leases.hold(mine)
    assert leases.renew(t0 + lease * 0.9) == 1  # renewed before it ran out
    assert outbox.claim(10, t0 + lease * 1.5) == []  # past the first lease: still held
    assert outbox.complete(mine, {}) == 1


@pytest.mark.django_db
def test_an_expired_lease_is_taken_and_its_old_holder_lets_it_go(
    api: APIClient, project: Project, caplog: pytest.LogCaptureFixture
) -> None:
    assert post_calls(api, calls(3, "e-")).status_code == 202
    lease = timedelta(seconds=django_settings.OUTBOX_LEASE_SECONDS)
    t0 = timezone.now()
    dead = outbox.Leases()
    taken = outbox.claim(10, t0)
    dead.hold(taken)
    # the holder stopped renewing; after its lease another drain claims the batch
    theirs = outbox.claim(10, t0 + lease + timedelta(seconds=1))
    assert [b.id for b in theirs] == [b.id for b in taken]
    # a late renewal does not take it back, and the old holder can no longer complete it
    assert dead.renew(t0 + lease + timedelta(seconds=2)) == 0
    assert dead.held() == []
    assert "lease lost" in caplog.text
    assert outbox.complete(taken, {}) == 0
    assert outbox.complete(theirs, {}) == 1


@pytest.mark.django_db(transaction=True)
def test_a_killed_drain_s_batches_are_drained_by_another_within_the_lease(api: APIClient, project: Project) -> None:
    """Two drains as threads: the first claims and dies (stops renewing, never completes); the second,
    sweeping like the periodic task, drains the batches within one lease (the default, no override)."""
    for i in range(4):
        assert post_calls(api, calls(25, f"k{i}-")).status_code == 202

    def dead_drain() -> None:
        try:
            assert len(outbox.claim(40)) == 4
        finally:
            connections.close_all()

    killed = threading.Thread(target=dead_drain)
    killed.start()
    killed.join()
    died_at = time.monotonic()
    assert Batch.objects.filter(project=project, status=BatchStatus.PROCESSING).count() == 4
    deadline = died_at + django_settings.OUTBOX_LEASE_SECONDS + 10
    while raw_count(project) < 100 and time.monotonic() < deadline:
        drain_until_empty(deadline_seconds=5)
        time.sleep(0.5)
    assert raw_count(project, final=True) == 100
    assert time.monotonic() - died_at <= django_settings.OUTBOX_LEASE_SECONDS + 5
    assert set(Batch.objects.filter(project=project).values_list("status", flat=True)) == {BatchStatus.DONE}


@pytest.mark.django_db(transaction=True)
def test_a_slow_insert_keeps_its_lease_while_other_drains_try_to_claim(
    api: APIClient, project: Project, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The insert runs on the drain's helper thread for several leases; the drain renews meanwhile."""
    settings.OUTBOX_LEASE_SECONDS = 2
    for i in range(3):
        assert post_calls(api, calls(10, f"s{i}-")).status_code == 202
    real_insert = drain_module.insert_rows
    inserting = threading.Event()

    def slow_insert(rows: RawRows, token: str) -> None:
        inserting.set()
        time.sleep(3 * settings.OUTBOX_LEASE_SECONDS)
        real_insert(rows, token)

    monkeypatch.setattr(drain_module, "insert_rows", slow_insert)
    results: list[drain_module.DrainResult] = []

    def slow_drain() -> None:
        try:
            results.append(drain_until_empty(deadline_seconds=30))
        finally:
            connections.close_all()

    worker = threading.Thread(target=slow_drain)
    worker.start()
    assert inserting.wait(10)
    stolen = []
    while worker.is_alive():
        stolen += outbox.claim(40)  # another drain, again and again
        time.sleep(0.2)
    worker.join()
    assert stolen == []
    assert [(r.batches, r.records, r.failed) for r in results] == [(3, 30, 0)]
    assert raw_count(project) == 30  # one insert: nobody wrote these batches a second time
    assert set(Batch.objects.filter(project=project).values_list("status", flat=True)) == {BatchStatus.DONE}
