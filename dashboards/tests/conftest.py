"""Dashboard fixtures: a project with a few days of varied traffic, and a user for each role."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from rest_framework.test import APIClient

from ingest.tests.helpers import drain, post_calls
from ledger.feedback import sync_feedback
from ledger.rollups import rollup_dirty
from tenancy.models import Membership, Organization, Project

TODAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
DAY1 = TODAY - timedelta(days=3)  # three whole days ago: inside the default 30-day range
ROLES = ("viewer", "finance", "engineer", "admin")


def call(n: int, day: int, hour: int, **fields: Any) -> dict[str, Any]:
    return {
        "event_id": f"ev-{n}",
        "timestamp": (DAY1 + timedelta(days=day, hours=hour)).isoformat(),
        "provider": "openai",
        "model": "gpt-4o-mini",
        "feature": "chat",
        "customer_id": "acme",
        "route_version": "v1",
        "route": "mini",
        "input_tokens": 1000,
        "output_tokens": 200,
        "ttft_ms": 300.0,
        "latency_ms": 900.0,
        **fields,
    }


TRAFFIC = [
    call(1, 0, 9),
    call(2, 0, 10, customer_id="globex"),
    call(3, 0, 11, model="gpt-4o", route="full", route_version="v2", latency_ms=2400.0, ttft_ms=700.0),
    call(4, 1, 9, feature="search", customer_id="globex", input_tokens=4000, cache_read_tokens=3000),
    call(5, 1, 12, feature="search", status="error", error_type="rate_limit", output_tokens=0),
    call(6, 1, 12, feature="search", attempt=2),  # the retry of 5
    call(7, 2, 8, traffic="eval", route_version="v2"),
    call(8, 2, 9, cache_hit=True),
    call(9, 2, 10, provider="selfhost", model="llama-ft", feature="compose"),  # unpriced
    call(10, 2, 11, model="gpt-4o", route="full", route_version="v2", customer_id="globex", latency_ms=3100.0),
]


def ingest(api: APIClient, calls: list[dict[str, Any]]) -> None:
    assert post_calls(api, calls).status_code == 202
    drain()
    sync_feedback()
    rollup_dirty()


@pytest.fixture
def traffic(api: APIClient, project: Project) -> Project:
    ingest(api, TRAFFIC)
    api.post("/v1/feedback", {"event_id": "ev-3", "score": 1.0}, format="json")
    api.post("/v1/feedback", {"event_id": "ev-1", "score": 0.0}, format="json")
    sync_feedback()
    rollup_dirty()
    return project


@pytest.fixture
def member(project: Project) -> Any:
    """member(role) → a logged-in test client for a user of that role in the project's organization."""

    def make(role: str) -> Client:
        user, created = get_user_model().objects.get_or_create(username=f"{role}-{project.pk}")
        if created:
            Membership.objects.create(user=user, organization=project.organization, role=role)
        client = Client()
        client.force_login(user)
        client.user = user  # type: ignore[attr-defined]
        return client

    return make


@pytest.fixture
def outsider(db: Any) -> Client:
    other = Project.objects.create(organization=Organization.objects.create(name="elsewhere-org"), name="elsewhere")
    user = get_user_model().objects.create_user("outsider", password="x")
    Membership.objects.create(user=user, organization=other.organization, role="admin")
    client = Client()
    client.force_login(user)
    return client
