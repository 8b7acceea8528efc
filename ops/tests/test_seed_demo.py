"""seed_demo: realistic traffic once; a second run adds nothing and hands out a fresh key."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from alerts.models import Budget
from ledger.clickhouse.client import ClickHouse
from tenancy.models import ApiKey, Project


def seed(name: str) -> str:
    out = StringIO()
    call_command("seed_demo", "--calls", "3000", "--project", name, stdout=out, stderr=StringIO())
    return out.getvalue()


@pytest.mark.django_db
def test_seed_demo_is_realistic_and_runs_once(ch: ClickHouse) -> None:
    first = seed("demo-seed-test")
    project = Project.objects.get(name="demo-seed-test")
    summary = ch.query(
        "SELECT count(), uniqExact(feature), uniqExact(customer_id), uniqExact(provider), uniqExact(route_version),"
        " countIf(attempt > 1), countIf(cache_hit), countIf(status != 'ok'), countIf(traffic != 'live'),"
        " countIf(cost_source = 'unpriced'), countIf(cost_pusd > 0)"
        " FROM llm_calls FINAL WHERE project_id = {p:UInt64}",
        parameters={"p": project.pk},
    ).result_rows[0]
    calls, features, customers, providers, versions, retries, hits, errors, non_live, unpriced, paid = summary
    assert calls >= 3000
    assert features >= 5
    assert customers >= 10
    assert providers >= 3
    assert versions == 2
    assert min(retries, hits, errors, non_live, unpriced) > 0
    assert paid > calls * 0.8
    key_line = next(line for line in first.splitlines() if "API key:" in line)
    assert "login:    admin / " in first

    second = seed("demo-seed-test")
    again = ch.command("SELECT count() FROM llm_calls WHERE project_id = {p:UInt64}", parameters={"p": project.pk})
    assert int(again) == calls
    assert "already present" in second
    # the first key was revoked and a new one issued: keys are only ever shown once
    assert key_line not in second
    assert ApiKey.objects.filter(project=project, name="demo", revoked_at__isnull=True).count() == 1
    # Two demo budgets sized from the demo's spend, with rules, created once.
    budgets = {b.name: b for b in Budget.objects.filter(project=project)}
    assert set(budgets) == {"Monthly LLM spend", "chat-assistant (tight)"}
    assert budgets["Monthly LLM spend"].amount > budgets["chat-assistant (tight)"].amount >= 1
    assert sorted(r.kind for r in budgets["Monthly LLM spend"].rules.all()) == ["actual", "capacity", "forecast"]
