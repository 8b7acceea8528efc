"""Who may see and do what: projects visible to a signed-in user, and their role in each.

Roles (per organization membership):
- viewer: reads the aggregate dashboards (overview, engineering, route comparison, budgets);
- finance, engineer: read every dashboard, including single calls and customer pages;
- admin: also manages API keys, budgets, channels and members.
Engineering pages (capacity) are for engineers and admins.
Superusers act as admins everywhere.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from tenancy.models import Membership, Project, Role

# What each kind of page needs: "read" (aggregates), "detail" (single calls, customers), "engineer"
# (capacity planning), "manage".
_ALLOWED = {
    "read": {Role.VIEWER, Role.FINANCE, Role.ENGINEER, Role.ADMIN},
    "detail": {Role.FINANCE, Role.ENGINEER, Role.ADMIN},
    "engineer": {Role.ENGINEER, Role.ADMIN},
    "manage": {Role.ADMIN},
}


def visible_projects(user: Any) -> QuerySet[Project]:
    if not getattr(user, "is_authenticated", False):
        return Project.objects.none()
    if user.is_superuser:
        return Project.objects.all()
    return Project.objects.filter(organization__memberships__user_id=user.pk).distinct()


def role_in(user: Any, project: Project) -> str | None:
    """The user's role in the project's organization (admin for superusers), or None."""
    if not getattr(user, "is_authenticated", False):
        return None
    if user.is_superuser:
        return Role.ADMIN
    return (
        Membership.objects.filter(user_id=user.pk, organization_id=project.organization_id)
        .values_list("role", flat=True)
        .first()
    )


def may(role: str | None, need: str) -> bool:
    """Whether a role may do what a page needs ("read", "detail" or "manage")."""
    if need not in _ALLOWED:
        raise ValueError(f"unknown need {need!r}")
    return role in _ALLOWED[need]
