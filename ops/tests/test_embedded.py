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
def test_accepted_batch_is_drained_in_process(runner: EmbeddedRunner, api: APIClient, project: Project) -> None:
    record = {"provider": "openai", "model": "gpt-4o", "input_tokens": 10, "output_tokens": 1}
    assert post_calls(api, [record, record]).status_code == 202
    # the accept path nudges the runner, so this does not wait for its 5 s idle poll
    assert wait_for(lambda: raw_count(project) == 2, deadline_seconds=4.5)
