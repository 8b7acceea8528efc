"""Nothing accepted is lost and nothing is counted twice: idempotency, duplicates, crashes, outages."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from ingest import drain as drain_module
from ingest.models import Batch, BatchStatus
from ingest.outbox import replay_dead
from ingest.tests.helpers import drain, post_calls, raw_count, raw_rows
from ledger.models import DirtyBucket
from tenancy.models import Project


def calls(n: int, prefix: str = "e", tokens: int = 1000) -> list[dict[str, object]]:
    return [
        {"event_id": f"{prefix}{i}", "provider": "openai", "model": "gpt-4o-mini", "input_tokens": tokens,
         "output_tokens": 10, "timestamp": "2026-11-20T10:00:00Z", "feature": "chat"}
        for i in range(n)
    ]  # fmt: skip


def total_cost(project: Project) -> int:
    return sum(r["cost_pusd"] for r in raw_rows(project, "cost_pusd"))


@pytest.mark.django_db
def test_idempotency_key_replay_returns_first_answer_and_stores_once(api: APIClient, project: Project) -> None:
    body: list[dict[str, Any]] = [*calls(3), {"provider": "openai"}]
    first = post_calls(api, body, **{"Idempotency-Key": "k-1"})
    again = post_calls(api, body, **{"Idempotency-Key": "k-1"})
    assert first.status_code == again.status_code == 202
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert first.json()["accepted"] == 3
    assert first.json()["rejected"][0]["index"] == 3
    assert Batch.objects.filter(project=project).count() == 1
    drain()
    assert raw_count(project) == 3


@pytest.mark.django_db
def test_idempotency_key_reused_with_another_body_is_refused(api: APIClient, project: Project) -> None:
    assert post_calls(api, calls(1), **{"Idempotency-Key": "k-2"}).status_code == 202
    response = post_calls(api, calls(2), **{"Idempotency-Key": "k-2"})
    assert response.status_code == 422
    assert "different body" in response.json()["detail"]


@pytest.mark.django_db
def test_idempotency_keys_are_per_project(api: APIClient, project: Project, ch: object) -> None:
    from tenancy.models import ApiKey, Organization

    other = Project.objects.create(organization=Organization.objects.create(name="other-org"), name="other")
    other_api = APIClient()
    other_api.credentials(HTTP_AUTHORIZATION=f"Bearer {ApiKey.issue(other, ['ingest'])[1]}")
    assert post_calls(api, calls(1), **{"Idempotency-Key": "same"}).json()["accepted"] == 1
    assert post_calls(other_api, calls(2), **{"Idempotency-Key": "same"}).json()["accepted"] == 2


@pytest.mark.django_db
def test_same_event_id_in_two_batches_is_counted_once(api: APIClient, project: Project) -> None:
    post_calls(api, calls(5))
    drain()
    post_calls(api, calls(5))  # a client retry without an Idempotency-Key
    drain()
    assert raw_count(project, final=True) == 5
    assert total_cost(project) == 5 * (1000 * 150_000 + 10 * 600_000)


@pytest.mark.django_db
def test_drain_dying_after_insert_but_before_done_does_not_double_count(
    api: APIClient, project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given a drain whose process dies right after the ClickHouse insert
    post_calls(api, calls(50))

    def die(*args: object, **kwargs: object) -> None:
        raise SystemExit("worker killed")

    monkeypatch.setattr(drain_module.outbox, "complete", die)
    with pytest.raises(SystemExit):
        drain()
    batch = Batch.objects.get(project=project)
    assert batch.status == BatchStatus.PROCESSING
    assert raw_count(project) == 50
    monkeypatch.undo()
    # when its lease runs out and another drain takes the batch
    Batch.objects.filter(pk=batch.pk).update(lease_until=timezone.now() - timedelta(seconds=1))
    result = drain()
    # then the batch is done and every record is there exactly once, even before any merge
    assert result.batches == 1
    batch.refresh_from_db()
    assert batch.status == BatchStatus.DONE
    assert raw_count(project) == 50
    assert raw_count(project, final=True) == 50


@pytest.mark.django_db
def test_a_leased_batch_is_not_taken_by_a_second_drain(api: APIClient, project: Project) -> None:
    from ingest.outbox import claim

    post_calls(api, calls(1))
    assert len(claim(10)) == 1
    assert claim(10) == []


@pytest.mark.django_db
def test_clickhouse_down_keeps_batches_pending_then_drains_exactly(api: APIClient, project: Project) -> None:
    # given ClickHouse is unreachable
    with override_settings(CLICKHOUSE_URL="http://127.0.0.1:9/"):
        for i in range(3):
            response = post_calls(api, calls(10, prefix=f"b{i}-"))
            # then the API still accepts durably
            assert response.status_code == 202
            assert response.json()["accepted"] == 10
        result = drain()
        assert result.failed == 3
        assert result.batches == 0
        # a second sweep inside the backoff leaves them alone
        assert drain().failed == 0
    pending = Batch.objects.filter(project=project)
    assert {b.status for b in pending} == {BatchStatus.PENDING}
    assert all(b.next_attempt_at > timezone.now() and "OperationalError" in b.last_error for b in pending)
    assert all(b.data_failures == 0 for b in pending)  # an outage never dead-letters
    assert raw_count(project) == 0
    # when ClickHouse is back and the backoff is over
    pending.update(next_attempt_at=timezone.now())
    result = drain()
    # then everything lands once, with exact totals
    assert result.batches == 3
    assert raw_count(project, final=True) == 30
    assert total_cost(project) == 30 * (1000 * 150_000 + 10 * 600_000)
    assert DirtyBucket.objects.filter(project=project).count() == 1


@pytest.mark.django_db
def test_a_batch_that_cannot_be_written_goes_dead_and_can_be_replayed(
    api: APIClient, project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    post_calls(api, calls(2, prefix="good-"))
    post_calls(api, calls(2, prefix="bad-"))
    real_build = drain_module.build_rows

    def build_rows_failing_on_bad(batches, books, version):
        if any(b.record_count and b.payload and b"bad-" in bytes(b.payload) for b in batches):
            raise ValueError("cannot price this batch")
        return real_build(batches, books, version)

    monkeypatch.setattr(drain_module, "build_rows", build_rows_failing_on_bad)
    for _ in range(5):  # OUTBOX_MAX_DATA_ATTEMPTS
        drain()
        Batch.objects.filter(status=BatchStatus.PENDING).update(next_attempt_at=timezone.now())
    # the good batch was written despite sharing a drain with the bad one
    assert sorted(Batch.objects.filter(project=project).values_list("status", flat=True)) == ["dead", "done"]
    dead = Batch.objects.get(project=project, status=BatchStatus.DEAD)
    assert "cannot price this batch" in dead.last_error
    assert raw_count(project) == 2
    # an operator fixes the cause and replays
    monkeypatch.undo()
    assert replay_dead() == 1
    drain()
    assert raw_count(project, final=True) == 4


@pytest.mark.django_db
@override_settings(OUTBOX_DRAIN_BATCHES=2)
def test_pipelined_drain_writes_every_group_once(api: APIClient, project: Project) -> None:
    for i in range(5):
        post_calls(api, calls(3, prefix=f"g{i}-"))
    result = drain()
    assert (result.batches, result.records, result.failed) == (5, 15, 0)
    assert raw_count(project) == 15
    assert set(Batch.objects.filter(project=project).values_list("status", flat=True)) == {BatchStatus.DONE}


@pytest.mark.django_db
@override_settings(OUTBOX_DRAIN_BATCHES=2)
def test_pipelined_drain_stops_at_a_failed_insert_and_keeps_the_rest_pending(
    api: APIClient, project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(5):
        post_calls(api, calls(1, prefix=f"h{i}-"))
    real_insert = drain_module.insert_rows
    inserts: list[int] = []

    def insert_failing_second_time(rows, token):
        inserts.append(rows.count)
        if len(inserts) == 2:
            from clickhouse_connect.driver.exceptions import OperationalError

            raise OperationalError("connection refused")
        real_insert(rows, token)

    monkeypatch.setattr(drain_module, "insert_rows", insert_failing_second_time)
    result = drain()
    statuses = sorted(Batch.objects.filter(project=project).values_list("status", flat=True))
    # the first group landed; the second waits for a retry; the third, already claimed and priced
    # while the second was being inserted, is still written; then the drain stops claiming
    assert result.batches == 3
    assert result.failed == 2
    assert statuses.count(BatchStatus.DONE) == 3
    assert statuses.count(BatchStatus.PENDING) == 2
    assert raw_count(project) == 3
    assert len(inserts) == 3


@pytest.mark.django_db
def test_a_drain_whose_lease_was_taken_over_does_not_touch_the_batch(api: APIClient, project: Project) -> None:
    from ingest.outbox import claim, complete, release

    post_calls(api, calls(1))
    (stale,) = claim(1)
    Batch.objects.filter(pk=stale.pk).update(lease_until=timezone.now() - timedelta(seconds=1))
    (fresh,) = claim(1)  # another drain takes the expired lease
    assert release(stale, "slow insert", data_error=True) == BatchStatus.PENDING
    assert complete([stale], {}) == 0
    current = Batch.objects.get(pk=stale.pk)
    assert (current.status, current.data_failures, current.last_error) == (BatchStatus.PROCESSING, 0, "")
    assert complete([fresh], {}) == 1
