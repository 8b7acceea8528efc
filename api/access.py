"""Resolve the project of a read request: the API key's own, or one the signed-in user can see."""

from __future__ import annotations

import re

from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.request import Request

from tenancy.access import visible_projects
from tenancy.authentication import KeyPrincipal
from tenancy.models import Project


def project_for_read(request: Request) -> Project:
    user = request.user
    if isinstance(user, KeyPrincipal):
        if not user.api_key.has_scope("read"):
            raise PermissionDenied("This API key lacks the 'read' scope.")
        return user.project
    wanted = request.query_params.get("project")
    if not wanted:
        raise NotFound("name the project with ?project=<id or name>")
    if "\x00" in wanted or len(wanted) > 200:  # a project name is at most 200 characters, never a NUL
        raise ValidationError({"project": ["must be a project id or name (at most 200 characters, no NUL)"]})
    projects = visible_projects(user)
    project = (
        projects.filter(pk=int(wanted)).first()
        if re.fullmatch(r"[0-9]{1,18}", wanted)
        else projects.filter(name=wanted).first()
    )
    if project is None:  # the same answer whether it does not exist or is someone else's
        raise NotFound("no such project")
    return project
