from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from tenancy.models import Project


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """Landing page: the projects this user can see and where to go next."""
    projects = Project.objects.filter(organization__memberships__user=request.user).order_by("name")
    if request.user.is_superuser:
        projects = Project.objects.order_by("name")
    return render(request, "dashboards/home.html", {"projects": projects})
