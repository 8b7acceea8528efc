"""The embedded runner drains what the API accepted without any broker, within seconds."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from rest_framework.test import APIClient

from ingest.tests.helpers import post_calls, raw_count
from ops.embedded import EmbeddedRunner
from tenancy.models import Project


@pytest.fixture
def runner(transactional_db: object) -> Iterator[EmbeddedRunner]:
    runner = EmbeddedRunner(idle_wait=5.0)
    runner.start()
    yield runner
    runner.stop()


def wait_for(predicate: object, deadline_seconds: float) -> bool:
    stop = time.monotonic() + deadline_seconds
    while time.monotonic() < stop:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


@pytest.mark.django_db(transaction=True)
def test_accepted_batch_is_drained_in_process(
    runner: EmbeddedRunner, api: APIClient, project: Project, caplog: pytest.LogCaptureFixture
) -> None:
    record = {"provider": "openai", "model": "gpt-4o", "input_tokens": 10, "output_tokens": 1}
    assert post_calls(api, [record, record]).status_code == 202
    # the accept path nudges the runner, so this does not wait for its 5 s idle poll
    assert wait_for(lambda: raw_count(project) == 2, deadline_seconds=4.5)
    # and the periodic schedule ran its tasks (all registered) without an error
    assert not [r for r in caplog.records if r.name == "ops.embedded" and r.levelname == "ERROR"]


@pytest.mark.django_db(transaction=True)
def test_accepted_record_is_visible_in_usage_within_ten_seconds(
    runner: EmbeddedRunner, api: APIClient, project: Project
) -> None:
    from datetime import UTC, datetime, timedelta

    from tenancy.models import ApiKey

    reader = APIClient()
    reader.credentials(HTTP_AUTHORIZATION=f"Bearer {ApiKey.issue(project, ['read'])[1]}")
    now = datetime.now(UTC)
    query = {
        "from": (now - timedelta(hours=1)).isoformat(),
        "to": (now + timedelta(hours=1)).isoformat(),
        "granularity": "total",
        "metrics": "calls",
    }
    accepted_at = time.monotonic()
    record = {"provider": "openai", "model": "gpt-4o", "input_tokens": 10, "output_tokens": 1}
    assert post_calls(api, [record]).status_code == 202

    def visible() -> bool:
        data = reader.get("/v1/usage", query).json()["data"]
        return bool(data == [{"calls": 1}])

    assert wait_for(visible, deadline_seconds=10.0)
    print(f"ingest-to-visible lag: {time.monotonic() - accepted_at:.2f}s")  # noqa: T201
