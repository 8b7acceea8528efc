"""The frame every project page shares: access checks, the project switcher and the navigation.

A project page is ``@project_page(need)`` on a view ``(ctx: ProjectContext, ...)``; it answers 404
for projects the user cannot see (the same answer as for ones that do not exist) and 403 when the
user's role lacks ``need``. :func:`render_page` adds what ``web/base.html`` needs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any, Concatenate, NamedTuple, ParamSpec, TypeVar

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import render
from django.urls import NoReverseMatch, reverse

from tenancy.access import may, role_in, visible_projects
from tenancy.models import Project

P = ParamSpec("P")
R = TypeVar("R", bound=HttpResponseBase)  # a page, or a streamed download


class NavItem(NamedTuple):
    url_name: str  # reversed with project_id
    label: str
    need: str  # "read", "detail", "engineer" or "manage"
    pages: tuple[str, ...] = ()  # other pages (URL names) this item stands for in the navigation


# The project navigation, in order. Apps add their pages here (one line each); a page whose app
# is not installed is left out.
NAV: list[NavItem] = [
    NavItem("dashboards:overview", "Overview", "read"),
    NavItem("dashboards:engineering", "Engineering", "read"),
    NavItem("dashboards:compare", "Compare", "read"),
    NavItem("dashboards:customers", "Customers", "detail"),
    NavItem("dashboards:savings", "Savings", "detail"),
    NavItem("dashboards:capacity", "Capacity", "engineer"),
    NavItem("dashboards:calls", "Calls", "detail", ("dashboards:trace", "dashboards:session", "dashboards:request")),
    NavItem("alerts:budgets", "Budgets", "read"),
    NavItem(
        "dashboards:keys",
        "Settings",
        "manage",
        ("dashboards:members", "dashboards:prices", "dashboards:advisor", "dashboards:limits"),
    ),
]


@dataclass(frozen=True)
class ProjectContext:
    """The request of a project page, the project it opens and the user's role there."""

    request: HttpRequest
    project: Project
    role: str | None

    def may(self, need: str) -> bool:
        return may(self.role, need)

    @property
    def can_detail(self) -> bool:
        """Single calls and per-customer figures (finance, engineers, admins)."""
        return self.may("detail")

    @property
    def can_manage(self) -> bool:
        """Keys, members, prices, budgets and channels (admins)."""
        return self.may("manage")


def project_page(
    need: str = "read",
) -> Callable[[Callable[Concatenate[ProjectContext, P], R]], Callable[..., R]]:
    """Open ``project_id`` for the signed-in user and call the view with its :class:`ProjectContext`."""

    def decorate(view: Callable[Concatenate[ProjectContext, P], R]) -> Callable[..., R]:
        @login_required
        @wraps(view)
        def wrapper(request: HttpRequest, project_id: int, *args: P.args, **kwargs: P.kwargs) -> R:
            project = visible_projects(request.user).select_related("organization").filter(pk=project_id).first()
            if project is None:
                raise Http404("no such project")
            role = role_in(request.user, project)
            if not may(role, need):
                raise PermissionDenied(f"your role ({role}) may not open this page")
            return view(ProjectContext(request, project, role), *args, **kwargs)

        return wrapper

    return decorate


def _nav(ctx: ProjectContext) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for item in NAV:
        if not ctx.may(item.need):
            continue
        try:
            url = reverse(item.url_name, kwargs={"project_id": ctx.project.pk})
        except NoReverseMatch:  # an app that is not installed
            continue
        items.append({"url": url, "label": item.label, "active": False, "names": (item.url_name, *item.pages)})
    # The active item: the one that names this page, else the one whose address is the longest
    # prefix of this page's. The project's root (the overview) is a prefix of every page, so it is
    # active only on itself.
    match = ctx.request.resolver_match
    view_name = match.view_name if match is not None else ""
    named = [i for i in items if view_name in i["names"]]
    path = ctx.request.path
    shortest = min((i["url"] for i in items), key=len, default="")
    root = shortest if all(i["url"].startswith(shortest) for i in items) else ""
    matching = named or [i for i in items if path == i["url"] or (path.startswith(i["url"]) and i["url"] != root)]
    if matching:
        max(matching, key=lambda i: len(i["url"]))["active"] = True
    return items


def render_page(ctx: ProjectContext, template: str, context: dict[str, Any], status: int = 200) -> HttpResponse:
    """Render a project page with the frame's context (project, role, switcher, navigation)."""
    frame = {
        "project": ctx.project,
        "role": ctx.role,
        "can_manage": ctx.can_manage,
        "can_detail": ctx.can_detail,
        "projects": visible_projects(ctx.request.user).order_by("name").only("pk", "name"),
        "nav": _nav(ctx),
    }
    return render(ctx.request, template, {**frame, **context}, status=status)
