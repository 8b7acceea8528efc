"""Redis is an optimisation: with it stopped, pages still render and ingest does not wait on it.

A private redis-server is started for the test and killed by its PID: the shared one is never touched.
"""

from __future__ import annotations

import io
import socket
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache, caches
from django.test import Client, override_settings
from rest_framework.test import APIClient

from config import cache as resilient
from tenancy.models import ApiKey, Membership, Organization, Project, Role


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def private_redis() -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = _free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    try:
        yield server, port
    finally:
        server.kill()
        server.wait(10)


def test_pages_and_ingest_work_while_redis_is_stopped(
    private_redis: tuple[subprocess.Popen[bytes], int], transactional_db: Any, ch: Any, app_log: io.StringIO
) -> None:
    server, port = private_redis
    org = Organization.objects.create(name="redis-outage")
    project = Project.objects.create(organization=org, name="redis-outage")
    key = ApiKey.issue(project, ["ingest", "read"])[1]
    user = get_user_model().objects.create_user("redis-outage-user", password="pw")
    Membership.objects.create(user=user, organization=org, role=Role.ADMIN)
    redis_only = {"default": {"BACKEND": "config.cache.ResilientRedisCache", "LOCATION": f"redis://127.0.0.1:{port}/0"}}
    with override_settings(CACHES=redis_only, INGEST_RATE_LIMIT="1000/min"):
        cache.set("probe", 1)
        assert cache.get("probe") == 1  # Redis up: a real cache
        page = Client(raise_request_exception=False)
        page.force_login(user)
        assert page.get(f"/p/{project.pk}/").status_code == 200

        server.kill()
        server.wait(10)
        assert page.get(f"/p/{project.pk}/").status_code == 200  # the filter choices are simply not cached
        api = APIClient()
        api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
        started = time.monotonic()
        for _ in range(5):
            answer = api.post("/v1/calls", {"calls": [{"provider": "openai", "model": "gpt-4o"}]}, format="json")
            assert answer.status_code == 202
        # After the first failure the cache is skipped: no request waits for Redis.
        backend = caches["default"]
        assert isinstance(backend, resilient.ResilientRedisCache)
        assert backend._broken_until > time.monotonic()
        assert time.monotonic() - started < 5  # generous: without the breaker each request retried Redis
        assert cache.get("probe") is None
    logged = app_log.getvalue()
    assert "cache unavailable" in logged
    assert key not in logged
