"""The Savings page: who may open it, its figures against ledger.advice / ledger.whatif, the what-if form."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from django.utils.html import escape

from dashboards.tests.conftest import DAY1, ROLES, TODAY
from ledger.advice import advice
from ledger.queries import UsageQuery
from ledger.whatif import Target, whatif
from tenancy.models import Project

RANGE = {"from": DAY1.date().isoformat(), "to": TODAY.date().isoformat()}
START = datetime.combine(DAY1.date(), time(), UTC)
END = datetime.combine(TODAY.date() + timedelta(days=1), time(), UTC)


def page(project: Project) -> str:
    return f"/p/{project.pk}/savings/"


@pytest.mark.django_db
@pytest.mark.parametrize("role", ROLES)
def test_finance_engineers_and_admins_open_it_viewers_do_not(traffic: Project, member: Any, role: str) -> None:
    answer = member(role).get(page(traffic), RANGE)
    assert answer.status_code == (403 if role == "viewer" else 200)
    if role != "viewer":
        assert f'href="{page(traffic)}"' in answer.content.decode()  # the nav entry


@pytest.mark.django_db
def test_other_projects_are_404(traffic: Project, outsider: Client) -> None:
    assert outsider.get(page(traffic), RANGE).status_code == 404


@pytest.mark.django_db
def test_the_recommendations_are_the_ledgers_advice(traffic: Project, member: Any) -> None:
    answer = member("finance").get(page(traffic), RANGE)
    assert answer.status_code == 200
    expected = advice(UsageQuery(project_id=traffic.pk, start=START, end=END))
    assert expected.recommendations  # the fixture's traffic has retries, errors and eval calls
    shown = answer.context["recommendations"]
    assert [(r["kind"], r["title"], r["savings_usd"], r["monthly_savings_usd"]) for r in shown] == [
        (r["kind"], r["title"], r["savings_usd"], r["monthly_savings_usd"]) for r in expected.as_rows()
    ]
    assert answer.context["notes"] == expected.notes
    html = answer.content.decode()
    for rec in expected.recommendations:
        assert escape(rec.title) in html
        assert escape(str(rec.evidence["method"])) in html
    # Every link opens a page over the same (inclusive, dated) range, narrowed to the scope.
    for r in shown:
        assert r["dashboard_url"].startswith(f"/p/{traffic.pk}/")
        assert f"from={RANGE['from']}&to={RANGE['to']}" in r["dashboard_url"]
        if r["whatif_url"]:
            assert r["whatif_url"].startswith(page(traffic) + "?")
            assert "to_model=" in r["whatif_url"] or "to_tier=" in r["whatif_url"]
    csv_rows = member("finance").get(page(traffic), {**RANGE, "export": "recommendations"}).content.decode()
    assert csv_rows.splitlines()[0] == "kind,title,scope,savings_usd,monthly_savings_usd,method"
    assert len(csv_rows.splitlines()) == 1 + len(expected.recommendations)


@pytest.mark.django_db
def test_a_recommendations_whatif_link_opens_that_whatif(traffic: Project, member: Any) -> None:
    client = member("engineer")
    shown = client.get(page(traffic), RANGE).context["recommendations"]
    link = next(r["whatif_url"] for r in shown if r["whatif_url"])
    answer = client.get(link)
    assert answer.status_code == 200
    assert answer.context["whatif_total"] is not None
    assert answer.context["whatif_error"] == ""


@pytest.mark.django_db
def test_the_whatif_form_reprices_by_feature_and_day(traffic: Project, member: Any) -> None:
    answer = member("finance").get(page(traffic), {**RANGE, "to_model": "gpt-4o", "to_provider": "openai"})
    assert answer.status_code == 200
    q = UsageQuery(project_id=traffic.pk, start=START, end=END, granularity="day", group_by=("feature",))
    expected = whatif(q, Target(provider="openai", model="gpt-4o"))
    assert answer.context["whatif_total"] == expected.total.as_row()
    assert expected.total.whatif_pusd > expected.total.actual_pusd  # gpt-4o costs more than gpt-4o-mini
    table = answer.context["page_data"].table("whatif")
    by_feature: dict[str, Decimal] = {}
    for row in expected.rows:
        by_feature[row["feature"]] = by_feature.get(row["feature"], Decimal(0)) + row["whatif_cost"]
    assert {r["feature"]: r["whatif_cost"] for r in table.rows} == by_feature
    assert sorted(by_feature) == ["chat", "compose", "search"]
    # The chart: per feature an actual and a what-if line over the range's days, summing to the totals.
    html = answer.content.decode()
    figure = json.loads(re.search(r'data-chart="chart-whatif">(.*?)</script>', html).group(1))  # type: ignore[union-attr]
    names = {t["name"] for t in figure["data"]}
    assert {"chat · actual", "chat · what-if", "search · what-if"} <= names
    assert len(figure["data"][0]["x"]) == (TODAY.date() - DAY1.date()).days + 1
    drawn = sum(sum(t["y"]) for t in figure["data"] if t["name"].endswith("what-if"))
    assert drawn == pytest.approx(float(expected.total.as_row()["whatif_cost"]))
    # A filter narrows the what-if too.
    narrowed = member("finance").get(page(traffic), {**RANGE, "to_tier": "batch", "feature": "search"})
    rows = narrowed.context["page_data"].table("whatif").rows
    assert [r["feature"] for r in rows] == ["search"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"to_tier": "cheapest"}, "to_tier must be one of"),
        ({"to_provider": "openai", "to_tier": "batch"}, "to_provider needs to_model"),
        ({"to_provider": "openai"}, "name a target"),
    ],
)
def test_a_bad_target_is_a_message_not_a_500(
    traffic: Project, member: Any, params: dict[str, str], message: str
) -> None:
    answer = member("finance").get(page(traffic), {**RANGE, **params})
    assert answer.status_code == 200
    assert message in answer.context["whatif_error"]
    assert message in answer.content.decode()
    assert answer.context["recommendations"]  # the rest of the page still stands


@pytest.mark.django_db
def test_odd_input_never_500s(traffic: Project, member: Any) -> None:
    client = member("admin")
    for params in (
        {"from": "yesterday", "to_model": "x" * 5000},
        {"to_model": "no-such-model"},
        {"tz": "Mars/Olympus", "to_tier": "batch", "granularity": "minute"},
    ):
        assert client.get(page(traffic), params).status_code in (200, 400), params


@pytest.mark.django_db
def test_the_overviews_savings_card_links_here(traffic: Project, member: Any) -> None:
    html = member("finance").get(f"/p/{traffic.pk}/", RANGE).content.decode()
    assert f'href="{page(traffic)}?from={RANGE["from"]}&amp;to={RANGE["to"]}" data-savings-link' in html
    assert "data-savings-link" not in member("viewer").get(f"/p/{traffic.pk}/", RANGE).content.decode()
