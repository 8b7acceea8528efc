"""Anomaly rules: a day far above its baseline, a call far above its feature's usual tokens."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from rest_framework.test import APIClient

from alerts.models import AlertState
from alerts.tests.helpers import budget, evaluate, record_calls
from tenancy.models import Project

NOW = datetime(2026, 10, 20, 18, tzinfo=UTC)


def _baseline(api: APIClient) -> None:
    # two weeks at $1 a day, in calls of about 1,000 tokens
    record_calls(
        api,
        [
            {"cost_usd": "0.25", "feature": "search", "input_tokens": 900 + 10 * (i % 10), "output_tokens": 100,
             "timestamp": datetime(2026, 10, 6 + d, 8 + i, i, tzinfo=UTC).isoformat()}
            for d in range(14) for i in range(4)
        ],
    )  # fmt: skip


def test_a_spending_spike_fires_once_per_day(project: Project, api: APIClient) -> None:
    _baseline(api)
    b = budget(project, "1000.00", rules=[("anomaly", [300], [])])
    record_calls(api, [{"cost_usd": "2.00", "feature": "search", "timestamp": "2026-10-20T09:00:00Z"}])
    evaluate(project, NOW)
    assert not AlertState.objects.filter(budget=b).exists()  # $2 is twice the usual $1: not an anomaly
    record_calls(api, [{"cost_usd": "1.50", "feature": "search", "timestamp": "2026-10-20T10:00:00Z"}])
    evaluate(project, NOW)
    spike = AlertState.objects.get(budget=b)
    assert (spike.signal, spike.spend, spike.details["baseline_usd"]) == ("day_spike", Decimal("3.5"), "1.000000")
    # more spend the same day: still one alert; the next day may fire again
    record_calls(api, [{"cost_usd": "9.00", "feature": "search", "timestamp": "2026-10-20T11:00:00Z"}])
    evaluate(project, NOW)
    assert AlertState.objects.filter(budget=b).count() == 1
    # the next day is a new day: a spike fires again (the baseline now counts Oct 20's $12.50)
    record_calls(api, [{"cost_usd": "6.00", "feature": "search", "timestamp": "2026-10-21T09:00:00Z"}])
    evaluate(project, NOW + timedelta(days=1))
    spikes = AlertState.objects.filter(budget=b, signal="day_spike").order_by("period_start")
    assert [(s.period_start, s.spend) for s in spikes] == [
        (datetime(2026, 10, 20, tzinfo=UTC), Decimal("3.5")),
        (datetime(2026, 10, 21, tzinfo=UTC), Decimal("6")),
    ]
    evaluate(project, NOW + timedelta(days=1, hours=1))
    assert AlertState.objects.filter(budget=b).count() == 2  # still once per day


def test_a_call_far_above_its_features_usual_tokens_fires(project: Project, api: APIClient) -> None:
    _baseline(api)
    b = budget(project, "1000.00", rules=[("anomaly", [500], [])])
    chat = budget(project, "1000.00", name="chat", rules=[("anomaly", [500], [])], scope={"feature": ["chat"]})
    record_calls(
        api,
        [{"cost_usd": "0.10", "feature": "search", "input_tokens": 4000, "output_tokens": 100,
          "timestamp": "2026-10-20T09:00:00Z", "event_id": "big-but-usual"}],
    )  # fmt: skip
    evaluate(project, NOW)
    assert not AlertState.objects.filter(budget=b, signal="call_tokens").exists()  # 4x the usual: below 500 %
    record_calls(
        api,
        [{"cost_usd": "0.10", "feature": "search", "input_tokens": 60000, "output_tokens": 2000,
          "timestamp": "2026-10-20T10:00:00Z", "event_id": "runaway-agent"}],
    )  # fmt: skip
    evaluate(project, NOW)
    alert = AlertState.objects.get(budget=b, signal="call_tokens")
    assert alert.details["calls"][0]["event_id"] == "runaway-agent"
    assert alert.details["calls"][0]["tokens"] == 62000
    assert not AlertState.objects.filter(budget=chat).exists()  # the outlier is outside its scope
