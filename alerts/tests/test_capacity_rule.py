"""The capacity rule: once a day per (provider, model) when the last hour's peak minute reaches N % of
its rate limit, and when 429s appear; exactly once however many evaluators run at once."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import connections
from rest_framework.test import APIClient

from alerts.evaluate import evaluate_budgets, evaluate_projects
from alerts.message import from_alert
from alerts.models import AlertState, Budget, Channel, Delivery, Signal
from alerts.tests.helpers import budget, receiver
from ingest.tests.helpers import drain, post_calls
from ledger.models import RateLimit
from ledger.rollups import rollup_dirty
from tenancy.models import Project

NOW = (datetime.now(UTC) - timedelta(days=1)).replace(hour=15, minute=30, second=0, microsecond=0)
_n = iter(range(10**9))


def traffic(api: APIClient, *calls: dict[str, Any]) -> None:
    records = [
        {"event_id": f"k-{next(_n)}", "provider": "openai", "model": "gpt-4o", "input_tokens": 1000,
         "output_tokens": 0, "cost_usd": "0.01", **c, "timestamp": c["timestamp"].isoformat()}
        for c in calls
    ]  # fmt: skip
    assert post_calls(api, records).json()["accepted"] == len(records)
    drain()
    while rollup_dirty().has_more:
        pass


def fired(b: Budget) -> list[tuple[str, str, int, str]]:
    return [
        (s.signal, s.subject, int(s.threshold), s.period_start.date().isoformat())
        for s in AlertState.objects.filter(budget=b, status="fired").order_by("pk")
    ]


@pytest.fixture
def limits(project: Project) -> None:
    RateLimit.objects.create(project=project, provider="openai", model="gpt-4o", tpm=10_000)


@pytest.mark.django_db
def test_a_peak_minute_past_the_threshold_fires_once_a_day_per_model(
    project: Project, api: APIClient, limits: None
) -> None:
    b = budget(project, "1000", rules=[("capacity", [80], [])])
    # given gpt-4o at 9,000 of 10,000 TPM in one minute 10 minutes ago; mini at 50 % of its reported limit
    traffic(
        api,
        {"timestamp": NOW - timedelta(minutes=10), "input_tokens": 9000},
        {"timestamp": NOW - timedelta(minutes=9), "model": "gpt-4o-mini", "input_tokens": 500,
         "ratelimit_limit_tokens": 1000},
        {"timestamp": NOW - timedelta(hours=2), "model": "gpt-4o-mini", "input_tokens": 5000},  # not the last hour
    )  # fmt: skip
    evaluate_projects([project.pk], now=NOW)
    day = NOW.date().isoformat()
    assert fired(b) == [("capacity", "openai/gpt-4o", 80, day)]
    state = AlertState.objects.get(budget=b)
    assert state.details["limit"] == "tpm"
    assert (state.details["peak"], state.details["limit_value"], state.details["percent"]) == (9000, 10_000, "90.0")
    # when evaluated again, later that day, with an even higher peak: nothing new
    traffic(api, {"timestamp": NOW + timedelta(minutes=50), "input_tokens": 9900})
    evaluate_projects([project.pk], now=NOW + timedelta(hours=1))
    assert len(fired(b)) == 1
    # the next day it may fire again
    tomorrow = NOW + timedelta(days=1)
    traffic(api, {"timestamp": tomorrow - timedelta(minutes=5), "input_tokens": 8500})
    evaluate_projects([project.pk], now=tomorrow)
    assert fired(b)[-1] == ("capacity", "openai/gpt-4o", 80, tomorrow.date().isoformat())
    assert len(fired(b)) == 2


@pytest.mark.django_db
def test_below_the_threshold_or_without_a_limit_nothing_fires(project: Project, api: APIClient, limits: None) -> None:
    b = budget(project, "1000", rules=[("capacity", [80], [])])
    traffic(
        api,
        {"timestamp": NOW - timedelta(minutes=3), "input_tokens": 7999},
        {"timestamp": NOW - timedelta(minutes=3), "model": "no-limit", "input_tokens": 10**6},
    )
    evaluate_projects([project.pk], now=NOW)
    assert fired(b) == []


@pytest.mark.django_db
def test_429s_fire_once_a_day_per_model(project: Project, api: APIClient) -> None:
    b = budget(project, "1000", rules=[("capacity", [80], [])])
    refused = {"status": "error", "error_type": "rate_limit", "input_tokens": 0}
    traffic(
        api,
        {"timestamp": NOW - timedelta(minutes=20), **refused},
        {"timestamp": NOW - timedelta(minutes=19), **refused},
    )
    traffic(api, {"timestamp": NOW - timedelta(minutes=20), "model": "claude", "provider": "anthropic"})
    evaluate_projects([project.pk], now=NOW)
    traffic(api, {"timestamp": NOW - timedelta(minutes=1), **refused})
    evaluate_projects([project.pk], now=NOW)
    assert fired(b) == [("rate_limited", "openai/gpt-4o", 0, NOW.date().isoformat())]
    state = AlertState.objects.get(budget=b)
    assert state.details["rate_limited_calls"] == 2
    message = from_alert(state)
    assert "openai/gpt-4o had 2 calls refused with a 429" in message.headline
    assert message.as_json(None)["subject"] == "openai/gpt-4o"


@pytest.mark.django_db
def test_the_rule_follows_the_budgets_scope(project: Project, api: APIClient, limits: None) -> None:
    chat = budget(project, "1000", rules=[("capacity", [80], [])], name="chat", scope={"feature": ["chat"]})
    search = budget(project, "1000", rules=[("capacity", [80], [])], name="search", scope={"feature": ["search"]})
    traffic(
        api,
        {"timestamp": NOW - timedelta(minutes=3), "input_tokens": 8500, "feature": "search"},
        {"timestamp": NOW - timedelta(minutes=3), "input_tokens": 100, "feature": "chat"},
    )
    evaluate_projects([project.pk], now=NOW)
    assert (fired(chat), [s for s, *_ in fired(search)]) == ([], ["capacity"])


@pytest.mark.django_db(transaction=True)
def test_several_evaluators_at_once_fire_and_deliver_each_alert_once(project: Project, api: APIClient) -> None:
    RateLimit.objects.create(project=project, provider="openai", model="gpt-4o", tpm=10_000)
    with receiver() as hook:
        channel = Channel.objects.create(
            project=project, kind="webhook", name="hook", config={"url": hook.url, "secret": "s" * 32}
        )
        b = budget(project, "1000", rules=[("capacity", [50, 80], [channel])])
        refused = {"status": "error", "error_type": "rate_limit", "input_tokens": 0}
        traffic(api, {"timestamp": NOW - timedelta(minutes=4), "input_tokens": 9500}, {"timestamp": NOW, **refused})
        budgets = list(Budget.objects.filter(pk=b.pk).prefetch_related("rules__channels"))
        connections.close_all()
        barrier = threading.Barrier(6)
        errors: list[BaseException] = []

        from alerts.tasks import enqueue_deliveries

        def evaluate() -> None:
            try:
                barrier.wait()
                enqueue_deliveries(evaluate_budgets(budgets, now=NOW).delivery_ids)
            except BaseException as exc:  # noqa: BLE001 (handed to the main thread, which re-raises it)
                errors.append(exc)
            finally:
                connections.close_all()

        threads = [threading.Thread(target=evaluate) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not errors
        day = NOW.date().isoformat()
        assert fired(b) == [("capacity", "openai/gpt-4o", 80, day), ("rate_limited", "openai/gpt-4o", 0, day)]
        assert AlertState.objects.filter(budget=b, status="superseded").count() == 1  # the 50 %
        assert hook.wait_for(2, timeout=10)
        signals = sorted(r.json()["rule"]["signal"] for r in hook.requests)
        assert signals == [Signal.CAPACITY, Signal.RATE_LIMITED]
        assert all(r.json()["subject"] == "openai/gpt-4o" for r in hook.requests)
        assert sorted(Delivery.objects.values_list("status", flat=True)) == ["sent", "sent"]


@pytest.mark.django_db
def test_a_capacity_rule_defaults_to_80_percent_and_refuses_bad_thresholds(project: Project) -> None:
    from api.tests.crud import key_client

    client = key_client(project, "admin", "read")
    made = client.post(
        "/v1/budgets", {"name": "cap", "amount_usd": "10", "rules": [{"kind": "capacity"}]}, format="json"
    )
    assert made.status_code == 201, made.content
    assert made.json()["rules"][0]["thresholds"] == [80]
    bad = client.post(
        "/v1/budgets", {"name": "cap", "amount_usd": "10", "rules": [{"kind": "capacity", "thresholds": [1001]}]},
        format="json",
    )  # fmt: skip
    assert bad.status_code == 400
    assert "percent of a rate limit" in str(bad.json())
    assert Decimal(80) == Decimal(made.json()["rules"][0]["thresholds"][0])
