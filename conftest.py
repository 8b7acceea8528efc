"""Shared fixtures: a migrated chDB per test run, and a fresh project (with keys) per test.

Project ids come from a database sequence that a test's rollback does not rewind, so every test
sees its own slice of ClickHouse without truncating anything.
"""

from __future__ import annotations

import io
import itertools
import logging
import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest
from rest_framework.test import APIClient

from config.logs import ScrubbingFormatter
from ledger.clickhouse.client import ClickHouse, get_clickhouse
from ledger.clickhouse.migrate import migrate
from tenancy.models import ApiKey, Organization, Project

_names = itertools.count()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Remove the run's scratch directory (chDB data, SQLite-free var/) if the settings made it."""
    if os.environ.get("METERLINE_TEST_OWNS_VAR_DIR") == "1":
        shutil.rmtree(os.environ["METERLINE_VAR_DIR"], ignore_errors=True)


@pytest.fixture
def app_log() -> Iterator[io.StringIO]:
    """What the configured log handler (settings.LOGGING, scrubbing formatter) writes during the test."""
    [handler] = [h for h in logging.getLogger().handlers if isinstance(h.formatter, ScrubbingFormatter)]
    if not isinstance(handler, logging.StreamHandler):
        raise TypeError("the configured handler is a stream handler")
    buffer = io.StringIO()
    previous = handler.setStream(buffer)
    try:
        yield buffer
    finally:
        handler.setStream(previous)


@pytest.fixture(scope="session")
def ch(django_db_setup: Any, django_db_blocker: Any) -> ClickHouse:
    """The migrated ClickHouse engine (chDB) of this test run."""
    client = get_clickhouse()
    migrate(client)
    return client


@pytest.fixture
def project(db: Any, ch: ClickHouse) -> Project:
    org = Organization.objects.create(name=f"org-{next(_names)}")
    return Project.objects.create(organization=org, name=f"project-{next(_names)}")


@pytest.fixture
def ingest_key(project: Project) -> str:
    return ApiKey.issue(project, ["ingest"])[1]


@pytest.fixture
def api(ingest_key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {ingest_key}")
    return client
