"""The Capacity page (engineers and admins): each model's (or pool's) peaks against its rate limits.

Per model, from :func:`ledger.capacity.capacity` over the page's range and filters: the daily peak
TPM and RPM against the limit line, the headroom, the forecast date and the 429s; for the model
chosen (``?subject=provider/model``, else the one closest to its limit) the minute-level curve of
its peak day and the route mix (features and route versions) of its peak minute.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from django.http import HttpResponse

from dashboards import charts
from dashboards.filters import Filters
from dashboards.tables import Column, PageData, Table
from dashboards.views import page_filters, render_filtered
from ledger.capacity import FILTERS, Capacity, CapacityError, CapacityQuery, capacity
from ledger.capacity_minutes import minute_curve, route_mix
from ledger.queries import QueryError
from web.frame import ProjectContext, project_page

MODEL_COLUMNS = [
    Column("subject", "Provider / model"),
    Column("peak_tpm", "Peak TPM", "int"),
    Column("limit_tpm", "TPM limit", "int"),
    Column("peak_rpm", "Peak RPM", "int"),
    Column("limit_rpm", "RPM limit", "int"),
    Column("p99_tpm", "p99 TPM", "int"),
    Column("peak_uncached_itpm", "Peak uncached ITPM", "int"),
    Column("limit_itpm", "ITPM limit", "int"),
    Column("peak_otpm", "Peak OTPM", "int"),
    Column("limit_otpm", "OTPM limit", "int"),
    Column("limit_source", "Limits"),
    Column("headroom", "Headroom"),
    Column("weekly_growth", "Growth / week"),
    Column("limit_reached_on", "Limit reached on"),
    Column("rate_limited_calls", "429s", "int"),
]
MIX_COLUMNS = [
    Column("feature", "Feature"),
    Column("route_version", "Route version"),
    Column("calls", "Calls", "int"),
    Column("tokens", "Tokens", "int"),
]
CHART_MODELS = 6  # the models closest to their limits get a daily chart each


def _pct(value: Any) -> str:
    return "–" if value is None else f"{value * 100:.1f} %"


def _row(c: Capacity) -> dict[str, Any]:
    body = c.as_json()
    return {
        **{k: body[k] for k in body if k not in ("forecast", "headroom")},
        "subject": f"{c.provider}/{c.model}",
        "limit_source": c.limit_source or "none known",
        "headroom": _pct(c.headroom),
        "weekly_growth": _pct(c.forecast.weekly_growth),
        "limit_reached_on": c.forecast.limit_reached_on.isoformat() if c.forecast.limit_reached_on else "–",
    }


def _closeness(c: Capacity) -> tuple[int, Any, int]:
    """Closest to its limit first (least headroom), then models without a limit by peak TPM."""
    return (0, c.headroom, 0) if c.headroom is not None else (1, 0, -c.peaks["tpm"])


def _daily_chart(c: Capacity) -> dict[str, Any]:
    days = sorted(c.daily["tpm"])
    xs = [d.isoformat() for d in days]
    traces: list[dict[str, Any]] = [
        {"type": "bar", "name": "peak TPM", "x": xs, "y": [c.daily["tpm"][d] for d in days],
         "marker": {"color": charts.PALETTE[0]}},
        {"type": "scatter", "mode": "lines+markers", "name": "peak RPM", "x": xs,
         "y": [c.daily["rpm"][d] for d in days], "yaxis": "y2", "line": {"color": charts.PALETTE[1]}},
    ]  # fmt: skip
    for name, axis, color in (("tpm", "y", charts.PALETTE[3]), ("rpm", "y2", charts.PALETTE[4])):
        if c.limits[name]:
            traces.append(
                {"type": "scatter", "mode": "lines", "name": f"{name.upper()} limit", "x": xs,
                 "y": [c.limits[name]] * len(xs), "yaxis": axis, "line": {"color": color, "dash": "dash"}}
            )  # fmt: skip
    return charts.figure(
        f"{c.provider}/{c.model}: daily peak minute",
        traces,
        yaxis={"title": {"text": "tokens / minute"}},
        yaxis2={"title": {"text": "requests / minute"}, "overlaying": "y", "side": "right", "rangemode": "tozero"},
    )


def _curve_chart(c: Capacity, day: date, curve: list[Any]) -> dict[str, Any]:
    traces: list[dict[str, Any]] = [
        {"type": "scatter", "mode": "lines", "name": "TPM", "x": [m.isoformat() for m, _, _ in curve],
         "y": [t for _, t, _ in curve], "line": {"color": charts.PALETTE[0], "width": 1}},
    ]  # fmt: skip
    if c.limits["tpm"] and curve:
        ends = [curve[0][0].isoformat(), curve[-1][0].isoformat()]
        traces.append(
            {"type": "scatter", "mode": "lines", "name": "TPM limit", "x": ends, "y": [c.limits["tpm"]] * 2,
             "line": {"color": charts.PALETTE[3], "dash": "dash"}}
        )  # fmt: skip
    return charts.figure(f"{c.provider}/{c.model}: minute by minute on its peak day, {day.isoformat()} (UTC)", traces)


def capacity_page(project_id: int, f: Filters, subject: str) -> PageData:
    filters = {d: v for d, v in f.dims.items() if d in FILTERS}
    try:
        rows = capacity(CapacityQuery(project_id, f.start, f.end, filters))
    except CapacityError as exc:
        raise QueryError(str(exc)) from None
    rows.sort(key=_closeness)
    data = PageData(
        tables=[
            Table("models", "Models and pools, closest to their limits first", MODEL_COLUMNS, [_row(c) for c in rows])
        ],
        extra={"has_data": bool(rows), "subjects": [f"{c.provider}/{c.model}" for c in rows]},
    )
    for i, c in enumerate(rows[:CHART_MODELS]):
        data.charts.append((f"daily-{i}", _daily_chart(c)))
    chosen = next((c for c in rows if f"{c.provider}/{c.model}" == subject), rows[0] if rows else None)
    if chosen is not None:
        day = chosen.peak_minute.date()
        data.charts.insert(
            0,
            (
                "peak-day",
                _curve_chart(chosen, day, minute_curve(project_id, chosen.provider, chosen.models, day, filters)),
            ),
        )
        mix = route_mix(project_id, chosen.provider, chosen.models, chosen.peak_minute, filters)
        minute = chosen.peak_minute.isoformat().replace("+00:00", "Z")
        data.tables.append(Table("route_mix", f"Route mix of the peak minute, {minute}", MIX_COLUMNS, mix))
        data.extra.update(chosen=_row(chosen), chosen_subject=f"{chosen.provider}/{chosen.model}")
        data.kpis = [
            {"key": "peak-tpm", "label": "Peak TPM", "value": chosen.peaks["tpm"], "kind": "int"},
            {"key": "headroom", "label": "Headroom", "value": _pct(chosen.headroom), "kind": "text"},
            {"key": "limit-reached", "label": "Limit reached on",
             "value": _row(chosen)["limit_reached_on"], "kind": "text"},
            {"key": "rate-limited", "label": "429s", "value": chosen.rate_limited_calls, "kind": "int"},
        ]  # fmt: skip
    return data


@project_page("engineer")
def capacity_view(ctx: ProjectContext) -> HttpResponse:
    f = page_filters(ctx)
    subject = ctx.request.GET.get("subject", "")[:500]
    return render_filtered(
        ctx,
        "dashboards/capacity.html",
        lambda: capacity_page(ctx.project.pk, f, subject),
        f,
        keep={"subject": subject},
    )
