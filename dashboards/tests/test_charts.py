"""What the charts draw: no model disappears, legends name only series with data, gaps stay gaps."""

from __future__ import annotations

from typing import Any

import pytest
from django.http import QueryDict
from rest_framework.test import APIClient

from dashboards import charts
from dashboards.compare import compare
from dashboards.engineering import TOP_GROUPS, engineering
from dashboards.filters import parse_filters
from dashboards.tests.conftest import DAY1, TODAY, call, ingest
from tenancy.models import Project

RANGE = QueryDict(f"from={DAY1.date().isoformat()}&to={TODAY.date().isoformat()}")


def traces(page: Any, chart_id: str) -> dict[str, list[Any]]:
    figure = dict(page.charts)[chart_id]
    return {t["name"]: t["y"] for t in figure["data"]}


@pytest.mark.django_db
def test_engineering_latency_keeps_every_model_as_top_ones_plus_other(api: APIClient, project: Project) -> None:
    # given more models than the chart draws one by one; the slowest has the fewest calls
    models = [f"m{i}" for i in range(TOP_GROUPS + 2)]
    calls = [
        call(n * 10 + k, 0, 9 + k, model=m, latency_ms=1000.0 + n, ttft_ms=None)
        for n, m in enumerate(models)
        for k in range(len(models) - n)
    ]
    calls.append(call(999, 1, 9, model="slowest-o3", latency_ms=72_000.0, ttft_ms=None))
    ingest(api, calls)

    page = engineering(project.pk, parse_filters(RANGE), "model", "p95")

    latency = traces(page, "latency")
    assert list(latency)[:TOP_GROUPS] == models[:TOP_GROUPS]  # the busiest by calls, one line each
    assert charts.OTHER in latency  # ... and everything else in one line
    assert max(v for v in latency[charts.OTHER] if v is not None) == pytest.approx(72_000, rel=0.02)
    # No call has a TTFT: the TTFT chart lists no model (no legend entry without data).
    assert traces(page, "ttft") == {}


@pytest.mark.django_db
def test_compare_draws_days_without_calls_as_gaps(api: APIClient, project: Project) -> None:
    ingest(api, [call(1, 0, 9, route_version="v1"), call(2, 2, 9, route_version="v2"), call(3, 2, 10)])

    page = compare(project.pk, parse_filters(RANGE), "route_version", "v1", "v2")

    cost = traces(page, "cost-per-call")
    assert set(cost) == {"v1", "v2"}
    for ys in cost.values():
        assert 0 not in ys  # a day without calls is not a $0 cost per call
        assert None in ys
        assert any(y for y in ys)
