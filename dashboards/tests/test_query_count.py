"""The overview answers in at most 6 ClickHouse statements per load (counted by the client's own
telemetry), with budgets on it and nothing cached; and its figures still add up."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from django.core.cache import cache

from alerts.models import Budget
from dashboards.tests.conftest import DAY1, TODAY
from ledger.telemetry import REGISTRY
from tenancy.models import Project

RANGE = {"from": DAY1.date().isoformat(), "to": TODAY.date().isoformat()}
MAX_STATEMENTS = 6


def reads() -> float:
    """ClickHouse reads this process has made (the client observes each one)."""
    total = 0.0
    for family in REGISTRY.collect():
        if family.name == "meterline_clickhouse_query_seconds":
            total += sum(s.value for s in family.samples if s.name.endswith("_count") and s.labels["kind"] == "read")
    return total


@pytest.mark.django_db
@pytest.mark.parametrize("stack", ["feature", "model", "customer_id", "route_version"])
def test_the_overview_takes_at_most_six_statements(traffic: Project, member: Any, stack: str) -> None:
    # budgets over several scopes (each set of scope dimensions is a query of its own, all in one statement)
    for i, scope in enumerate([{}, {"feature": ["chat"]}, {"feature": ["search"]}, {"customer_id": ["acme"]},
                               {"model": ["gpt-4o"]}, {"tag": {"team": ["growth"]}}]):  # fmt: skip
        Budget.objects.create(project=traffic, name=f"b{i}", amount=Decimal(5), period="month", scope=scope)
    admin = member("admin")
    cache.clear()  # the filter choices too: a cold load is the worst case
    before = reads()
    page = admin.get(f"/p/{traffic.pk}/", {**RANGE, "stack": stack})
    statements = reads() - before
    assert page.status_code == 200
    assert 3 <= statements <= MAX_STATEMENTS, statements  # (at least 3: the counting works)
    # the figures the combined statements give still agree with each other
    context = page.context
    kpis = {k["label"]: k["value"] for k in context["kpis"]}
    features = context["page_data"].table("features").rows
    models = context["page_data"].table("models").rows
    assert sum(r["cost"] for r in features) == kpis["Spend in range"] == sum(r["cost"] for r in models)
    assert sum(r["calls"] for r in features) == 10
    chart = dict(context["page_data"].charts)["spend"]
    drawn = sum(y or 0 for trace in chart["data"] for y in trace["y"])
    assert drawn == pytest.approx(float(kpis["Spend in range"]))
    assert [m["model"] for m in context["unpriced"]] == ["llama-ft"]
