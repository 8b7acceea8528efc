"""The Savings page: ranked opportunities from :func:`ledger.advice.advice` and a what-if tool.

The recommendations are the advice over the page's range and filters, in dollars and dollars per
month, each with its method and figures in words and links to its what-if and its dashboard (both
rebuilt over the page's own filters). The what-if re-prices the same selection at a target model
and/or tier with :func:`ledger.whatif.whatif`, by feature and day; a bad target is a message.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

from django.http import HttpResponse
from django.urls import reverse

from dashboards import charts
from dashboards.filters import Filters
from dashboards.tables import Column, PageData, Table
from dashboards.views import page_filters, render_filtered
from ledger.advice import Advice, Recommendation, advice
from ledger.pricing import pusd_to_usd
from ledger.queries import DIMENSIONS, QueryError
from ledger.whatif import TIERS, Target, WhatIfResult, whatif
from web.frame import ProjectContext, project_page

TARGET_FIELDS = ("to_provider", "to_model", "to_tier")
CHART_FEATURES = 6  # features drawn one by one; the rest are summed as "(other)"
_NOT_FIGURES = {"method", "monthly_method", "whatif", "dashboard"}

RECOMMENDATION_COLUMNS = [
    Column("kind", "Kind"),
    Column("title", "Opportunity"),
    Column("scope", "Scope"),
    Column("savings_usd", "Savings in range", "money"),
    Column("monthly_savings_usd", "Savings per month", "money"),
    Column("method", "Method"),
]
WHATIF_COLUMNS = [
    Column("feature", "Feature"),
    Column("calls", "Calls", "int"),
    Column("actual_cost", "Actual", "money"),
    Column("whatif_cost", "What-if", "money"),
    Column("delta", "What-if − actual", "money"),
    Column("unpriced_calls", "Unpriced at target", "int"),
]


def target_from(params: Any) -> tuple[Target | None, dict[str, str]]:
    """The what-if target the request names (None when it names none) and the raw values for the form."""
    raw = {name: str(params.get(name, "") or "").strip()[:200] for name in TARGET_FIELDS}
    if not any(raw.values()):
        return None, raw
    return Target(provider=raw["to_provider"], model=raw["to_model"], tier=raw["to_tier"]), raw


def _scoped(f: Filters, scope: dict[str, str]) -> Filters:
    """The page's filters narrowed to a recommendation's scope (a comma-joined scope value is several)."""
    for dim, value in scope.items():
        if dim in DIMENSIONS:
            f = f.with_dim(dim, tuple(v for v in value.split(",") if v))
    return f


def _figure_words(evidence: dict[str, Any]) -> list[str]:
    """The evidence's figures as "name: value" lines (nested ones flattened one level)."""
    lines = []
    for key, value in evidence.items():
        if key in _NOT_FIGURES:
            continue
        label = key.replace("_", " ")
        if isinstance(value, dict):
            value = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in value.items())
        elif isinstance(value, list):
            value = ", ".join(str(v) for v in value)
        elif isinstance(value, Decimal) and key.endswith(("cost", "usd")):
            value = f"${value:f}"
        lines.append(f"{label}: {value}")
    return lines


def _recommendation(answer: Advice, rec: Recommendation, page_url: str, f: Filters) -> dict[str, Any]:
    scoped = _scoped(f, rec.scope)
    whatif_url = ""
    if rec.evidence.get("whatif"):
        asked = parse_qs(urlsplit(str(rec.evidence["whatif"])).query)
        target = {k: asked[k][0] for k in TARGET_FIELDS if asked.get(k)}
        whatif_url = f"{page_url}?{scoped.query_string(**target)}#whatif"
    dashboard_url = ""
    if rec.evidence.get("dashboard"):
        dashboard_url = f"{urlsplit(str(rec.evidence['dashboard'])).path}?{scoped.query_string()}"
    return {
        "kind": rec.kind,
        "title": rec.title,
        "scope": ", ".join(f"{k} = {v}" for k, v in rec.scope.items()) or "the whole selection",
        "savings_usd": pusd_to_usd(rec.savings_pusd),
        "monthly_savings_usd": pusd_to_usd(answer.monthly_pusd(rec.savings_pusd)),
        "method": str(rec.evidence.get("method", "")),
        "monthly_method": str(rec.evidence.get("monthly_method", "")),
        "figures": _figure_words(rec.evidence),
        "whatif_url": whatif_url,
        "dashboard_url": dashboard_url,
    }


