"""seed_demo: realistic traffic once; a second run adds nothing and keeps the login and keys."""

from __future__ import annotations

import re
import stat
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from rest_framework.test import APIClient

from alerts.models import Budget
from ledger.clickhouse.client import ClickHouse
from ledger.models import Feedback
from ledger.reprice import reprice
from ledger.rollups import rollup_dirty
from tenancy.models import ApiKey, Project


def seed(name: str) -> str:
    out = StringIO()
    call_command("seed_demo", "--calls", "3000", "--project", name, stdout=out, stderr=StringIO())
    return out.getvalue()


@pytest.fixture(autouse=True)
def _var_dir(settings: Any, tmp_path: Path) -> None:
    settings.VAR_DIR = tmp_path  # the kept demo credentials go here


def printed(output: str, label: str) -> str:
    match = re.search(rf"^  {label}:\s+(\S+)", output, re.M)
    assert match, (label, output)
    return match.group(1)


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
    assert "login:    admin / " in first

    second = seed("demo-seed-test")
    again = ch.command("SELECT count() FROM llm_calls WHERE project_id = {p:UInt64}", parameters={"p": project.pk})
    assert int(again) == calls
    assert "already present" in second
    assert ApiKey.objects.filter(project=project, name="demo", revoked_at__isnull=True).count() == 1
    # Two demo budgets sized from the demo's spend, with rules, created once.
    budgets = {b.name: b for b in Budget.objects.filter(project=project)}
    assert set(budgets) == {"Monthly LLM spend", "chat-assistant (tight)"}
    assert budgets["Monthly LLM spend"].amount > budgets["chat-assistant (tight)"].amount >= 1
    assert sorted(r.kind for r in budgets["Monthly LLM spend"].rules.all()) == ["actual", "capacity", "forecast"]


@pytest.mark.django_db
def test_the_demo_gives_every_lever_of_the_advisor_something_to_save(ch: ClickHouse) -> None:
    # given the demo seeded into the real stores (its feedback through the ledger's feedback path), rolled up
    seed("demo-advice-test")
    project = Project.objects.get(name="demo-advice-test")
    assert Feedback.objects.filter(project=project, synced_at__isnull=False).count() > 100
    while rollup_dirty().has_more:
        pass
    filled = ch.query(
        "SELECT countIf(finish_reason = ''), countIf(finish_reason = 'length'), countIf(prompt_prefix_hash = ''),"
        " countIf(prompt_prefix_tokens >= 1024 AND cache_read_tokens = 0), count()"
        " FROM llm_calls FINAL WHERE project_id = {p:UInt64}",
        parameters={"p": project.pk},
    ).result_rows[0]
    no_reason, cut, no_prefix, uncached_long_prefix, calls = filled
    assert no_reason < calls * 0.05  # only calls that timed out have no finish reason
    assert cut > 0
    assert no_prefix == 0
    assert uncached_long_prefix > 0
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {ApiKey.issue(project, ['read'])[1]}")
    today = datetime.now(UTC).date()

    # when the advisor looks at the demo's 30 days
    answer = client.get(
        "/v1/advice", {"from": (today - timedelta(days=31)).isoformat(), "to": (today + timedelta(1)).isoformat()}
    )

    # then every lever has a recommendation with money in it
    assert answer.status_code == 200, answer.content
    recs = answer.json()["recommendations"]
    saving = {kind: max((Decimal(r["savings_usd"]) for r in recs if r["kind"] == kind), default=Decimal(0))
              for kind in ("routing", "prompt_cache", "batch", "output_length")}  # fmt: skip
    assert all(value > 0 for value in saving.values()), saving
    routing = [r for r in recs if r["kind"] == "routing"]
    assert {(r["scope"]["feature"], r["scope"]["model"], r["evidence"]["to_model"]) for r in routing} == {
        ("chat-assistant", "gpt-4o", "gpt-4o-mini")
    }
    assert all(r["evidence"]["candidate"]["feedback_count"] > 0 for r in routing)
    # each route goes to one model: the models are compared within each version of the routing config
    assert sorted(r["scope"]["route_version"] for r in routing) == ["v1", "v2"]
    # support-triage's small model scores lower: said, not recommended
    assert any(n.startswith("routing: support-triage") for n in answer.json()["notes"])
    assert {r["scope"]["feature"] for r in recs if r["kind"] == "prompt_cache"} == {"support-triage"}
    # doc-extract is marked batch-eligible: its live calls at the default tier count too
    (docs,) = [r for r in recs if r["kind"] == "batch" and r["scope"]["feature"] == "doc-extract"]
    assert docs["evidence"]["live_calls"] > 0
    assert {r["scope"]["feature"] for r in recs if r["kind"] == "output_length" and Decimal(r["savings_usd"])} == {
        "doc-extract"
    }


@pytest.mark.django_db
def test_a_second_run_keeps_login_and_keys_and_counts_repriced_calls_once(ch: ClickHouse, tmp_path: Path) -> None:
    # given a seeded demo, its printed login and keys
    first = seed("demo-keep-test")
    project = Project.objects.get(name="demo-keep-test")
    key, admin_key = printed(first, "API key"), printed(first, "admin key")
    password = first.split("admin / ")[1].split()[0]
    assert printed(first, "project") == "demo-keep-test"
    today = datetime.now(UTC).date()
    # the demo's dates, for the README's examples: the last call is today, or yesterday when the hours since
    # midnight UTC are night hours the demo's few calls happen to skip
    assert any(f"to {today - timedelta(days=d)} (UTC)" in first for d in (0, 1))
    assert any(f"calls from {today - timedelta(days=d)} " in first for d in (29, 30))
    kept = tmp_path / "demo-credentials-demo-keep-test.json"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    final = "SELECT count() FROM llm_calls FINAL WHERE project_id = {p:UInt64}"
    calls = int(ch.command(final, parameters={"p": project.pk}))
    # and a reprice, which writes a second version of every row
    now = datetime.now(UTC)
    assert reprice(project.pk, now - timedelta(days=31), now + timedelta(hours=1)) == calls

    # when make run starts again
    second = seed("demo-keep-test")

    # then the same login and keys are printed, and they still work
    assert (printed(second, "API key"), printed(second, "admin key")) == (key, admin_key)
    assert f"admin / {password}" in second
    assert get_user_model().objects.get(username="admin").check_password(password)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    window = {"from": (now - timedelta(days=31)).isoformat(), "to": now.isoformat(), "granularity": "day"}
    assert api.get("/v1/usage", window).status_code == 200
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {admin_key}")
    assert api.get("/v1/budgets").status_code == 200
    assert ApiKey.objects.get(project=project, name="demo-admin", revoked_at__isnull=True).scopes == ["admin"]
    # and the demo's call count is of calls, not of row versions
    assert f"already present ({calls:,} calls)" in second

    # A key revoked in the meantime is replaced (and the new one printed).
    ApiKey.objects.filter(project=project, name="demo").update(revoked_at=now)
    third = seed("demo-keep-test")
    assert printed(third, "API key") != key
    assert printed(third, "admin key") == admin_key
