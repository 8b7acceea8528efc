"""The page frame: what a project page's view receives, and who may open it."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.test import RequestFactory

from tenancy.models import Membership, Organization, Project
from web.frame import ProjectContext, project_page

seen: list[ProjectContext] = []


@project_page("detail")
def detail_page(ctx: ProjectContext, item: str) -> HttpResponse:
    seen.append(ctx)
    return HttpResponse(item)


@pytest.fixture
def shop(db: Any) -> Project:
    return Project.objects.create(organization=Organization.objects.create(name="frame-org"), name="shop")


def open_as(project: Project, role: str | None, project_id: int | None = None) -> HttpResponse:
    request = RequestFactory().get("/anywhere")
    if role is None:
        request.user = AnonymousUser()
    else:
        user = get_user_model().objects.create_user(f"{role}-user")
        Membership.objects.create(user=user, organization=project.organization, role=role)
        request.user = user
    return detail_page(request, project_id or project.pk, item="x")


@pytest.mark.parametrize(
    ("role", "detail", "manage"),
    [
        ("viewer", False, False),
        ("finance", True, False),
        ("engineer", True, False),
        ("admin", True, True),
        (None, False, False),
    ],
)
def test_the_context_says_what_the_role_may(role: str | None, detail: bool, manage: bool) -> None:
    ctx = ProjectContext(RequestFactory().get("/"), Project(name="p"), role)
    assert (ctx.can_detail, ctx.can_manage, ctx.may("read")) == (detail, manage, role is not None)


def test_the_view_gets_the_project_and_the_role(shop: Project) -> None:
    seen.clear()
    answer = open_as(shop, "finance")
    assert answer.status_code == 200
    assert answer.content == b"x"
    (ctx,) = seen
    assert (ctx.project, ctx.role, ctx.request.path) == (shop, "finance", "/anywhere")


def test_a_role_without_the_need_is_refused(shop: Project) -> None:
    with pytest.raises(PermissionDenied):
        open_as(shop, "viewer")


def test_an_invisible_project_is_not_found(shop: Project) -> None:
    other = Project.objects.create(organization=Organization.objects.create(name="other-org"), name="other")
    with pytest.raises(Http404):
        open_as(shop, "admin", project_id=other.pk)


def test_anonymous_users_are_sent_to_sign_in(shop: Project) -> None:
    answer = open_as(shop, None)
    assert answer.status_code == 302
    assert "login" in answer["Location"]


def test_nav_marks_the_section_of_the_page_not_the_overview(shop: Any) -> None:
    from django.test import Client

    user = get_user_model().objects.create_user("nav-admin")
    Membership.objects.create(user=user, organization=shop.organization, role="admin")
    client = Client()
    client.force_login(user)
    for path, label in (
        (f"/p/{shop.pk}/prices/", "Settings"),
        (f"/p/{shop.pk}/settings/members/", "Settings"),
        (f"/p/{shop.pk}/settings/", "Settings"),
        (f"/p/{shop.pk}/budgets/", "Budgets"),
    ):
        html = client.get(path).content.decode()
        active = re.findall(r'<a href="[^"]*" class="active" aria-current="page">([^<]+)</a>', html)
        assert active == [label], (path, active)