def _whatif_chart(result: WhatIfResult) -> dict[str, Any]:
    """Actual (solid) and what-if (dotted) cost per day for the biggest features, the rest summed."""
    order = list(dict.fromkeys(str(r["feature"]) or charts.BLANK for r in result.rows))
    shown = set(order[:CHART_FEATURES])
    xs: list[str] = []
    sums: dict[tuple[str, str], dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for row in result.rows:
        x = row["bucket"].isoformat()
        if x not in xs:
            xs.append(x)
        name = str(row["feature"]) or charts.BLANK
        name = name if name in shown else charts.OTHER
        sums[(name, "actual")][x] += row["actual_cost"]
        sums[(name, "what-if")][x] += row["whatif_cost"]
    traces = []
    for i, name in enumerate([*order[:CHART_FEATURES], charts.OTHER]):
        for kind, dash in (("actual", "solid"), ("what-if", "dot")):
            if (name, kind) not in sums:
                continue
            traces.append(
                {
                    "type": "scatter",
                    "mode": "lines+markers",
                    "marker": {"size": 5},
                    "name": f"{name} · {kind}",
                    "x": xs,
                    "y": [float(sums[(name, kind)].get(x, Decimal(0))) for x in xs],
                    "line": {"color": charts.PALETTE[i % len(charts.PALETTE)], "width": 2, "dash": dash},
                }
            )
    return charts.figure("Actual vs what-if per day, by feature", traces, yaxis={"tickprefix": "$"})


def _whatif_table(result: WhatIfResult) -> Table:
    by_feature: dict[str, dict[str, Any]] = {}
    for row in result.rows:
        acc = by_feature.setdefault(
            str(row["feature"]),
            {"feature": str(row["feature"]), "calls": 0, "actual_cost": Decimal(0), "whatif_cost": Decimal(0),
             "delta": Decimal(0), "unpriced_calls": 0},
        )  # fmt: skip
        for key in ("calls", "actual_cost", "whatif_cost", "delta", "unpriced_calls"):
            acc[key] += row[key]
    return Table("whatif", "What-if by feature", WHATIF_COLUMNS, list(by_feature.values()))


def savings(project_id: int, f: Filters, target: Target | None, page_url: str) -> PageData:
    """The page's figures: the advice's recommendations and notes, and the what-if when a target is named."""
    page = PageData()
    answer = advice(f.usage(project_id))
    recs = [_recommendation(answer, r, page_url, f) for r in answer.recommendations]
    page.tables.append(Table("recommendations", "Savings opportunities", RECOMMENDATION_COLUMNS, recs))
    page.extra.update(recommendations=recs, notes=answer.notes, has_data=True, whatif_error="", whatif_total=None)
    page.extra["monthly_total"] = pusd_to_usd(sum(answer.monthly_pusd(r.savings_pusd) for r in answer.recommendations))
    if target is None:
        return page
    try:
        result = whatif(f.usage(project_id, granularity="day", group_by=("feature",)), target)
    except QueryError as exc:
        page.extra["whatif_error"] = str(exc)
        return page
    page.extra["whatif_total"] = result.total.as_row()
    page.extra["whatif_method"] = result.method
    page.tables.append(_whatif_table(result))
    if result.rows:
        page.charts.append(("whatif", _whatif_chart(result)))
    return page


@project_page("detail")
def savings_view(ctx: ProjectContext) -> HttpResponse:
    f = page_filters(ctx)
    target, raw = target_from(ctx.request.GET)
    page_url = reverse("dashboards:savings", kwargs={"project_id": ctx.project.pk})
    hidden = [(k, v) for k, vs in f.params().items() for v in (vs if isinstance(vs, list) else [vs])]
    return render_filtered(
        ctx,
        "dashboards/savings.html",
        lambda: savings(ctx.project.pk, f, target, page_url),
        f,
        keep=raw,
        target=raw,
        tiers=TIERS,
        filter_hidden=hidden,
    )
