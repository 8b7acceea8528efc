"""Budget and channel pages: viewers read, admins edit, other projects are 404."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from rest_framework.test import APIClient

from alerts.models import AlertState, Budget, Channel
from alerts.tests.helpers import budget, receiver, spend
from tenancy.models import Membership, Organization, Project


def login(project: Project, role: str) -> Client:
    user = User.objects.create_user(f"{role}-{project.pk}", password="pw-123456789")
    Membership.objects.create(user=user, organization=project.organization, role=role)
    client = Client()
    client.force_login(user)
    return client


def test_viewer_sees_burn_and_history_but_cannot_edit(project: Project, api: APIClient) -> None:
    now = datetime.now(UTC)
    spend(api, "42.00", now - timedelta(minutes=5), feature="search")
    b = budget(project, "100.00", name="Search monthly", scope={"feature": ["search"]})
    channel = Channel.objects.create(project=project, kind="email", name="finance", config={"to": ["a@b.io"]})
    channel.disable("Slack answered 404 no_service")
    viewer = login(project, "viewer")
    page = viewer.get(f"/p/{project.pk}/budgets/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "Search monthly" in html
    assert "$42.00" in html
    assert "42.0 %" in html
    assert 'style="width: 42%"' in html
    assert "Slack answered 404 no_service" in html  # a disabled channel is shown with its reason
    assert "New budget" not in html
    assert viewer.get(f"/p/{project.pk}/budgets/new").status_code == 403
    assert viewer.post(f"/p/{project.pk}/budgets/{b.pk}/delete").status_code == 403
    assert viewer.get(f"/p/{project.pk}/budgets/channels/").status_code == 403


def test_admin_creates_edits_and_deletes_a_budget(project: Project) -> None:
    admin = login(project, "admin")
    channel = Channel.objects.create(project=project, kind="email", name="finance", config={"to": ["a@b.io"]})
    form = {
        "name": "EU chat", "amount_usd": "250", "period": "week", "timezone": "Europe/Berlin",
        "scope_feature": "chat, search", "scope_tags": "team=growth", "rule_actual": "50, 90",
        "rule_forecast": "100", "channels": [str(channel.pk)],
    }  # fmt: skip
    answer = admin.post(f"/p/{project.pk}/budgets/new", form)
    assert answer.status_code == 302
    made = Budget.objects.get(project=project)
    assert (made.name, made.period, made.scope) == (
        "EU chat",
        "week",
        {"feature": ["chat", "search"], "tag": {"team": ["growth"]}},
    )
    assert [(r.kind, r.thresholds, [c.pk for c in r.channels.all()]) for r in made.rules.all()] == [
        ("actual", [50, 90], [channel.pk]),
        ("forecast", [100], [channel.pk]),
    ]
    # a bad field is shown, nothing saved
    bad = admin.post(f"/p/{project.pk}/budgets/{made.pk}/edit", {**form, "timezone": "Nowhere/Land"})
    assert bad.status_code == 400
    assert "timezone: unknown time zone" in bad.content.decode()
    edit = admin.get(f"/p/{project.pk}/budgets/{made.pk}/edit").content.decode()
    assert 'value="chat, search"' in edit
    assert "time zone starts a new period" in edit
    assert admin.post(f"/p/{project.pk}/budgets/{made.pk}/delete").status_code == 302
    assert not Budget.objects.filter(pk=made.pk).exists()


def test_channels_page_masks_secrets_and_sends_tests(project: Project) -> None:
    admin = login(project, "admin")
    with receiver() as hook:
        url = f"{hook.url}/hook/SECRET-PATH-1234"
        created = admin.post(
            f"/p/{project.pk}/budgets/channels/",
            {"kind": "webhook", "name": "hook", "url": url, "secret": "topsecret-signing-key"},
        )
        assert created.status_code == 302
        channel = Channel.objects.get(project=project)
        html = admin.get(f"/p/{project.pk}/budgets/channels/").content.decode()
        assert "SECRET-PATH" not in html
        assert "topsecret-signing-key" not in html
        tested = admin.post(f"/p/{project.pk}/budgets/channels/{channel.pk}/test", follow=True)
        assert "Test alert sent to &#x27;hook&#x27;." in tested.content.decode()
        assert hook.requests[0].json()["type"] == "alert.test"


def test_other_projects_pages_are_404(project: Project) -> None:
    other = Project.objects.create(organization=Organization.objects.create(name="elsewhere"), name="elsewhere")
    theirs = budget(other, "10.00")
    admin = login(project, "admin")
    assert admin.get(f"/p/{other.pk}/budgets/").status_code == 404
    assert admin.get(f"/p/{project.pk}/budgets/{theirs.pk}/edit").status_code == 404
    assert admin.post(f"/p/{project.pk}/budgets/{theirs.pk}/delete").status_code == 404
    assert Budget.objects.filter(pk=theirs.pk).exists()


@pytest.mark.parametrize("role", ["finance", "engineer"])
def test_readers_see_alert_history(project: Project, role: str) -> None:
    b = budget(project, "10.00")
    rule = b.rules.get()
    now = datetime.now(UTC)
    AlertState.objects.create(
        budget=b, rule=rule, period_start=now, period_end=now, threshold=80, status="fired", spend=9, amount=10
    )
    html = login(project, role).get(f"/p/{project.pk}/budgets/").content.decode()
    assert ">fired<" in html
    assert "80 %" in html


def test_form_errors_name_the_rule_field(project: Project) -> None:
    admin = login(project, "admin")
    answer = admin.post(
        f"/p/{project.pk}/budgets/new",
        {"name": "x", "amount_usd": "5", "period": "month", "rule_actual": "50, lots"},
    )
    assert answer.status_code == 400
    assert "rules[0].thresholds[1]: A valid number is required." in answer.content.decode()
    assert not Budget.objects.filter(project=project).exists()


def test_budgets_page_shows_the_others_beside_a_budget_whose_period_cannot_be_built(project: Project) -> None:
    budget(project, "10.00", name="broken", period="custom", period_start=date(9999, 12, 1), period_days=60)
    budget(project, "10.00", name="fine")
    page = login(project, "viewer").get(f"/p/{project.pk}/budgets/")
    assert page.status_code == 200
    assert "fine" in page.content.decode()


def test_the_form_keeps_rules_it_cannot_show_and_points_to_the_api(project: Project) -> None:
    admin = login(project, "admin")
    a = Channel.objects.create(project=project, kind="email", name="a", config={"to": ["a@b.io"]})
    b = budget(project, "100.00", name="two actual rules", rules=[("actual", [50], [a]), ("actual", [90], [])])
    rule_ids = sorted(b.rules.values_list("pk", flat=True))
    rule = b.rules.get(thresholds=[90])
    now = datetime.now(UTC)
    AlertState.objects.create(
        budget=b, rule=rule, period_start=now, period_end=now, threshold=90, status="fired", spend=95, amount=100
    )
    edit = admin.get(f"/p/{project.pk}/budgets/{b.pk}/edit").content.decode()
    assert f"PATCH /v1/budgets/{b.pk}" in edit
    assert 'name="rule_actual"' not in edit
    form = {"name": "renamed", "amount_usd": "120", "period": "month", "timezone": "UTC", "rule_actual": "50"}
    answer = admin.post(f"/p/{project.pk}/budgets/{b.pk}/edit", form)
    assert answer.status_code == 302
    b.refresh_from_db()
    assert (b.name, b.amount) == ("renamed", 120)
    assert sorted(b.rules.values_list("pk", flat=True)) == rule_ids  # both rules (and their history) kept
    assert AlertState.objects.filter(budget=b, rule=rule).exists()


def test_the_form_still_edits_rules_that_fit_it(project: Project) -> None:
    admin = login(project, "admin")
    b = budget(project, "100.00", rules=[("actual", [50], []), ("forecast", [100], [])])
    form = {"name": "m", "amount_usd": "100", "period": "month", "timezone": "UTC", "rule_actual": "60, 90"}
    assert admin.post(f"/p/{project.pk}/budgets/{b.pk}/edit", form).status_code == 302
    assert [(r.kind, r.thresholds) for r in b.rules.all()] == [("actual", [60, 90])]


def test_the_budgets_page_reads_every_budgets_history_at_once(project: Project) -> None:
    """The page's query count does not grow with the number of budgets (no query per budget)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def add_budgets(count: int) -> None:
        for i in range(count):
            b = budget(project, "10.00", name=f"b{Budget.objects.count()}-{i}")
            for threshold in (50, 80):
                AlertState.objects.create(
                    budget=b, rule=b.rules.get(), period_start=datetime(2026, 11, 1, tzinfo=UTC),
                    period_end=datetime(2026, 12, 1, tzinfo=UTC), threshold=threshold, status="fired",
                    spend=threshold / 10, amount=10,
                )  # fmt: skip

    viewer = login(project, "viewer")
    add_budgets(2)
    with CaptureQueriesContext(connection) as few:
        assert viewer.get(f"/p/{project.pk}/budgets/").status_code == 200
    add_budgets(6)
    with CaptureQueriesContext(connection) as many:
        page = viewer.get(f"/p/{project.pk}/budgets/")
    assert page.content.decode().count("<h3>Alert history</h3>") == 8
    assert len(many.captured_queries) == len(few.captured_queries)
