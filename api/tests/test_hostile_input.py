"""Client input that once answered 500: each is a 400 that names the field, and nothing is stored."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from rest_framework.test import APIClient

from alerts.models import Budget, Channel
from tenancy.models import ApiKey, Membership, Project, Role


@pytest.fixture
def admin_api(project: Project) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {ApiKey.issue(project, ['read', 'admin'])[1]}")
    return client


def post_raw(client: Client, path: str, raw: str) -> Any:
    return client.post(path, data=raw.encode("utf-8", "surrogatepass"), content_type="application/json")


NUL = "\\u0000"
SURROGATE = "\\ud800"


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/budgets", '{"name": "b", "amount_usd": "5", "scope": {"feature": ["a@b"]}}'.replace("@", NUL), "scope"),
        (
            "/v1/budgets",
            '{"name": "b", "amount_usd": "5", "scope": {"feature": ["@"]}}'.replace("@", SURROGATE),
            "scope",
        ),
        (
            "/v1/budgets",
            '{"name": "b", "amount_usd": "5", "scope": {"tag": {"te@am": ["x"]}}}'.replace("@", NUL),
            "scope",
        ),
        ("/v1/budgets", '{"name": "b@", "amount_usd": "5"}'.replace("@", SURROGATE), "name"),
        (
            "/v1/channels",
            '{"kind": "slack", "name": "s", "config": {"webhook_url": "https://hooks.slack.com/a@b"}}'.replace(
                "@", NUL
            ),
            "config",
        ),
        (
            "/v1/channels",
            '{"kind": "webhook", "name": "w", "config": {"url": "https://example.com/h", "secret": "s@"}}'.replace(
                "@", SURROGATE
            ),
            "config",
        ),
    ],
)
def test_unstorable_text_in_json_fields_is_a_400_naming_the_field(
    admin_api: APIClient, project: Project, path: str, body: str, field: str
) -> None:
    answer = post_raw(admin_api, path, body)
    assert answer.status_code == 400, answer.content
    assert field in answer.json()
    json.dumps(answer.json(), ensure_ascii=False).encode()  # the answer itself is valid UTF-8
    assert not Budget.objects.filter(project=project).exists()
    assert not Channel.objects.filter(project=project).exists()


@pytest.mark.parametrize("path", ["/v1/feedback", "/v1/budgets", "/v1/channels"])
def test_a_deeply_nested_body_is_a_400(project: Project, path: str) -> None:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {ApiKey.issue(project, ['ingest', 'read', 'admin'])[1]}")
    answer = post_raw(client, path, "[" * 100_000)
    assert answer.status_code == 400
    assert "nested too deeply" in answer.json()["detail"]


def test_the_dashboard_channel_form_refuses_a_nul_byte(project: Project) -> None:
    user = get_user_model().objects.create_user("form-admin", password="pw")
    Membership.objects.create(user=user, organization=project.organization, role=Role.ADMIN)
    client = Client()
    client.force_login(user)
    answer = client.post(
        f"/p/{project.pk}/budgets/channels/",
        {"kind": "slack", "name": "s", "webhook_url": "https://hooks.slack.com/services/a\x00b"},
    )
    assert answer.status_code == 400
    assert not Channel.objects.filter(project=project).exists()


@pytest.mark.parametrize("value", ["²", "١٢", "1" * 40, "-1"])
def test_the_project_switcher_refuses_what_is_not_an_id(project: Project, value: str) -> None:
    user = get_user_model().objects.create_user("switcher", password="pw")
    Membership.objects.create(user=user, organization=project.organization, role=Role.VIEWER)
    client = Client()
    client.force_login(user)
    answer = client.get("/switch", {"project": value})
    assert answer.status_code == 400
    assert b"project" in answer.content


@pytest.mark.parametrize(
    "path", ["/v1/usage?from=2026-11-01&to=2026-11-02", "/v1/budgets", "/v1/channels", "/v1/alerts"]
)
def test_a_nul_in_the_project_parameter_is_a_400(project: Project, path: str) -> None:
    user = get_user_model().objects.create_user("nul-project", password="pw")
    Membership.objects.create(user=user, organization=project.organization, role=Role.ADMIN)
    client = Client()
    client.force_login(user)
    answer = client.get(f"{path}&project=a%00b" if "?" in path else f"{path}?project=a%00b")
    assert answer.status_code == 400
    assert "project" in answer.json()
