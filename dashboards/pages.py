"""The frame every project page shares: access checks, the project switcher and the navigation.

A project page is ``@project_page(need)`` on a view ``(request, project, ...)``; it answers 404 for
projects the user cannot see (the same answer as for ones that do not exist) and 403 when the
user's role lacks ``need``. :func:`render_page` adds what ``dashboards/base.html`` needs.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, NamedTuple

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import NoReverseMatch, reverse

from tenancy.access import may, role_in, visible_projects
from tenancy.models import Project


class NavItem(NamedTuple):
    url_name: str  # reversed with project_id
    label: str
    need: str  # "read", "detail" or "manage"


# The project navigation, in order. Apps add their pages here (one line each).
NAV: list[NavItem] = [
    NavItem("dashboards:overview", "Overview", "read"),
    NavItem("dashboards:engineering", "Engineering", "read"),
    NavItem("dashboards:compare", "Compare", "read"),
    NavItem("dashboards:customers", "Customers", "detail"),
    NavItem("dashboards:calls", "Calls", "detail"),
    NavItem("alerts:budgets", "Budgets", "read"),
    NavItem("dashboards:keys", "Settings", "manage"),
]

ProjectView = Callable[..., HttpResponse]


def project_page(need: str = "read") -> Callable[[ProjectView], Callable[..., HttpResponse]]:
    def decorate(view: ProjectView) -> Callable[..., HttpResponse]:
        @login_required
        @wraps(view)
        def wrapper(request: HttpRequest, project_id: int, *args: Any, **kwargs: Any) -> HttpResponse:
            project = visible_projects(request.user).select_related("organization").filter(pk=project_id).first()
            if project is None:
                raise Http404("no such project")
            role = role_in(request.user, project)
            if not may(role, need):
                raise PermissionDenied(f"your role ({role}) may not open this page")
            request.project = project  # type: ignore[attr-defined]
            request.role = role  # type: ignore[attr-defined]
            return view(request, project, *args, **kwargs)

        return wrapper

    return decorate


def _nav(request: HttpRequest, project: Project, role: str | None) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for item in NAV:
        if not may(role, item.need):
            continue
        try:
            url = reverse(item.url_name, kwargs={"project_id": project.pk})
        except NoReverseMatch:  # an app that is not installed
            continue
        items.append({"url": url, "label": item.label, "active": False})
    # The active item is the one whose address is the longest prefix of this page's.
    matching = [i for i in items if request.path.startswith(i["url"])]
    if matching:
        max(matching, key=lambda i: len(i["url"]))["active"] = True
    return items


def render_page(request: HttpRequest, template: str, context: dict[str, Any], status: int = 200) -> HttpResponse:
    """Render a project page with the frame's context (project, role, switcher, navigation)."""
    project: Project = request.project  # type: ignore[attr-defined]
    role: str | None = request.role  # type: ignore[attr-defined]
    frame = {
        "project": project,
        "role": role,
        "can_manage": may(role, "manage"),
        "can_detail": may(role, "detail"),
        "projects": visible_projects(request.user).order_by("name").only("pk", "name"),
        "nav": _nav(request, project, role),
    }
    return render(request, template, {**frame, **context}, status=status)
