"""The budget form in plain words (errors beside their fields, pickers of seen values, channels per
rule), editing a channel, and each budget's spend chart with its thresholds."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

from rest_framework.test import APIClient

from alerts.models import Budget, Channel
from alerts.tests.helpers import budget, spend
from alerts.tests.test_views import login
from alerts.views import form_errors
from tenancy.models import Project


def _error_for(html: str, field: str) -> str:
    found = re.search(rf'data-error-for="{field}">([^<]*)<', html)
    return found[1] if found else ""


def test_errors_map_to_their_fields() -> None:
    fields, general = form_errors(
        ["amount_usd: must be positive", "rules[1].thresholds[0]: A valid number is required.",
         "scope.feature[0]: too long", "scope.tag: bad", "oops"],
        ["actual", "forecast"],
    )  # fmt: skip
    assert fields == {
        "amount_usd": ["must be positive"],
        "rule_forecast": ["threshold 0: A valid number is required."],
        "scope_feature": ["too long"],
        "scope_tags": ["bad"],
    }
    assert general == ["oops"]


def test_the_form_shows_each_error_beside_its_field(project: Project) -> None:
    admin = login(project, "admin")
    answer = admin.post(
        f"/p/{project.pk}/budgets/new",
        {"name": "x", "amount_usd": "lots", "period": "month", "timezone": "Nowhere/Land", "rule_actual": "50, x"},
    )
    assert answer.status_code == 400
    html = answer.content.decode()
    assert _error_for(html, "amount_usd")
    assert "time zone" in _error_for(html, "timezone")
    assert "A valid number is required." in _error_for(html, "rule_actual")
    assert _error_for(html, "name") == ""
    assert 'value="lots"' in html  # what was typed stays
    assert "Budget amount, in US dollars" in html


def test_scope_pickers_offer_the_values_seen_and_take_new_ones(project: Project, api: APIClient) -> None:
    now = datetime.now(UTC)
    spend(api, "1.00", now - timedelta(hours=2), feature="chat", customer_id="acme")
    spend(api, "1.00", now - timedelta(hours=2), feature="search", customer_id="globex")
    admin = login(project, "admin")
    html = admin.get(f"/p/{project.pk}/budgets/new").content.decode()
    for dim, value in (("feature", "chat"), ("feature", "search"), ("customer_id", "acme"), ("model", "gpt-4o")):
        assert f'type="checkbox" name="scope_{dim}" value="{value}"' in html
    form = {"name": "chat", "amount_usd": "10", "period": "month", "timezone": "UTC", "rule_actual": "80",
            "scope_feature": ["chat", "launching-soon, other"]}  # fmt: skip
    assert admin.post(f"/p/{project.pk}/budgets/new", form).status_code == 302
    made = Budget.objects.get(project=project)
    assert made.scope == {"feature": ["chat", "launching-soon", "other"]}
    edit = admin.get(f"/p/{project.pk}/budgets/{made.pk}/edit").content.decode()
    assert 'name="scope_feature" value="chat" checked' in edit
    assert 'name="scope_feature" value="search">' in edit
    assert 'name="scope_feature" value="launching-soon, other"' in edit


def test_each_rule_has_its_own_channels(project: Project) -> None:
    admin = login(project, "admin")
    finance = Channel.objects.create(project=project, kind="email", name="finance", config={"to": ["f@b.io"]})
    oncall = Channel.objects.create(project=project, kind="email", name="oncall", config={"to": ["o@b.io"]})
    form = {"name": "m", "amount_usd": "100", "period": "month", "timezone": "UTC", "rule_actual": "50, 100",
            "channels_actual": [str(finance.pk)], "rule_anomaly": "300",
            "channels_anomaly": [str(oncall.pk), str(finance.pk)]}  # fmt: skip
    assert admin.post(f"/p/{project.pk}/budgets/new", form).status_code == 302
    made = Budget.objects.get(project=project)
    assert {r.kind: sorted(c.name for c in r.channels.all()) for r in made.rules.all()} == {
        "actual": ["finance"],
        "anomaly": ["finance", "oncall"],
    }
    edit = admin.get(f"/p/{project.pk}/budgets/{made.pk}/edit").content.decode()
    assert "rules-api-only" not in edit  # different channels per rule fit the form now
    assert f'name="channels_actual" value="{finance.pk}" checked' in edit
    assert f'name="channels_actual" value="{oncall.pk}">' in edit
    assert f'name="channels_anomaly" value="{oncall.pk}" checked' in edit


def test_a_channel_is_edited_in_the_page_and_a_blank_secret_is_kept(project: Project) -> None:
    admin = login(project, "admin")
    hook = Channel.objects.create(
        project=project, kind="webhook", name="hook",
        config={"url": "https://hooks.example.com/a", "secret": "s" * 20},
    )  # fmt: skip
    hook.disable("answered 410")
    page = admin.get(f"/p/{project.pk}/budgets/channels/{hook.pk}/edit")
    assert page.status_code == 200
    assert "s" * 20 not in page.content.decode()
    assert f"/budgets/channels/{hook.pk}/edit" in admin.get(f"/p/{project.pk}/budgets/channels/").content.decode()
    saved = admin.post(
        f"/p/{project.pk}/budgets/channels/{hook.pk}/edit",
        {"name": "ops hook", "url": "https://hooks.example.com/b", "secret": "", "enabled": "on"},
    )
    assert saved.status_code == 302
    hook.refresh_from_db()
    assert (hook.name, hook.config, hook.enabled) == (
        "ops hook", {"url": "https://hooks.example.com/b", "secret": "s" * 20}, True,
    )  # fmt: skip
    mail = Channel.objects.create(project=project, kind="email", name="m", config={"to": ["a@b.io"]})
    bad = admin.post(f"/p/{project.pk}/budgets/channels/{mail.pk}/edit", {"name": "m", "to": "not-an-address"})
    assert bad.status_code == 400
    mail.refresh_from_db()
    assert mail.config == {"to": ["a@b.io"]}
    assert (
        admin.post(f"/p/{project.pk}/budgets/channels/{mail.pk}/edit", {"name": "m", "to": "x@y.io"}).status_code == 302
    )
    mail.refresh_from_db()
    assert (mail.config, mail.enabled) == ({"to": ["x@y.io"]}, True)  # a new address re-enables
    assert admin.post(f"/p/{project.pk}/budgets/channels/{mail.pk}/edit", {"name": "m", "to": ""}).status_code == 302
    mail.refresh_from_db()
    assert (mail.config, mail.enabled) == ({"to": ["x@y.io"]}, False)  # unticked "enabled" disables it
    assert login(project, "finance").get(f"/p/{project.pk}/budgets/channels/{mail.pk}/edit").status_code == 403


def test_each_budget_draws_its_spend_against_its_thresholds(project: Project, api: APIClient) -> None:
    now = datetime.now(UTC)
    spend(api, "30.00", now - timedelta(minutes=10))
    budget(project, "100.00", name="monthly", rules=[("actual", [50, 80], [])])
    html = login(project, "viewer").get(f"/p/{project.pk}/budgets/").content.decode()
    [raw] = re.findall(r'<script type="application/json" data-chart="budget-chart-\d+">(.*?)</script>', html)
    figure = json.loads(raw)
    lines = {t["name"]: t["y"] for t in figure["data"]}
    assert lines["50 %"] == [50.0, 50.0]
    assert lines["80 %"] == [80.0, 80.0]
    assert lines["amount"] == [100.0, 100.0]
    assert lines["spent"][-1] == 30.0
    assert "vendor/plotly.min.js" in html
