"""Rollup claims are short and renewed while the rollup runs: a killed worker's hours come back
within seconds, a recompute that outlasts the lease keeps its hours, and a renewal never takes
back an hour another rollup claimed after the lease ran out."""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.conf import settings as django_settings

from config.schedule import PERIODIC
from ledger import rollups
from ledger.claims import Mark, claim_dirty, release_all_claims, renew_claim
from ledger.dirty import mark_dirty
from ledger.models import DirtyBucket
from tenancy.models import Project

HOUR = (datetime.now(UTC) - timedelta(days=1)).replace(minute=0, second=0, microsecond=0)


def test_a_killed_rollup_s_hours_are_claimed_again_within_thirty_seconds() -> None:
    sweep = next(p for p in PERIODIC if p.name == "rollup-dirty")
    assert django_settings.ROLLUP_CLAIM_SECONDS + sweep.every_seconds <= 30


@pytest.mark.django_db
def test_a_renewal_never_takes_back_an_hour_another_rollup_claimed(project: Project) -> None:
    now = datetime.now(UTC)
    lease = timedelta(seconds=django_settings.ROLLUP_CLAIM_SECONDS)
    mark_dirty({project.pk: {HOUR}}, now)
    dead, _ = claim_dirty(10, now)
    assert renew_claim(dead, now + lease * 0.5) == 1  # renewed while it holds it
    assert claim_dirty(10, now + lease * 1.2)[1] == []  # past the first lease: still held
    theirs, marks = claim_dirty(10, now + lease * 2)  # the holder died: the renewed lease ran out
    assert [m[2] for m in marks] == [HOUR]
    assert renew_claim(dead, now + lease * 2) == 0
    assert list(DirtyBucket.objects.values_list("claim", flat=True)) == [theirs]


@pytest.mark.django_db
def test_release_all_claims_hands_every_claimed_hour_back(project: Project) -> None:
    mark_dirty({project.pk: {HOUR, HOUR + timedelta(hours=1)}})
    claim_dirty(1)
    assert release_all_claims() == 1
    assert set(DirtyBucket.objects.values_list("claim", "claimed_until")) == {(None, None)}


@pytest.mark.django_db(transaction=True)
def test_a_recompute_longer_than_the_lease_keeps_its_hours(
    project: Project, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.ROLLUP_CLAIM_SECONDS = 1
    mark_dirty({project.pk: {HOUR, HOUR + timedelta(hours=1)}})
    real = rollups.recompute
    offered: list[list[Mark]] = []

    def slow_recompute(project_id: int, hours: Iterable[datetime]) -> None:
        for _ in range(4):  # four leases long; another rollup tries to claim meanwhile
            time.sleep(settings.ROLLUP_CLAIM_SECONDS)
            offered.append(claim_dirty(10)[1])
        real(project_id, hours)

    monkeypatch.setattr(rollups, "recompute", slow_recompute)
    assert rollups.rollup_dirty().hours == 2
    assert offered == [[], [], [], []]
    assert not DirtyBucket.objects.exists()
