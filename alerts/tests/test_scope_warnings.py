"""A budget whose scope names a value no call ever had is saved, with a warning (API and form)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.contrib.auth.models import User
from django.test import Client
from rest_framework.test import APIClient

from alerts.tests.helpers import spend
from tenancy.models import ApiKey, Membership, Project


def _admin_api(project: Project) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {ApiKey.issue(project, ['admin'])[1]}")
    return client


def _seen(api: APIClient) -> None:
    when = datetime.now(UTC) - timedelta(days=2)
    spend(api, "1.00", when, feature="search", customer_id="acme")
    spend(api, "1.00", when, feature="chat-assistant", customer_id="globex", tags={"team": "growth"})


def test_the_api_warns_about_scope_values_never_seen(project: Project, api: APIClient) -> None:
    _seen(api)
    admin = _admin_api(project)
    body = {"name": "b", "amount_usd": "10", "period": "month", "scope": {"feature": ["search"]}}
    known = admin.post("/v1/budgets", body, format="json")
    assert known.status_code == 201, known.json()
    assert known.json()["warnings"] == []

    scope = {"feature": ["search", "serach"], "customer_id": ["acme", "nobody"], "tag": {"team": ["growth", "x"]}}
    typo = admin.post("/v1/budgets", {**body, "name": "typo", "scope": scope}, format="json")
    assert typo.status_code == 201  # saved all the same: the feature may simply not have shipped yet
    warnings = typo.json()["warnings"]
    assert len(warnings) == 3, warnings
    assert warnings[0].startswith("scope.customer_id: 'nobody' has never been seen")
    assert any(w.startswith("scope.feature: 'serach' has never been seen") for w in warnings)
    assert any(w.startswith("scope.tag.team: 'x' has never been seen") for w in warnings)
    assert not any("'search'" in w or "'acme'" in w or "'growth'" in w for w in warnings)

    fixed = admin.patch(f"/v1/budgets/{typo.json()['id']}", {"scope": {"feature": ["search"]}}, format="json")
    assert fixed.status_code == 200
    assert fixed.json()["warnings"] == []
    again = admin.patch(f"/v1/budgets/{typo.json()['id']}", {"scope": {"model": ["gpt-9"]}}, format="json")
    assert again.json()["warnings"] == [
        "scope.model: 'gpt-9' has never been seen in this project's calls, so the budget counts nothing for it"
        " yet (check the spelling against the values on the dashboards)"
    ]


def test_the_budget_form_warns_about_scope_values_never_seen(project: Project, api: APIClient) -> None:
    _seen(api)
    user = User.objects.create_user(f"admin-{project.pk}", password="pw-123456789")
    Membership.objects.create(user=user, organization=project.organization, role="admin")
    admin = Client()
    admin.force_login(user)
    form = {"name": "Search", "amount_usd": "25", "period": "month", "timezone": "UTC", "scope_feature": "search"}
    page = admin.post(f"/p/{project.pk}/budgets/new", form, follow=True).content.decode()
    assert "never been seen" not in page
    form = {**form, "name": "Typo", "scope_feature": "serach"}
    page = admin.post(f"/p/{project.pk}/budgets/new", form, follow=True).content.decode()
    assert "Budget &#x27;Typo&#x27; saved." in page
    assert "scope.feature: &#x27;serach&#x27; has never been seen in this project&#x27;s calls" in page
