"""Rollups claim their dirty hours: two at once never recompute the same hour, and a mark re-set
while its hour is recomputed stays dirty for the next rollup."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connections
from rest_framework.test import APIClient

from ingest.tests.helpers import drain, post_calls
from ledger import rollups
from ledger.claims import claim_dirty
from ledger.clickhouse.client import get_clickhouse
from ledger.dirty import mark_dirty
from ledger.models import DirtyBucket
from tenancy.models import ApiKey, Organization, Project

START = (datetime.now(UTC) - timedelta(days=3)).replace(hour=0, minute=0, second=0, microsecond=0)
HOURS = 30


def record_hours(api: APIClient, hours: int = HOURS) -> None:
    """Two calls in each of ``hours`` consecutive hours: 1.25 USD + 0.000001 USD per hour."""
    calls = []
    for h in range(hours):
        at = START + timedelta(hours=h, minutes=7)
        calls += [
            {"provider": "openai", "model": "gpt-4o", "cost_usd": "1.25", "timestamp": at.isoformat()},
            {"provider": "openai", "model": "gpt-4o", "cost_usd": "0.000001", "timestamp": at.isoformat()},
        ]
    assert post_calls(api, calls).status_code == 202
    drain()


def rolled_up(project: Project) -> dict[str, tuple[int, int]]:
    """(calls, cost in pico-USD) of the project in the hour and day tiers."""
    totals = {}
    for table in ("rollup_hour", "rollup_day"):
        row = (
            get_clickhouse()
            .query(
                f"SELECT sum(calls), sum(cost_pusd) FROM {table} FINAL WHERE project_id = {{p:UInt64}}",
                parameters={"p": project.pk},
            )
            .result_rows[0]
        )
        totals[table] = (int(row[0]), int(row[1]))
    return totals


def other_project() -> tuple[Project, APIClient]:
    project = Project.objects.create(organization=Organization.objects.create(name="claims-other"), name="other")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {ApiKey.issue(project, ['ingest'])[1]}")
    return project, client


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_rollups_recompute_disjoint_hours_and_exact_totals(
    project: Project, api: APIClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    second, second_api = other_project()
    record_hours(api)
    record_hours(second_api, 12)
    marked = set(DirtyBucket.objects.values_list("project_id", "hour"))
    assert len(marked) == HOURS + 12
    both_inside = threading.Barrier(2, timeout=30)
    done: dict[str, list[tuple[int, datetime]]] = {"a": [], "b": []}
    real = rollups.recompute

    def recompute(project_id: int, hours: Iterable[datetime]) -> None:
        hours = list(hours)
        name = threading.current_thread().name
        if not done[name]:  # both workers hold their first claim before either recomputes
            both_inside.wait()
        done[name] += [(project_id, h) for h in hours]
        real(project_id, hours)

    monkeypatch.setattr(rollups, "recompute", recompute)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            while rollups.rollup_dirty(max_hours=16).has_more:
                pass
        except BaseException as exc:  # noqa: BLE001 (handed to the main thread, which re-raises it)
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, name=name) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors
    a, b = set(done["a"]), set(done["b"])
    assert len(a) == len(done["a"])  # no hour twice in one worker either
    assert len(b) == len(done["b"])
    assert a
    assert b
    assert not a & b
    assert a | b == marked
    assert not DirtyBucket.objects.exists()
    per_hour = 1_250_000_000_000 + 1_000_000
    assert rolled_up(project) == {
        "rollup_hour": (2 * HOURS, HOURS * per_hour),
        "rollup_day": (2 * HOURS, HOURS * per_hour),
    }
    assert rolled_up(second) == {"rollup_hour": (24, 12 * per_hour), "rollup_day": (24, 12 * per_hour)}


def test_a_mark_set_again_while_its_hour_is_recomputed_stays_dirty(
    project: Project, api: APIClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    record_hours(api, 3)
    first_hour = START
    real = rollups.recompute
    calls: list[list[datetime]] = []

    def recompute(project_id: int, hours: Iterable[datetime]) -> None:
        hours = list(hours)
        calls.append(hours)
        real(project_id, hours)
        if len(calls) == 1:  # a drain writes to the first hour after the recompute read it
            post_calls(api, [{"provider": "openai", "model": "gpt-4o", "cost_usd": "2.00",
                              "timestamp": (first_hour + timedelta(minutes=30)).isoformat()}])  # fmt: skip
            drain()

    monkeypatch.setattr(rollups, "recompute", recompute)
    assert rollups.rollup_dirty().hours == 3
    # still dirty, and free for the next rollup (not held by the claim that just finished)
    assert list(DirtyBucket.objects.values_list("hour", "claim", "claimed_until")) == [(first_hour, None, None)]
    assert rollups.rollup_dirty().hours == 1
    assert calls[1] == [first_hour]
    assert not DirtyBucket.objects.exists()
    per_hour = 1_250_000_000_000 + 1_000_000
    assert rolled_up(project)["rollup_hour"] == (7, 3 * per_hour + 2_000_000_000_000)


def test_a_failed_recompute_hands_its_hours_back(
    project: Project, api: APIClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    record_hours(api, 2)

    def broken(project_id: int, hours: Iterable[datetime]) -> None:
        raise ConnectionError("ClickHouse went away")

    monkeypatch.setattr(rollups, "recompute", broken)
    with pytest.raises(ConnectionError):
        rollups.rollup_dirty()
    assert list(DirtyBucket.objects.values_list("claim", flat=True)) == [None, None]
    monkeypatch.undo()
    assert rollups.rollup_dirty().hours == 2
    assert not DirtyBucket.objects.exists()


def test_a_held_claim_is_skipped_until_its_lease_runs_out(project: Project) -> None:
    now = datetime.now(UTC)
    mark_dirty({project.pk: {START, START + timedelta(hours=1)}}, now)
    token, marks = claim_dirty(1, now)
    assert [m[2] for m in marks] == [START]
    _, others = claim_dirty(10, now)
    assert [m[2] for m in others] == [START + timedelta(hours=1)]  # the held hour is not offered again
    assert claim_dirty(10, now)[1] == []
    later = now + timedelta(hours=2)  # past the lease: a worker that died holding it
    _, taken_over = claim_dirty(10, later)
    assert sorted(m[2] for m in taken_over) == [START, START + timedelta(hours=1)]
    assert not DirtyBucket.objects.filter(claim=token).exists()
