"""/v1/channels, /v1/budgets and /v1/alerts: scopes, validation, masking and project isolation."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from alerts.models import Budget, Channel
from alerts.tests.helpers import evaluate, receiver, spend
from tenancy.models import ApiKey, Membership, Organization, Project

SLACK = "https://hooks.slack.com/services/T000/B000/XXXXsecretXXXX"


def client_for(project: Project, *scopes: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {ApiKey.issue(project, list(scopes))[1]}")
    return client


@pytest.fixture
def admin(project: Project) -> APIClient:
    return client_for(project, "admin")


def make_channel(admin: APIClient, **body: object) -> dict[str, Any]:
    answer = admin.post(
        "/v1/channels", body or {"kind": "slack", "name": "ops", "config": {"webhook_url": SLACK}}, format="json"
    )
    assert answer.status_code == 201, answer.json()
    return answer.json()  # type: ignore[no-any-return]


def test_channels_never_return_secrets_whole(admin: APIClient) -> None:
    slack = make_channel(admin)
    hook = make_channel(
        admin,
        kind="webhook",
        name="hook",
        config={"url": "https://example.com/in/TOKEN123456", "secret": "whsec_abcdefghijklmnop"},
    )
    assert slack["config"] == {"webhook_url": "https://hooks.slack.com/••••XXXX"}
    assert hook["config"] == {"url": "https://example.com/••••3456", "secret": "••••mnop"}
    listed = admin.get("/v1/channels").content.decode()
    for secret in ("XXXXsecretXXXX", "TOKEN123456", "whsec_abcdefghijklmnop"):
        assert secret not in listed
    # sending the masked value back keeps the secret; a new name is applied
    answer = admin.patch(f"/v1/channels/{hook['id']}", {"name": "renamed", "config": hook["config"]}, format="json")
    assert answer.status_code == 200, answer.json()
    assert Channel.objects.get(pk=hook["id"]).config["secret"] == "whsec_abcdefghijklmnop"


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"kind": "pager", "name": "x", "config": {}}, "kind", "not a valid choice"),
        ({"kind": "slack", "name": "x", "config": {"webhook_url": "ftp://x"}}, "config", "config.webhook_url must be"),
        (
            {"kind": "webhook", "name": "x", "config": {"url": "https://x.io", "secret": "short"}},
            "config",
            "config.secret",
        ),
        ({"kind": "email", "name": "x", "config": {"to": ["not-an-address"]}}, "config", "is not an email address"),
        ({"kind": "email", "name": "x", "config": {"to": ["a@b.io"], "cc": []}}, "config", "config.cc is not"),
        ({"kind": "email", "name": "a\rb", "config": {"to": ["a@b.io"]}}, "name", "control characters"),
        ({"kind": "email", "name": "x", "config": {"to": [123]}}, "config", "config.to must be a list of email"),
        ({"kind": "email", "name": "x", "config": {"to": [None]}}, "config", "config.to must be a list of email"),
        (
            {"kind": "webhook", "name": "x", "config": {"url": "http://[::1", "secret": "s" * 16}},
            "config",
            "config.url must be an http(s) URL",
        ),
        ({"kind": "slack", "name": "x", "config": {"webhook_url": "https://[zz/x"}}, "config", "config.webhook_url"),
    ],
)
def test_bad_channels_are_400_naming_the_field(
    admin: APIClient, body: dict[str, object], field: str, message: str
) -> None:
    answer = admin.post("/v1/channels", body, format="json")
    assert answer.status_code == 400
    assert message in str(answer.json()[field])


def test_budget_round_trip_as_in_the_issue(admin: APIClient) -> None:
    channel = make_channel(admin)
    body = {
        "name": "Search in EU",
        "amount_usd": "100.00",
        "period": "month",
        "timezone": "Europe/Berlin",
        "scope": {"feature": ["search"], "customer_id": ["acme", "globex"]},
        "rules": [
            {"kind": "actual", "thresholds": [50, 80, 100], "channels": [channel["id"]]},
            {"kind": "forecast", "thresholds": [100], "channels": [channel["id"]]},
        ],
    }
    created = admin.post("/v1/budgets", body, format="json")
    assert created.status_code == 201, created.json()
    got = admin.get(f"/v1/budgets/{created.json()['id']}").json()
    assert {k: got[k] for k in body if k != "rules"} == {k: v for k, v in body.items() if k != "rules"}
    assert [{k: v for k, v in r.items() if k != "id"} for r in got["rules"]] == body["rules"]
    rule_ids = [r["id"] for r in got["rules"]]
    # PATCH the amount and the actual thresholds: the rules keep their ids (and their alert history)
    changed = admin.patch(
        f"/v1/budgets/{got['id']}",
        {"amount_usd": "150.5", "rules": [{"kind": "actual", "thresholds": [90]}, body["rules"][1]]},
        format="json",
    )
    assert changed.status_code == 200, changed.json()
    assert changed.json()["amount_usd"] == "150.50"
    assert [r["id"] for r in changed.json()["rules"]] == rule_ids
    assert changed.json()["rules"][0]["thresholds"] == [90]
    assert admin.delete(f"/v1/budgets/{got['id']}").status_code == 204
    assert admin.get(f"/v1/budgets/{got['id']}").status_code == 404


def test_budget_detail_shows_this_periods_burn(admin: APIClient, api: APIClient) -> None:
    created = admin.post("/v1/budgets", {"name": "d", "amount_usd": "8", "period": "day"}, format="json").json()
    spend(api, "2.00", datetime.now(UTC), feature="search")
    current = admin.get(f"/v1/budgets/{created['id']}").json()["current"]
    assert (current["spent_usd"], current["percent"]) == ("2.000000000000", "25.0")


def test_budget_defaults_to_50_80_100(admin: APIClient) -> None:
    created = admin.post("/v1/budgets", {"name": "m", "amount_usd": "10"}, format="json").json()
    assert created["rules"] == [
        {"id": created["rules"][0]["id"], "kind": "actual", "thresholds": [50, 80, 100], "channels": []}
    ]
    assert (created["period"], created["timezone"]) == ("month", "UTC")


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"amount_usd": "ten"}, "amount_usd", "valid number"),
        ({"name": "evil\nBcc: x@example.com"}, "name", "control characters"),
        ({"amount_usd": "0"}, "amount_usd", "greater than or equal"),
        ({"timezone": "Mars/Olympus"}, "timezone", "unknown time zone"),
        ({"period": "fortnight"}, "period", "not a valid choice"),
        ({"period": "custom"}, "period_start", "needs period_start"),
        ({"period": "custom", "period_start": "2026-11-03"}, "period_days", "needs period_days"),
        ({"period": "custom", "period_start": "9999-12-01", "period_days": 60}, "period_start", "within 10 years"),
        ({"period": "custom", "period_start": "1900-01-01", "period_days": 60}, "period_start", "within 10 years"),
        ({"period": "custom", "period_start": "2026-11-03", "period_days": 367}, "period_days", "366"),
        ({"scope": {"team": ["x"]}}, "scope", "scope.team is not a scope dimension"),
        ({"scope": {"feature": []}}, "scope", "scope.feature must be a non-empty list"),
        ({"rules": [{"kind": "actual", "thresholds": ["abc"]}]}, "rules", "valid number"),
        ({"rules": [{"kind": "anomaly", "thresholds": [50]}]}, "rules", "must exceed 100"),
        ({"rules": [{"kind": "actual", "thresholds": [50], "channels": [999999]}]}, "rules", "no channel 999999"),
    ],
)
def test_bad_budgets_are_400_naming_the_field(
    admin: APIClient, change: dict[str, object], field: str, message: str
) -> None:
    answer = admin.post("/v1/budgets", {"name": "b", "amount_usd": "10", **change}, format="json")
    assert answer.status_code == 400
    assert message in str(answer.json()[field])


def test_patching_rules_without_their_kind_is_400(admin: APIClient) -> None:
    created = admin.post("/v1/budgets", {"name": "m", "amount_usd": "10"}, format="json").json()
    answer = admin.patch(f"/v1/budgets/{created['id']}", {"rules": [{"thresholds": [50]}]}, format="json")
    assert answer.status_code == 400
    assert "each rule needs its kind" in str(answer.json()["rules"])
    assert admin.get(f"/v1/budgets/{created['id']}").json()["rules"] == created["rules"]


def test_a_budget_stored_with_an_unbuildable_period_still_reads(project: Project, admin: APIClient) -> None:
    broken = Budget.objects.create(
        project=project, name="b", amount=10, period="custom", period_start=date(9999, 12, 1), period_days=60
    )
    answer = admin.get(f"/v1/budgets/{broken.pk}")
    assert answer.status_code == 200, answer.content
    assert answer.json()["current"] is None
    assert admin.get("/v1/budgets").status_code == 200


def test_write_needs_the_admin_scope_and_read_needs_read(project: Project) -> None:
    reader, ingester = client_for(project, "read"), client_for(project, "ingest")
    answer = reader.post("/v1/budgets", {"name": "b", "amount_usd": "10"}, format="json")
    assert answer.status_code == 403
    assert "admin" in answer.json()["detail"]
    assert reader.get("/v1/budgets").status_code == 200
    assert ingester.get("/v1/budgets").status_code == 403
    assert ingester.get("/v1/alerts").status_code == 403


def test_one_project_never_sees_anothers_budgets_channels_or_alerts(
    project: Project, admin: APIClient, api: APIClient
) -> None:
    channel = make_channel(admin)
    budget = admin.post(
        "/v1/budgets",
        {
            "name": "b",
            "amount_usd": "10",
            "rules": [{"kind": "actual", "thresholds": [50], "channels": [channel["id"]]}],
        },
        format="json",
    ).json()
    spend(api, "6.00", datetime(2026, 10, 3, tzinfo=UTC))
    evaluate(project, datetime(2026, 10, 20, tzinfo=UTC))
    assert len(admin.get("/v1/alerts").json()["data"]) == 1
    other = Project.objects.create(organization=Organization.objects.create(name="other-org"), name="other")
    intruder = client_for(other, "admin", "read")
    assert intruder.get(f"/v1/budgets/{budget['id']}").status_code == 404
    assert intruder.patch(f"/v1/budgets/{budget['id']}", {"name": "x"}, format="json").status_code == 404
    assert intruder.delete(f"/v1/channels/{channel['id']}").status_code == 404
    assert intruder.post(f"/v1/channels/{channel['id']}/test").status_code == 404
    assert intruder.get("/v1/budgets").json()["data"] == []
    assert intruder.get("/v1/alerts").json()["data"] == []
    # nor can it attach another project's channel to its own budget
    answer = intruder.post(
        "/v1/budgets",
        {"name": "b", "amount_usd": "1", "rules": [{"kind": "actual", "channels": [channel["id"]]}]},
        format="json",
    )
    assert answer.status_code == 400
    assert Budget.objects.filter(project=other).count() == 0


def test_alerts_list_their_deliveries(project: Project, admin: APIClient, api: APIClient) -> None:
    with receiver() as hook:
        channel = make_channel(admin, kind="webhook", name="hook", config={"url": hook.url, "secret": "s" * 20})
        admin.post(
            "/v1/budgets",
            {"name": "b", "amount_usd": "10", "rules": [{"kind": "actual", "channels": [channel["id"]]}]},
            format="json",
        )
        spend(api, "12.00", datetime(2026, 10, 3, tzinfo=UTC))
        evaluate(project, datetime(2026, 10, 20, tzinfo=UTC))
    alerts = admin.get("/v1/alerts", {"status": "fired"}).json()["data"]
    assert [(a["threshold"], a["status"], a["spend_usd"]) for a in alerts] == [(100, "fired", "12.000000000000")]
    [delivery] = alerts[0]["deliveries"]
    assert (delivery["channel"]["name"], delivery["status"], delivery["attempts"]) == ("hook", "sent", 1)
    assert len(admin.get("/v1/alerts").json()["data"]) == 3  # with the superseded 50 and 80
    assert admin.get("/v1/alerts", {"status": "nope"}).status_code == 400


def test_send_test_action(admin: APIClient) -> None:
    with receiver() as hook:
        hook.script = [(200, "ok"), (410, "gone")]
        channel = make_channel(admin, kind="webhook", name="hook", config={"url": hook.url, "secret": "s" * 20})
        assert admin.post(f"/v1/channels/{channel['id']}/test").json()["ok"] is True
        failed = admin.post(f"/v1/channels/{channel['id']}/test").json()
    assert (failed["ok"], failed["channel"]["enabled"]) == (False, False)
    assert failed["channel"]["disabled_reason"] == "receiver answered 410 Gone"
    # a new config re-enables it
    fixed = admin.patch(
        f"/v1/channels/{channel['id']}",
        {"config": {"url": "https://example.com/new", "secret": "t" * 20}},
        format="json",
    )
    assert fixed.json()["enabled"] is True


def test_signed_in_admin_manages_with_project_parameter_and_viewer_only_reads(project: Project) -> None:
    org = project.organization
    users = {}
    for role in ("admin", "viewer"):
        user = User.objects.create_user(f"{role}-{project.pk}", password="pw-123456789")
        Membership.objects.create(user=user, organization=org, role=role)
        client = APIClient()
        client.force_authenticate(user)
        users[role] = client
    created = users["admin"].post(f"/v1/budgets?project={project.pk}", {"name": "b", "amount_usd": "5"}, format="json")
    assert created.status_code == 201
    assert users["viewer"].get(f"/v1/budgets?project={project.pk}").json()["data"][0]["name"] == "b"
    denied = users["viewer"].post(f"/v1/budgets?project={project.pk}", {"name": "c", "amount_usd": "5"}, format="json")
    assert denied.status_code == 403
