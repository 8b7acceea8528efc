"""The overview's month-end forecast comes with its 7-day run-rate and the method that made it."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest

from alerts.models import Budget
from dashboards.tests.conftest import DAY1, TODAY
from ledger.forecast import METHODS
from tenancy.models import Project


@pytest.mark.django_db
def test_forecast_is_shown_with_run_rate_and_method(traffic: Project, member: Any) -> None:
    Budget.objects.create(project=traffic, name="monthly", amount=Decimal(5), period="month")
    page = member("admin").get(f"/p/{traffic.pk}/", {"from": DAY1.date().isoformat(), "to": TODAY.date().isoformat()})
    html = page.content.decode()
    assert page.status_code == 200
    assert "after day 1" not in html
    kpi = re.search(r'data-kpi="month-to-date".*?</div></div>', html, re.S)
    assert kpi, html
    assert "7-day run-rate $" in kpi.group(0)
    # the traffic spans 3 complete days: fewer than 14, so the average method, said in words
    assert f"Method: {METHODS['average']}" in kpi.group(0)
    budgets = re.search(r"<section class=\"card\" data-budgets>.*?</section>", html, re.S)
    assert budgets, html
    assert "7-day run-rate" in budgets.group(0)
    assert "/day</td>" in budgets.group(0)
    assert f"Forecast method: {METHODS['average']}." in budgets.group(0)
