from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from tenancy.access import visible_projects


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """Landing page: the projects this user can see and where to go next."""
    projects = visible_projects(request.user).select_related("organization").order_by("name")
    return render(request, "dashboards/home.html", {"projects": projects})
