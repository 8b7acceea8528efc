"""The outbox purge deletes a bounded batch per run and runs again while more are past the window."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from ingest import outbox
from ingest.models import Batch, BatchStatus
from ingest.tasks import purge_outbox
from tenancy.models import Project

WINDOW = timedelta(hours=24)


def batches(project: Project, count: int, status: str, done_hours_ago: float | None) -> set[str]:
    done_at = None if done_hours_ago is None else timezone.now() - timedelta(hours=done_hours_ago)
    made = [
        Batch.objects.create(project=project, payload=b"", record_count=1, status=status, done_at=done_at)
        for _ in range(count)
    ]
    return {str(b.id) for b in made}


def left() -> set[str]:
    return {str(pk) for pk in Batch.objects.values_list("id", flat=True)}


def test_each_run_deletes_at_most_its_limit_and_says_whether_more_wait(project: Project) -> None:
    batches(project, 5, BatchStatus.DONE, 30)
    kept = batches(project, 2, BatchStatus.DONE, 1)  # inside the idempotency window
    kept |= batches(project, 1, BatchStatus.PENDING, None) | batches(project, 1, BatchStatus.DEAD, None)
    assert outbox.purge_done(WINDOW, limit=2) == (2, True)
    assert outbox.purge_done(WINDOW, limit=2) == (2, True)
    assert outbox.purge_done(WINDOW, limit=2) == (1, False)
    assert outbox.purge_done(WINDOW, limit=2) == (0, False)
    assert left() == kept


def test_the_purge_task_runs_again_until_the_expired_batches_are_gone(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outbox, "PURGE_BATCH", 3)
    runs: list[tuple[int, bool]] = []
    real = outbox.purge_done

    def counted(older_than: timedelta, limit: int | None = None) -> tuple[int, bool]:
        runs.append(real(older_than, limit))
        return runs[-1]

    monkeypatch.setattr(outbox, "purge_done", counted)
    batches(project, 7, BatchStatus.DONE, 30)
    kept = batches(project, 2, BatchStatus.DONE, 1)
    purge_outbox.apply()  # no broker: the pipeline runs the follow-up purges in this process
    assert runs == [(3, True), (3, True), (1, False)]
    assert left() == kept
