"""GET /v1/capacity: the answer's shape and exact figures, its filters, access and what it refuses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from rest_framework.test import APIClient

from api.tests.crud import key_client
from ingest.tests.helpers import drain, post_calls
from ledger.models import RateLimit
from ledger.rollups import rollup_dirty
from tenancy.models import Project

T0 = (datetime.now(UTC) - timedelta(days=2)).replace(hour=9, minute=0, second=0, microsecond=0)
RANGE = {"from": (T0 - timedelta(days=1)).isoformat(), "to": (T0 + timedelta(days=1)).isoformat()}
FIELDS = {
    "provider", "model", "models", "peak_tpm", "peak_itpm", "peak_uncached_itpm", "peak_otpm", "peak_rpm", "p99_tpm",
    "p99_rpm", "peak_minute", "limit_tpm", "limit_rpm", "limit_itpm", "limit_otpm", "limit_source", "headroom",
    "rate_limited_calls", "forecast",
}  # fmt: skip


def at(minutes: float) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


@pytest.fixture
def traffic(api: APIClient, project: Project) -> Project:
    calls: list[dict[str, Any]] = [
        {"event_id": "a", "timestamp": at(0), "provider": "openai", "model": "gpt-4o", "input_tokens": 6000,
         "cache_read_tokens": 2000, "output_tokens": 1000, "feature": "chat", "ratelimit_limit_tokens": 30_000,
         "ratelimit_limit_requests": 500},
        {"event_id": "b", "timestamp": at(0.5), "provider": "openai", "model": "gpt-4o", "input_tokens": 1000,
         "output_tokens": 500, "feature": "search"},
        {"event_id": "c", "timestamp": at(1), "provider": "openai", "model": "gpt-4o", "status": "error",
         "error_type": "rate_limit"},
    ]  # fmt: skip
    assert post_calls(api, calls).json()["accepted"] == 3
    drain()
    rollup_dirty()
    return project


@pytest.mark.django_db
def test_the_answer_holds_every_field_with_exact_figures(traffic: Project) -> None:
    answer = key_client(traffic, "read").get("/v1/capacity", RANGE)
    assert answer.status_code == 200, answer.content
    [row] = answer.json()["data"]
    assert FIELDS <= set(row)
    assert {k: row[k] for k in sorted(FIELDS - {"forecast"})} == {
        "provider": "openai", "model": "gpt-4o", "models": ["gpt-4o"], "peak_tpm": 8500, "peak_itpm": 7000,
        "peak_uncached_itpm": 5000, "peak_otpm": 1500, "peak_rpm": 2, "p99_tpm": 8500, "p99_rpm": 2,
        "peak_minute": at(0), "limit_tpm": 30_000, "limit_rpm": 500, "limit_itpm": None, "limit_otpm": None,
        "limit_source": "observed", "headroom": "0.716667", "rate_limited_calls": 1,
    }  # fmt: skip
    assert row["forecast"] == {"weekly_growth": None, "limit_reached_on": None}  # one day: too little to fit


@pytest.mark.django_db
def test_a_configured_limit_wins_and_filters_narrow(traffic: Project) -> None:
    RateLimit.objects.create(project=traffic, provider="openai", model="gpt-4o", tpm=10_000)
    client = key_client(traffic, "read")
    [row] = client.get("/v1/capacity", RANGE).json()["data"]
    assert (row["limit_tpm"], row["limit_rpm"], row["limit_source"], row["headroom"]) == (
        10_000, 500, "configured", "0.150000",
    )  # fmt: skip
    [search] = client.get("/v1/capacity", {**RANGE, "feature": "search"}).json()["data"]
    assert (search["peak_tpm"], search["rate_limited_calls"]) == (1500, 0)
    assert client.get("/v1/capacity", {**RANGE, "model": "other"}).json()["data"] == []


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"to": RANGE["to"]}, "from is required"),
        ({**RANGE, "customer_id": "acme"}, "unknown parameter 'customer_id'"),
        ({**RANGE, "granularity": "day"}, "unknown parameter 'granularity'"),
        ({**RANGE, "bogus": "1"}, "unknown parameter 'bogus'"),
        ({"from": "2026-11-20T10:00:30Z", "to": "2026-11-21T00:00:00Z"}, "whole minute"),
        ({"from": RANGE["to"], "to": RANGE["from"]}, "to must be after from"),
        ({"from": "yesterday", "to": RANGE["to"]}, "not an RFC 3339"),
    ],
)
def test_bad_input_is_400_saying_what_is_wrong(project: Project, params: dict[str, str], message: str) -> None:
    answer = key_client(project, "read").get("/v1/capacity", params)
    assert answer.status_code == 400
    assert message in answer.json()["detail"]


@pytest.mark.django_db
def test_access_needs_the_read_scope_and_sees_one_project(traffic: Project) -> None:
    assert APIClient().get("/v1/capacity", RANGE).status_code == 401
    assert key_client(traffic, "ingest").get("/v1/capacity", RANGE).status_code == 403
    other = Project.objects.create(organization=traffic.organization, name="elsewhere")
    assert key_client(other, "read").get("/v1/capacity", RANGE).json()["data"] == []
