"""The ingest doors keep a found API key a few seconds (``INGEST_KEY_CACHE_SECONDS``): no look-up on
most requests, and still no request accepted with a key revoked or deleted in this process."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from tenancy.models import ApiKey, Project

pytestmark = pytest.mark.django_db

CALL = {"provider": "openai", "model": "gpt-4o-mini", "input_tokens": 10, "output_tokens": 2}


def post(api: APIClient) -> Any:
    return api.post("/v1/calls", {"calls": [CALL]}, format="json")


def key_lookups(api: APIClient) -> tuple[int, int]:
    with CaptureQueriesContext(connection) as queries:
        status = post(api).status_code
    return status, sum('FROM "tenancy_apikey"' in q["sql"] for q in queries.captured_queries)


def test_a_found_key_is_not_looked_up_again_within_the_ttl(api: APIClient) -> None:
    assert key_lookups(api) == (202, 1)
    assert key_lookups(api) == (202, 0)
    assert key_lookups(api) == (202, 0)


def test_the_read_api_looks_its_key_up_every_time(project: Project) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {ApiKey.issue(project, ['read'])[1]}")
    for _ in range(2):
        with CaptureQueriesContext(connection) as queries:
            answer = client.get("/v1/usage", {"from": "2026-11-01", "to": "2026-11-02", "metrics": "calls"})
            assert answer.status_code == 200, answer.content
        assert sum('FROM "tenancy_apikey"' in q["sql"] for q in queries.captured_queries) == 1


def test_a_key_revoked_here_is_refused_at_once(api: APIClient, project: Project) -> None:
    assert post(api).status_code == 202
    ApiKey.objects.get(project=project).revoke()
    assert post(api).status_code == 401


def test_a_key_deleted_here_is_refused_at_once(api: APIClient, project: Project) -> None:
    assert post(api).status_code == 202
    ApiKey.objects.get(project=project).delete()
    assert post(api).status_code == 401


def test_a_key_revoked_elsewhere_is_refused_once_the_ttl_passes(
    api: APIClient, project: Project, settings: Any
) -> None:
    settings.INGEST_KEY_CACHE_SECONDS = 1
    assert post(api).status_code == 202
    # Another process revoking it: a bare UPDATE, no signal reaches this process's cache.
    ApiKey.objects.filter(project=project).update(revoked_at=timezone.now())
    assert post(api).status_code == 202  # within the TTL, as documented
    time.sleep(1.1)
    assert post(api).status_code == 401


def test_zero_turns_the_cache_off(api: APIClient, settings: Any) -> None:
    settings.INGEST_KEY_CACHE_SECONDS = 0
    assert key_lookups(api) == (202, 1)
    assert key_lookups(api) == (202, 1)
