"""The Settings page for rate limits: admins set a model's or a pool's limits, see clashes, remove them."""

from __future__ import annotations

from typing import Any

import pytest

from ledger.models import RateLimit
from tenancy.models import Project


def page(project: Project) -> str:
    return f"/p/{project.pk}/settings/limits/"


@pytest.mark.django_db
def test_an_admin_sets_a_pool_and_removes_it(project: Project, member: Any) -> None:
    admin = member("admin")
    body = {"provider": "openai", "model": "gpt-4.1 family", "members": "gpt-4.1, gpt-4.1-mini", "tpm": "800000"}
    assert admin.post(page(project), body).status_code == 302
    limit = RateLimit.objects.get(project=project)
    assert (limit.members, limit.tpm, limit.rpm) == (["gpt-4.1", "gpt-4.1-mini"], 800_000, None)
    shown = admin.get(page(project)).content.decode()
    assert "gpt-4.1 family" in shown
    assert "gpt-4.1, gpt-4.1-mini" in shown
    # a model of the pool cannot get a limit of its own with that provider
    clash = admin.post(page(project), {"provider": "openai", "model": "gpt-4.1-mini", "rpm": "60"})
    assert clash.status_code == 200
    assert "already counts against openai/gpt-4.1 family" in clash.content.decode()
    assert admin.post(page(project), {"delete": limit.pk}).status_code == 302
    assert not RateLimit.objects.filter(project=project).exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"provider": "openai", "model": "gpt-4o"}, "give at least one limit"),
        ({"provider": "openai", "model": "gpt-4o", "rpm": "-1"}, "greater than or equal to 0"),
        ({"provider": "openai", "model": "gpt-4o", "rpm": "0"}, "a limit is at least 1"),
        ({"provider": "openai", "model": "p", "members": "a, a", "tpm": "5"}, "name each model once"),
    ],
)
def test_a_bad_limit_is_shown_and_not_saved(project: Project, member: Any, body: dict[str, str], message: str) -> None:
    answer = member("admin").post(page(project), body)
    assert answer.status_code == 200
    assert message in answer.content.decode()
    assert not RateLimit.objects.filter(project=project).exists()


@pytest.mark.django_db
def test_another_projects_limit_cannot_be_removed(project: Project, member: Any) -> None:
    other = Project.objects.create(organization=project.organization, name="other")
    theirs = RateLimit.objects.create(project=other, provider="openai", model="gpt-4o", tpm=5)
    member("admin").post(page(project), {"delete": theirs.pk})
    assert RateLimit.objects.filter(pk=theirs.pk).exists()
