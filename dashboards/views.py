from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import NoReverseMatch, reverse

from tenancy.access import visible_projects


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """Landing page: the projects this user can see and where to go next."""
    projects = visible_projects(request.user).select_related("organization").order_by("name")
    return render(request, "dashboards/home.html", {"projects": projects})


@login_required
def switch(request: HttpRequest) -> HttpResponse:
    """The project switcher: the same page in another project (or that project's first page)."""
    wanted = request.GET.get("project", "")
    if not wanted.isdigit() or not visible_projects(request.user).filter(pk=int(wanted)).exists():
        raise Http404("no such project")
    page = request.GET.get("page", "")
    for name in (page, "dashboards:overview"):
        try:
            return HttpResponseRedirect(reverse(name, kwargs={"project_id": int(wanted)}))
        except NoReverseMatch:
            continue
    return HttpResponseRedirect(reverse("dashboards:home"))
