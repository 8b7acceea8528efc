"""Evaluation runs right after rollups: the rollup task, the embedded runner, and the command."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from alerts.models import AlertState, Channel
from alerts.tests.helpers import budget, receiver
from ingest.tests.helpers import drain, post_calls
from ledger.tasks import rollup_dirty_task
from ops.embedded import EmbeddedRunner
from tenancy.models import Project


def test_the_rollup_task_evaluates_the_projects_it_touched(project: Project, api: APIClient) -> None:
    b = budget(project, "10.00")
    now = datetime.now(UTC)
    assert post_calls(api, [{"provider": "openai", "model": "gpt-4o", "cost_usd": "6.00",
                             "timestamp": now.isoformat()}]).status_code == 202  # fmt: skip
    drain()
    rollup_dirty_task.apply()
    assert list(AlertState.objects.filter(budget=b).values_list("threshold", "status")) == [(50, "fired")]


def test_check_budgets_command(project: Project, api: APIClient) -> None:
    b = budget(project, "10.00")
    post_calls(api, [{"provider": "openai", "model": "gpt-4o", "cost_usd": "9.00"}])
    drain()
    from ledger.rollups import rollup_dirty

    rollup_dirty()  # the plain function: no evaluation hook
    assert not AlertState.objects.filter(budget=b).exists()
    out = StringIO()
    call_command("check_budgets", "--project", project.name, stdout=out)
    assert "evaluated 1 budget(s)" in out.getvalue()
    assert AlertState.objects.get(budget=b, status="fired").threshold == 80


@pytest.fixture
def runner(transactional_db: object) -> Iterator[EmbeddedRunner]:
    runner = EmbeddedRunner(idle_wait=5.0)
    runner.start()
    yield runner
    runner.stop()


@pytest.mark.django_db(transaction=True)
def test_embedded_runner_alerts_within_seconds_of_accept(
    runner: EmbeddedRunner, project: Project, api: APIClient
) -> None:
    with receiver() as hook:
        channel = Channel.objects.create(
            project=project, kind="webhook", name="hook", config={"url": hook.url, "secret": "s" * 20}
        )
        budget(project, "1.00", rules=[("actual", [100], [channel])])
        record = {"provider": "openai", "model": "gpt-4o", "cost_usd": "1.25",
                  "timestamp": (datetime.now(UTC) - timedelta(seconds=1)).isoformat()}  # fmt: skip
        assert post_calls(api, [record]).status_code == 202
        # accept nudges the drain, which rolls up and evaluates in its thread: this does not wait for
        # the 5 s idle poll nor for the scheduled rollup (10 s after the runner started)
        assert hook.wait_for(1, timeout=9.0)
        assert hook.requests[0].json()["rule"]["threshold"] == "100"
