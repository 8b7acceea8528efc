"""/v1/limits: the shared CRUD cases, pools of models, and what a limit may not be."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from rest_framework.test import APIClient

from api.tests.crud import CrudCases, key_client
from ledger.models import RateLimit
from tenancy.models import Project


class TestLimitsApi(CrudCases):
    url = "/v1/limits"
    model = RateLimit
    update_body: ClassVar[dict[str, Any]] = {"tpm": 450_000, "rpm": None}

    def make(self, project: Project, n: int = 0) -> int:
        return RateLimit.objects.create(project=project, provider="openai", model=f"gpt-4o-{n}", tpm=30_000, rpm=500).pk

    def create_body(self, project: Project) -> dict[str, Any]:
        return {"provider": "openai", "model": "gpt-4o", "tpm": 30_000_000, "rpm": 10_000}


@pytest.fixture
def admin(project: Project) -> APIClient:
    return key_client(project, "admin", "read")


@pytest.mark.django_db
def test_a_limit_answers_every_field(admin: APIClient) -> None:
    body = admin.post("/v1/limits", {"provider": "anthropic", "model": "claude-sonnet-4-5", "itpm": 2_000_000,
                                     "otpm": 400_000, "rpm": 4_000}, format="json").json()  # fmt: skip
    assert {k: body[k] for k in ("provider", "model", "models", "tpm", "rpm", "itpm", "otpm")} == {
        "provider": "anthropic", "model": "claude-sonnet-4-5", "models": ["claude-sonnet-4-5"], "tpm": None,
        "rpm": 4_000, "itpm": 2_000_000, "otpm": 400_000,
    }  # fmt: skip


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body",
    [
        {"model": "gpt-4.1 family", "models": ["gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano"]},
        {"model": ["gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano"]},
    ],
)
def test_several_models_may_share_one_pool(admin: APIClient, project: Project, body: dict[str, Any]) -> None:
    created = admin.post("/v1/limits", {"provider": "openai", "tpm": 1_000_000, **body}, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["models"] == ["gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano"]
    assert RateLimit.objects.get(project=project).members == ["gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano"]
    # a model already in the pool cannot have a limit of its own with that provider
    clash = admin.post("/v1/limits", {"provider": "openai", "model": "gpt-4.1-mini", "rpm": 5}, format="json")
    assert clash.status_code == 400
    assert "gpt-4.1-mini already counts against openai/" in clash.json()["models"][0]
    # but with another provider it may
    other = {"provider": "azure", "model": "gpt-4.1-mini", "rpm": 5}
    assert admin.post("/v1/limits", other, format="json").status_code == 201


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"provider": "openai", "model": "gpt-4o"}, "tpm"),  # no limit at all
        ({"provider": "openai", "model": "gpt-4o", "tpm": 0}, "tpm"),
        ({"provider": "openai", "model": "gpt-4o", "rpm": -5}, "rpm"),
        ({"provider": "openai", "model": "gpt-4o", "itpm": 10**12 + 1}, "itpm"),
        ({"provider": "openai", "model": "gpt-4o", "otpm": "many"}, "otpm"),
        ({"provider": "", "model": "gpt-4o", "tpm": 5}, "provider"),
        ({"provider": "openai", "model": "", "tpm": 5}, "model"),
        ({"provider": "openai", "model": [], "tpm": 5}, "model"),
        ({"provider": "openai", "model": 7, "tpm": 5}, "model"),
        ({"provider": "openai", "model": ["a", "a"], "tpm": 5}, "model"),
        ({"provider": "openai", "model": "p", "models": ["a", 3], "tpm": 5}, "models"),
        ({"provider": "openai", "model": "p", "models": [f"m{i}" for i in range(51)], "tpm": 5}, "models"),
        ({"model": "gpt-4o", "tpm": 5}, "provider"),
    ],
)
def test_a_bad_limit_is_400_naming_the_field(
    admin: APIClient, project: Project, body: dict[str, Any], field: str
) -> None:
    answer = admin.post("/v1/limits", body, format="json")
    assert answer.status_code == 400, answer.content
    assert field in answer.json()
    assert not RateLimit.objects.filter(project=project).exists()


@pytest.mark.django_db
def test_one_limit_per_provider_and_model(admin: APIClient) -> None:
    body = {"provider": "openai", "model": "gpt-4o", "tpm": 5}
    assert admin.post("/v1/limits", body, format="json").status_code == 201
    again = admin.post("/v1/limits", body, format="json")
    assert again.status_code == 400
    assert "has a limit already" in again.json()["model"][0]


@pytest.mark.django_db
def test_an_update_may_not_remove_the_last_limit(admin: APIClient, project: Project) -> None:
    pk = RateLimit.objects.create(project=project, provider="openai", model="gpt-4o", tpm=5).pk
    assert admin.patch(f"/v1/limits/{pk}", {"tpm": None}, format="json").status_code == 400
    assert admin.patch(f"/v1/limits/{pk}", {"tpm": None, "rpm": 60}, format="json").status_code == 200
    assert RateLimit.objects.get(pk=pk).tpm is None
