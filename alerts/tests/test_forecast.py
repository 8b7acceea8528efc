"""A forecast rule on real spend: recorded calls, evaluated mid-period (the method: ledger/tests/test_forecast.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from rest_framework.test import APIClient

from alerts.models import AlertState
from alerts.tests.helpers import budget, evaluate, record_calls
from tenancy.models import Project


def test_forecast_rule_fires_on_real_spend(project: Project, api: APIClient) -> None:
    # ten days at $5, evaluated at noon on the 11th: about $152 by the end of October
    record_calls(
        api,
        [{"cost_usd": "5.00", "timestamp": datetime(2026, 10, 1 + d, 9, tzinfo=UTC).isoformat()} for d in range(10)],
    )
    tight = budget(project, "140.00", name="tight", rules=[("actual", [50, 80, 100], []), ("forecast", [100], [])])
    loose = budget(project, "160.00", name="loose", rules=[("forecast", [100], [])])
    evaluate(project, datetime(2026, 10, 11, 12, tzinfo=UTC))
    fired = AlertState.objects.get(budget=tight)
    assert (fired.rule.kind, fired.threshold, fired.spend) == ("forecast", Decimal(100), Decimal(50))
    assert fired.forecast == Decimal("152.5")
    assert not AlertState.objects.filter(budget=loose).exists()
