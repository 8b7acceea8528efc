"""Dashboard views: thin glue from the URL's filters to a page's figures and its template.

Each analytics page computes a :class:`~dashboards.tables.PageData` (in its own module) and either
renders it or, with ``?export=<table>``, answers that table as CSV over the same filters.
"""

from __future__ import annotations

import re
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    HttpResponseBase,
    HttpResponseRedirect,
    StreamingHttpResponse,
)
from django.shortcuts import render
from django.urls import NoReverseMatch, reverse

from alerts.burn import burns
from alerts.models import Budget
from dashboards import charts
from dashboards.compare import DIMENSIONS as COMPARE_DIMENSIONS
from dashboards.compare import compare
from dashboards.customers import customer_detail, customer_list
from dashboards.engineering import PERCENTILES, SPLITS, engineering
from dashboards.filters import GRANULARITY_CHOICES, GRANULARITY_LABELS, Filters, parse_filters
from dashboards.overview import STACKS, focus_query, overview
from dashboards.tables import PageData, rendered
from ledger import focus
from ledger.explore import dimension_values
from ledger.queries import QueryError
from tenancy.access import visible_projects
from tenancy.models import Project
from web.frame import ProjectContext, project_page, render_page

DIM_LABELS = {
    "feature": "Feature",
    "model": "Model",
    "provider": "Provider",
    "route_version": "Route version",
    "route": "Route",
    "environment": "Environment",
    "traffic": "Traffic",
    "status": "Status",
}
DIM_VALUES_TTL = 60  # seconds: filter choices may lag new values by a minute; figures never do


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """Landing page: straight to the only project, else the list of projects this user can see."""
    projects = list(visible_projects(request.user).select_related("organization").order_by("name"))
    if len(projects) == 1:
        return HttpResponseRedirect(reverse("dashboards:overview", kwargs={"project_id": projects[0].pk}))
    return render(request, "dashboards/home.html", {"projects": projects})


@login_required
def switch(request: HttpRequest) -> HttpResponse:
    """The project switcher: the same page in another project (or that project's overview)."""
    wanted = request.GET.get("project", "")
    if not re.fullmatch(r"[0-9]{1,18}", wanted):  # ASCII digits only: "²".isdigit() is true
        return HttpResponseBadRequest("project must be a project id (digits)")
    if not visible_projects(request.user).filter(pk=int(wanted)).exists():
        raise Http404("no such project")
    for name in (request.GET.get("page", ""), "dashboards:overview"):
        try:
            return HttpResponseRedirect(reverse(name, kwargs={"project_id": int(wanted)}))
        except NoReverseMatch:
            continue
    return HttpResponseRedirect(reverse("dashboards:home"))


def _dimension_values(project: Project, f: Filters) -> dict[str, list[str]]:
    key = f"dims:{project.pk}:{f.start.isoformat()}:{f.end.isoformat()}"
    values: dict[str, list[str]] | None = cache.get(key)
    if values is None:
        values = dimension_values(project.pk, f.start, f.end)
        cache.set(key, values, DIM_VALUES_TTL)
    return values


def _frame(project: Project, f: Filters, keep: dict[str, str] | None = None) -> dict[str, Any]:
    """What the filter bar and the tables' export links need."""
    values = _dimension_values(project, f)
    dim_choices = []
    for dim, label in DIM_LABELS.items():
        chosen = f.dims.get(dim, ())
        options = sorted(set(values.get(dim, [])) | set(chosen))
        dim_choices.append(
            {
                "name": dim,
                "label": label,
                "values": [{"value": v, "selected": v in chosen} for v in options],
                "any_selected": bool(chosen),
            }
        )
    keep = {k: v for k, v in (keep or {}).items() if v}
    return {
        "filters": f,
        "granularities": [(g, GRANULARITY_LABELS[g]) for g in GRANULARITY_CHOICES],
        "presets": f.presets(keep),
        "zones": f.zones(),
        "dim_choices": dim_choices,
        "customer_values": f.dims.get("customer_id", ()),
        "keep": sorted(keep.items()),
        "active_filters": [{"dim": d, "values": ", ".join(v)} for d, v in f.dims.items()],
        "reset_query": f.without_dims().query_string(**keep),
        "export_query": f.query_string(**keep),
    }


def page_filters(ctx: ProjectContext) -> Filters:
    request = ctx.request
    f = parse_filters(request.GET)
    if not ctx.can_detail:
        # Per-customer figures are for finance, engineers and admins; viewers see aggregates only.
        return f.without("customer_id").without("user_id")
    # The customer box ("customers") is free text: "a, b" names two customers. Links carry each id
    # exactly as ?customer_id=…, so an id with a comma in it stays whole.
    typed = [c.strip() for v in request.GET.getlist("customers") for c in v.split(",") if c.strip()]
    if typed:
        f = f.with_dim("customer_id", tuple(dict.fromkeys([*f.dims.get("customer_id", ()), *typed]))[:50])
    return f


def render_filtered(
    ctx: ProjectContext,
    template: str,
    build: Any,
    f: Filters,
    keep: dict[str, str] | None = None,
    **context: Any,
) -> HttpResponse:
    """Build the page's data (or report a bad query), then render it or export one of its tables."""
    query_error = ""
    try:
        data: PageData = build()
    except QueryError as exc:
        data, query_error = PageData(extra={"has_data": False}), str(exc)
    export = ctx.request.GET.get("export")
    if export:
        table = data.table(export)
        if table is None:
            raise Http404(f"this page has no table {export!r}")
        return table.csv_response(f"{ctx.project.name}-{f.start_date}-{f.end_date}")
    return render_page(
        ctx,
        template,
        {
            **_frame(ctx.project, f, keep),
            **data.extra,
            "query_error": query_error,
            "kpis": data.kpis,
            "charts": [(cid, charts.to_json(fig)) for cid, fig in data.charts],
            "tables": [rendered(t) for t in data.tables],
            "page_data": data,
            **context,
        },
        status=400 if query_error else 200,
    )


