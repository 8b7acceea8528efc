"""The Capacity page: engineers and admins only; per model the peaks, limits, headroom, forecast and
429s, the peak day minute by minute and the route mix of the peak minute."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from rest_framework.test import APIClient

from dashboards.tests.conftest import DAY1, ROLES, ingest
from ledger.models import RateLimit
from tenancy.models import Project

PEAK = DAY1 + timedelta(days=1, hours=14, minutes=7)


def capacity_calls() -> list[dict[str, Any]]:
    base = {"provider": "openai", "model": "gpt-4o", "output_tokens": 100, "customer_id": "acme"}
    return [
        {**base, "event_id": "cap-1", "timestamp": PEAK.isoformat(), "input_tokens": 6000, "feature": "chat",
         "route_version": "v2", "ratelimit_limit_requests": 50},
        {**base, "event_id": "cap-2", "timestamp": (PEAK + timedelta(seconds=20)).isoformat(), "input_tokens": 1900,
         "feature": "search", "route_version": "v1"},
        {**base, "event_id": "cap-3", "timestamp": (PEAK + timedelta(minutes=3)).isoformat(), "input_tokens": 0,
         "output_tokens": 0, "status": "error", "error_type": "rate_limit"},
        {**base, "event_id": "cap-4", "timestamp": (DAY1 + timedelta(hours=3)).isoformat(), "input_tokens": 900},
    ]  # fmt: skip


@pytest.fixture
def busy(api: APIClient, project: Project) -> Project:
    ingest(api, capacity_calls())
    RateLimit.objects.create(project=project, provider="openai", model="gpt-4o", tpm=10_000)
    return project


def page(project: Project, **params: str) -> str:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return f"/p/{project.pk}/capacity/" + (f"?{query}" if query else "")


@pytest.mark.django_db
@pytest.mark.parametrize("role", ROLES)
def test_only_engineers_and_admins_open_it_and_see_it_in_the_navigation(busy: Project, member: Any, role: str) -> None:
    client = member(role)
    answer = client.get(page(busy))
    allowed = role in ("engineer", "admin")
    assert answer.status_code == (200 if allowed else 403)
    home = client.get(f"/p/{busy.pk}/").content.decode()
    assert (f'href="/p/{busy.pk}/capacity/"' in home) == allowed


@pytest.mark.django_db
def test_the_page_shows_peaks_limits_headroom_the_peak_day_and_its_route_mix(busy: Project, member: Any) -> None:
    answer = member("engineer").get(page(busy))
    assert answer.status_code == 200
    data = answer.context["page_data"]
    [model] = data.table("models").rows
    assert (model["subject"], model["peak_tpm"], model["limit_tpm"], model["limit_source"]) == (
        "openai/gpt-4o", 8100, 10_000, "configured",
    )  # fmt: skip
    assert (model["limit_rpm"], model["headroom"], model["rate_limited_calls"]) == (50, "19.0 %", 1)
    assert data.table("route_mix").rows == [
        {"feature": "chat", "route_version": "v2", "calls": 1, "tokens": 6100},
        {"feature": "search", "route_version": "v1", "calls": 1, "tokens": 2000},
    ]
    charts = dict(data.charts)
    curve = charts["peak-day"]["data"][0]
    assert max(curve["y"]) == 8100
    assert PEAK.date().isoformat() in charts["peak-day"]["layout"]["title"]["text"]
    daily = charts["daily-0"]["data"]
    assert [t["name"] for t in daily] == ["peak TPM", "peak RPM", "TPM limit", "RPM limit"]
    assert daily[0]["y"] == [1000, 8100]
    html = answer.content.decode()
    assert "Route mix of the peak minute" in html
    assert json.loads(answer.context["charts"][0][1])["data"]  # embedded for plotly


@pytest.mark.django_db
def test_filters_narrow_the_page_and_an_empty_range_says_so(busy: Project, member: Any) -> None:
    client = member("admin")
    search = client.get(page(busy, feature="search")).context["page_data"]
    assert search.table("models").rows[0]["peak_tpm"] == 2000
    # the route mix of the (filtered) peak minute shows the calls the filter keeps, not the others
    assert search.table("route_mix").rows == [{"feature": "search", "route_version": "v1", "calls": 1, "tokens": 2000}]
    # and so does the peak day's minute curve: its peak is the filtered peak
    assert max(dict(search.charts)["peak-day"]["data"][0]["y"]) == 2000
    empty = client.get(page(busy, model="nothing"))
    assert empty.status_code == 200
    assert empty.context["has_data"] is False
