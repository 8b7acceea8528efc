"""Resolve the project of a management request (budgets, channels): an ``admin``-scoped API key's
own project, or one where the signed-in user is an admin (``?project=``)."""

from __future__ import annotations

from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request

from api.access import project_for_read
from tenancy.access import may, role_in
from tenancy.authentication import KeyPrincipal
from tenancy.models import Project


def project_for_admin(request: Request) -> Project:
    user = request.user
    if isinstance(user, KeyPrincipal):
        if "admin" not in user.api_key.scopes:
            raise PermissionDenied("This API key lacks the 'admin' scope.")
        return user.project
    project = project_for_read(request)  # 404 for projects the user cannot see
    if not may(role_in(user, project), "manage"):
        raise PermissionDenied("Only a project admin may change budgets and channels.")
    return project


def project_for(request: Request) -> Project:
    """Reads need ``read``; anything else needs ``admin``."""
    return project_for_read(request) if request.method in ("GET", "HEAD", "OPTIONS") else project_for_admin(request)