def _link_customers(data: PageData, ctx: ProjectContext, f: Filters, table: str) -> PageData:
    """Link customer ids in ``table`` to their page (same range), for roles that may open it."""
    found = data.table(table)
    if found is not None and ctx.can_detail:
        url = reverse("dashboards:customer", kwargs={"project_id": ctx.project.pk, "customer": "__c__"})
        found.links["customer_id"] = url.replace("__c__", "{value}") + "?" + f.without("customer_id").query_string()
    return data


def _choice(request: HttpRequest, name: str, choices: Any, default: str) -> str:
    value = request.GET.get(name, default)
    return value if value in choices else default


@project_page("read")
def overview_view(ctx: ProjectContext) -> HttpResponse:
    f = page_filters(ctx)
    detail = ctx.can_detail
    stacks = {k: v for k, v in STACKS.items() if detail or k != "customer_id"}
    stack = _choice(ctx.request, "stack", stacks, "feature")
    export = ctx.request.GET.get("export") or None  # one table as CSV: neither the rest of the page nor the budgets
    budgets = _budget_burn(ctx.project) if export is None else []
    return render_filtered(
        ctx,
        "dashboards/overview.html",
        lambda: _link_customers(overview(ctx.project.pk, f, stack, customers=detail, only=export), ctx, f, "customers"),
        f,
        keep={"stack": stack if stack != "feature" else ""},
        stack=stack,
        stacks=list(stacks.items()),
        budgets=budgets,
        forecast_methods=list(dict.fromkeys(b["method"] for b in budgets if b["method"])),
    )


@project_page("read")
def focus_export_view(ctx: ProjectContext) -> HttpResponseBase:
    """The overview's "Download FOCUS (CSV)": the page's range and filters as FOCUS rows, streamed."""
    query = focus_query(ctx.project.pk, page_filters(ctx), customers=ctx.can_detail)
    try:
        body = focus.encode(query, "csv")
    except QueryError as exc:
        return HttpResponseBadRequest(str(exc))
    response = StreamingHttpResponse(body, content_type=focus.FORMATS["csv"])
    response["Content-Disposition"] = f'attachment; filename="{focus.filename(ctx.project.name, query, "csv")}"'
    return response


def _budget_burn(project: Project) -> list[dict[str, Any]]:
    """Each of the project's budgets this period: spent, share, forecast (one batched read)."""
    budgets = list(Budget.objects.filter(project=project).prefetch_related("rules").order_by("name"))
    if not budgets:
        return []
    burn = burns(budgets)
    return [
        {
            "name": b.name,
            "amount": b.amount,
            "spent": burn[b.pk].spent,
            "pct": float(burn[b.pk].percent) / 100,
            "bar_pct": burn[b.pk].bar,
            "level": burn[b.pk].tone,
            "forecast": burn[b.pk].forecast,
            "run_rate": burn[b.pk].run_rate,
            "method": burn[b.pk].method,
            "period": burn[b.pk].window,
        }
        for b in budgets
        if b.pk in burn
    ]


@project_page("read")
def engineering_view(ctx: ProjectContext) -> HttpResponse:
    f = page_filters(ctx)
    split = _choice(ctx.request, "split", SPLITS, "model")
    pct = _choice(ctx.request, "pct", PERCENTILES, "p95")
    return render_filtered(
        ctx,
        "dashboards/engineering.html",
        lambda: engineering(ctx.project.pk, f, split, pct),
        f,
        keep={"split": split if split != "model" else "", "pct": pct if pct != "p95" else ""},
        split=split,
        splits=list(SPLITS.items()),
        pct=pct,
        percentiles=PERCENTILES,
    )


@project_page("read")
def compare_view(ctx: ProjectContext) -> HttpResponse:
    f = page_filters(ctx)
    dim = _choice(ctx.request, "dim", COMPARE_DIMENSIONS, "route_version")
    options = _dimension_values(ctx.project, f).get(dim, [])
    a = ctx.request.GET.get("a") or (options[0] if options else "")
    b = ctx.request.GET.get("b") or (options[1] if len(options) > 1 else a)
    return render_filtered(
        ctx,
        "dashboards/compare.html",
        lambda: compare(ctx.project.pk, f, dim, a, b) if a and b else PageData(extra={"has_data": False}),
        f,
        keep={"dim": dim, "a": a, "b": b},
        dim=dim,
        dims=list(COMPARE_DIMENSIONS.items()),
        a=a,
        b=b,
        options=sorted(set(options) | {a, b} - {""}),
    )


@project_page("detail")
def customers_view(ctx: ProjectContext) -> HttpResponse:
    f = page_filters(ctx)
    return render_filtered(
        ctx,
        "dashboards/customers.html",
        lambda: _link_customers(customer_list(ctx.project.pk, f), ctx, f, "customers"),
        f,
    )


@project_page("detail")
def customer_view(ctx: ProjectContext, customer: str) -> HttpResponse:
    f = page_filters(ctx)
    return render_filtered(
        ctx,
        "dashboards/customer.html",
        lambda: customer_detail(ctx.project.pk, f, customer),
        f,
        customer=customer,
    )
