"""The overview reads no more than it shows: a table exported alone is the page's table, read alone,
and the month-to-date figures come from the chart's days when the chart holds every one of them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.http import QueryDict
from django.test.utils import CaptureQueriesContext

from alerts.models import Budget
from dashboards.filters import parse_filters
from dashboards.overview import month_to_date, overview
from dashboards.tests.conftest import DAY1, TODAY
from ledger.tests.statements import Statements
from tenancy.models import Project

TABLES = ("features", "customers", "waste", "savings", "models")


def _filters(**params: str) -> Any:
    query = QueryDict(mutable=True)
    query.update(params)
    return parse_filters(query)


@pytest.mark.django_db
@pytest.mark.parametrize("name", TABLES)
def test_a_table_exported_alone_is_the_pages_table(traffic: Project, member: Any, name: str) -> None:
    client = member("finance")
    params = {"from": DAY1.date().isoformat(), "to": TODAY.date().isoformat()}
    page = client.get(f"/p/{traffic.pk}/", params)
    table = page.context["page_data"].table(name)
    assert table is not None
    assert table.rows
    exported = client.get(f"/p/{traffic.pk}/", {**params, "export": name})
    assert exported.status_code == 200
    assert exported.content == table.csv_response("x").content


@pytest.mark.django_db
def test_an_export_reads_two_statements_where_the_page_reads_many(
    traffic: Project, member: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = member("finance")
    statements = Statements(monkeypatch)
    client.get(f"/p/{traffic.pk}/", {"export": "customers"})
    assert statements.count == 2  # the range's total (for the shares), then the customers
    statements.count = 0
    client.get(f"/p/{traffic.pk}/")
    assert statements.count > 2


@pytest.mark.django_db
def test_month_to_date_from_the_chart_equals_its_own_read(traffic: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    now = datetime.now(UTC)
    covering = _filters()  # the default 30 days, daily: every day of the forecast's history
    apart = month_to_date(traffic.pk, covering, now)
    statements = Statements(monkeypatch)
    page = overview(traffic.pk, covering, now=now)
    with_chart = statements.count
    assert apart.run_rate  # the traffic's days are inside the last 7, whatever today's date
    assert page.extra["mtd"] == apart
    # A range that misses some of those days reads them apart: one statement more.
    short = _filters(**{"from": (TODAY - timedelta(days=3)).date().isoformat(), "to": TODAY.date().isoformat()})
    statements.count = 0
    page = overview(traffic.pk, short, now=now)
    assert statements.count == with_chart + 1
    assert page.extra["mtd"].spent == month_to_date(traffic.pk, short, now).spent


@pytest.mark.django_db
def test_the_budget_panel_reads_the_rules_of_all_budgets_at_once(traffic: Project, member: Any) -> None:
    client = member("finance")
    Budget.objects.create(project=traffic, name="b0", amount=Decimal(10), period="month")
    client.get(f"/p/{traffic.pk}/")
    with CaptureQueriesContext(connection) as one:
        client.get(f"/p/{traffic.pk}/")
    for i in range(1, 6):
        Budget.objects.create(project=traffic, name=f"b{i}", amount=Decimal(10 + i), period="month")
    with CaptureQueriesContext(connection) as six:
        page = client.get(f"/p/{traffic.pk}/")
    assert len(page.context["budgets"]) == 6
    assert len(six.captured_queries) == len(one.captured_queries)
