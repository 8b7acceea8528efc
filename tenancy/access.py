"""Which projects a signed-in user may see: those of the organizations they are a member of."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from tenancy.models import Project


def visible_projects(user: Any) -> QuerySet[Project]:
    if not getattr(user, "is_authenticated", False):
        return Project.objects.none()
    if user.is_superuser:
        return Project.objects.all()
    return Project.objects.filter(organization__memberships__user_id=user.pk).distinct()
