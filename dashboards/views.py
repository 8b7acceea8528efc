from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from tenancy.models import Project


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """Landing page: the projects this user can see and where to go next."""
    user = request.user
    projects = Project.objects.order_by("name")
    if not user.is_superuser:
        projects = projects.filter(organization__memberships__user_id=user.pk or 0)
    return render(request, "dashboards/home.html", {"projects": projects})
