"""The calls pages: the calls log, one call, and the calls of one trace, session or request.

The log reads :func:`ledger.calls_log.calls_log` (newest first, ``?after=`` cursor pages, ``?q=``
search) over the shared filters; ``?order=cost|latency|ttft|tokens`` shows the 50 highest instead,
as views of the same log. One call's page lays its record out in words; the group pages total a
trace's or session's calls and show the attempts of each request together.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from django.http import Http404, HttpResponse
from django.urls import reverse

from dashboards.tables import Column, PageData, Table, column_format, number
from dashboards.views import page_filters, render_filtered
from ledger.calls_log import MAX_QUERY, SEARCHED, CallGroup, LogQuery, call_group, calls_log
from ledger.explore import CALL_ORDERS, CallsQuery, call_detail, top_calls
from ledger.queries import QueryError
from web.frame import ProjectContext, project_page, render_page

ORDERS = {"time": "newest first", **{o: f"highest {o}" for o in CALL_ORDERS}}
PAGE_SIZE = 50
CALL_COLUMNS = [
    Column("event_id", "Event"),
    Column("timestamp", "When"),
    Column("provider", "Provider"),
    Column("model", "Model"),
    Column("feature", "Feature"),
    Column("customer_id", "Customer"),
    Column("route_version", "Route version"),
    Column("route", "Route"),
    Column("status", "Status"),
    Column("attempt", "Attempt", "int"),
    Column("traffic", "Traffic"),
    Column("cache_hit", "Cache hit"),
    Column("input_tokens", "Input", "int"),
    Column("cache_read_tokens", "Cache read", "int"),
    Column("output_tokens", "Output", "int"),
    Column("reasoning_tokens", "Reasoning", "int"),
    Column("ttft_ms", "TTFT", "ms"),
    Column("latency_ms", "Latency", "ms"),
    Column("cost_usd", "Cost", "money"),
    Column("trace_id", "Trace"),
    Column("session_id", "Session"),
    Column("request_id", "Request"),
]


def _url(ctx: ProjectContext, name: str, key: str, query: str = "") -> str:
    """A drill-down address (reverse quotes what an id may hold: '#', '?', spaces)."""
    return reverse(f"dashboards:{name}", kwargs={"project_id": ctx.project.pk, "key": key}) + (
        f"?{query}" if query else ""
    )


def call_links(ctx: ProjectContext, call: dict[str, Any]) -> dict[str, str]:
    """Where one call's identifiers lead: the call itself, its trace, session, request and customer."""
    links = {"call": _url(ctx, "call", call["event_id"])}
    for kind, column in (("trace", "trace_id"), ("session", "session_id"), ("request", "request_id")):
        if call.get(column):
            links[kind] = _url(ctx, kind, call[column])
    if call.get("customer_id") and ctx.can_detail:
        links["customer"] = reverse(
            "dashboards:customer", kwargs={"project_id": ctx.project.pk, "customer": call["customer_id"]}
        )
    return links


@project_page("detail")
def calls_view(ctx: ProjectContext) -> HttpResponse:
    f = page_filters(ctx)
    get = ctx.request.GET
    order = get.get("order", "time") if get.get("order", "time") in ORDERS else "time"
    search = get.get("q", "").strip()
    after = get.get("after", "").strip() if order == "time" else ""
    keep = {"order": order if order != "time" else "", "q": search}
    query = f.query_string(**{k: v or None for k, v in keep.items()})
    views = [
        (o, label, f.query_string(order=None if o == "time" else o, q=search or None)) for o, label in ORDERS.items()
    ]

    def build() -> PageData:
        next_query = ""
        if order == "time":
            page = calls_log(LogQuery(ctx.project.pk, f.start, f.end, dict(f.dims), search, after, PAGE_SIZE))
            rows = page.calls
            if page.next_cursor:
                next_query = f"{query}&{urlencode({'after': page.next_cursor})}"
        else:
            q = CallsQuery(ctx.project.pk, f.start, f.end, dict(f.dims), order_by=order, limit=PAGE_SIZE)
            rows = top_calls(q) if not search else _searched_top(ctx, f, search, order)
        _format_columns(ctx, rows)
        extra = {"calls": rows, "next_query": next_query, "has_data": bool(rows)}
        return PageData(tables=[Table("calls", "Calls", CALL_COLUMNS, rows)], extra=extra)

    hidden = [(k, v) for k, values in f.params(order=keep["order"] or None).items() for v in _listed(values)]
    return render_filtered(
        ctx,
        "dashboards/calls.html",
        build,
        f,
        keep=keep,
        order=order,
        orders=views,
        search=search,
        searched=", ".join(SEARCHED),
        max_query=MAX_QUERY,
        after=after,
        newest_query=query,
        zone=f.tz,
        search_hidden=hidden,
        clear_search_query=f.query_string(order=keep["order"] or None),
    )


def _format_columns(ctx: ProjectContext, rows: list[dict[str, Any]]) -> None:
    """Each row's links, and its cost and latency in one format per column (see tables.column_format)."""
    cost = column_format("money", [r["cost_usd"] for r in rows])
    latency = column_format("ms", [r["latency_ms"] for r in rows])
    for row in rows:
        row["links"] = call_links(ctx, row)
        row["cost_text"], row["latency_text"] = cost(row["cost_usd"]), latency(row["latency_ms"])


def _listed(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def _searched_top(ctx: ProjectContext, f: Any, search: str, order: str) -> list[dict[str, Any]]:
    """The highest-ranking calls among those matching ``search``: the matches, ranked here (a search
    matches few calls, or one customer's, which the log reads newest first)."""
    page = calls_log(LogQuery(ctx.project.pk, f.start, f.end, dict(f.dims), search, "", 500))
    key = {"cost": "cost_usd", "latency": "latency_ms", "ttft": "ttft_ms"}.get(order)

    def rank(c: dict[str, Any]) -> Any:
        if key is None:
            return c["input_tokens"] + c["output_tokens"]
        return c[key] if c[key] is not None else -1

    return sorted(page.calls, key=rank, reverse=True)[:PAGE_SIZE]


# -- one call ---------------------------------------------------------------------------------------

YES_NO = {True: "yes", False: "no"}


def _when(value: datetime, zone: str) -> str:
    """A timestamp with milliseconds and its zone: 2026-11-20 09:00:00.123 UTC."""
    local = value.astimezone(ZoneInfo(zone))
    text = local.strftime("%Y-%m-%d %H:%M:%S.") + f"{local.microsecond // 1000:03d}"
    return f"{text} {zone}" if zone == "UTC" else f"{text} {local.strftime('%Z')} ({zone})"


def _fields(ctx: ProjectContext, r: dict[str, Any], zone: str) -> list[dict[str, Any]]:
    """The record in sections of (label, text, link) rows: words, not Python values."""
    links = call_links(ctx, r)
    calls_url = reverse("dashboards:calls", kwargs={"project_id": ctx.project.pk})

    def dim(name: str) -> str:
        return f"{calls_url}?{urlencode({name: r[name]})}" if r.get(name) else ""

    def text(value: Any, kind: str = "text") -> str:
        if isinstance(value, bool):
            return YES_NO[value]
        if value is None or value == "":
            return "(none)"
        return number(value, kind)

    ms = "ms"
    tokens_uncached = r["input_tokens"] - r["cache_read_tokens"] - r["cache_write_tokens"]
    sections = [
        (
            "When and where",
            [
                ("timestamp", "Started", _when(r["timestamp"], zone), ""),
                ("received_at", "Received", _when(r["received_at"], zone), ""),
                ("trace_id", "Trace", text(r["trace_id"]), links.get("trace", "")),
                ("session_id", "Session", text(r["session_id"]), links.get("session", "")),
                ("request_id", "Request", text(r["request_id"]), links.get("request", "")),
            ],
        ),
        (
            "Who and what for",
            [
                ("customer_id", "Customer", text(r["customer_id"]), links.get("customer", "")),
                ("user_id", "User", text(r["user_id"]), ""),
                ("feature", "Feature", text(r["feature"]), dim("feature")),
                ("environment", "Environment", text(r["environment"]), dim("environment")),
                ("traffic", "Traffic", text(r["traffic"]), dim("traffic")),
            ],
        ),
        (
            "Model and route",
            [
                ("provider", "Provider", text(r["provider"]), dim("provider")),
                ("model", "Model", text(r["model"]), dim("model")),
                ("response_model", "Model that answered", text(r["response_model"]), ""),
                ("route_version", "Route version", text(r["route_version"]), dim("route_version")),
                ("route", "Route", text(r["route"]), dim("route")),
                ("service_tier", "Service tier", text(r["service_tier"]), ""),
            ],
        ),
        (
            "Outcome",
            [
                ("status", "Status", text(r["status"]) + (f" ({r['error_type']})" if r["error_type"] else ""), ""),
                ("attempt", "Attempt", f"{r['attempt']}" + (" (a retry)" if r["attempt"] > 1 else " (first)"), ""),
                ("finish_reason", "Why it ended", text(r.get("finish_reason", "")), ""),
                ("ttft_ms", "Time to first token", text(r["ttft_ms"], ms), ""),
                ("latency_ms", "Latency", text(r["latency_ms"], ms), ""),
                ("streamed", "Streamed", text(r["streamed"]), ""),
                ("cache_hit", "Served from the app's cache", text(r["cache_hit"]), ""),
                ("tool_calls", "Tool calls", text(r["tool_calls"], "int"), ""),
                ("max_tokens", "Max tokens", text(r["max_tokens"], "int"), ""),
            ],
        ),
        (
            "Tokens",
            [
                ("input_tokens", "Input (total)", text(r["input_tokens"], "int"), ""),
                ("uncached_input_tokens", "… uncached", text(tokens_uncached, "int"), ""),
                ("cache_read_tokens", "… read from the provider's cache", text(r["cache_read_tokens"], "int"), ""),
                ("cache_write_tokens", "… written to the provider's cache", text(r["cache_write_tokens"], "int"), ""),
                ("output_tokens", "Output (total)", text(r["output_tokens"], "int"), ""),
                ("reasoning_tokens", "… reasoning", text(r["reasoning_tokens"], "int"), ""),
                (
                    "prompt_prefix_tokens",
                    "Stable prompt prefix",
                    text(r.get("prompt_prefix_tokens") or None, "int"),
                    "",
                ),
            ],
        ),
        (
            "Cost",
            [
                ("cost_usd", "Cost", _money(r["cost_usd"]), ""),
                ("cost_input_usd", "… uncached input", _money(r["cost_input_usd"]), ""),
                ("cost_cache_read_usd", "… cache reads", _money(r["cost_cache_read_usd"]), ""),
                ("cost_cache_write_usd", "… cache writes", _money(r["cost_cache_write_usd"]), ""),
                ("cost_output_usd", "… output", _money(r["cost_output_usd"]), ""),
                ("cost_reasoning_usd", "… reasoning", _money(r["cost_reasoning_usd"]), ""),
                ("cache_saving_usd", "Saved by the app's cache", _money(r["cache_saving_usd"]), ""),
                ("cost_source", "Priced from", PRICE_SOURCES.get(str(r["cost_source"]), str(r["cost_source"])), ""),
                ("price_ref", "Price reference", text(r["price_ref"]), ""),
            ],
        ),
    ]
    return [
        {"title": t, "rows": [{"field": n, "label": a, "text": b, "href": c} for n, a, b, c in rows]}
        for t, rows in sections
    ]


PRICE_SOURCES = {
    "catalogue": "the price catalogue",
    "override": "a project price override",
    "reported": "the cost the provider reported",
    "unpriced": "no price known (counted as $0)",
}


def _money(value: Decimal) -> str:
    """Exact enough to add up: cents from a dollar, else every significant place (to the pico-dollar)."""
    if value == 0 or abs(value) >= 1:
        return number(value, "money")
    return f"${value.normalize():f}" if value > 0 else f"-${(-value).normalize():f}"


@project_page("detail")
def call_view(ctx: ProjectContext, key: str) -> HttpResponse:
    f = page_filters(ctx)
    try:
        record = call_detail(ctx.project.pk, key)
    except QueryError as exc:
        raise Http404(str(exc)) from exc
    if record is None:
        raise Http404("no such call in this project")
    tags = sorted((str(k), str(v)) for k, v in dict(record.get("tags") or {}).items())
    return render_page(
        ctx,
        "dashboards/call.html",
        {
            "event_id": key,
            "call": record,
            "sections": _fields(ctx, record, f.tz),
            "tags": tags,
            "zone": f.tz,
        },
    )


# -- a trace, a session, a request ------------------------------------------------------------------

GROUP_TITLES = {"trace": "Trace", "session": "Session", "request": "Request"}


def _group_view(ctx: ProjectContext, kind: str, key: str) -> HttpResponse:
    f = page_filters(ctx)
    try:
        group: CallGroup = call_group(ctx.project.pk, kind, key)
    except QueryError as exc:
        raise Http404(str(exc)) from exc
    if not group.calls:
        raise Http404(f"no calls with this {kind} id in this project")
    requests = group.requests()
    _format_columns(ctx, group.calls)
    for request in requests:
        for i, c in enumerate(request["attempts"]):
            c["superseded"] = i < len(request["attempts"]) - 1  # a later attempt of the same request followed
    totals = group.totals
    kpis = [
        {"label": "Calls", "value": totals["calls"], "kind": "int", "sub": f"{len(requests)} requests"},
        {"label": "Total cost", "value": totals["cost"], "kind": "money",
         "sub": f"{number(sum((r['wasted'] for r in requests), Decimal(0)), 'money')} on attempts retried"},
        {"label": "Tokens", "value": totals["tokens"], "kind": "int",
         "sub": f"{number(totals['input_tokens'], 'int')} in · {number(totals['output_tokens'], 'int')} out"},
        {"label": "Time in calls", "value": totals["latency_ms"], "kind": "ms",
         "sub": f"{number(totals['wall_ms'], 'ms')} first start to last end"},
        {"label": "Retries", "value": totals["retries"], "kind": "int", "sub": f"{totals['errors']} failed calls"},
    ]  # fmt: skip
    return render_page(
        ctx,
        "dashboards/call_group.html",
        {
            "kind": kind,
            "title": GROUP_TITLES[kind],
            "key": key,
            "kpis": kpis,
            "requests": requests,
            "truncated": group.truncated,
            "zone": f.tz,
            "started": _when(totals["started"], f.tz) if totals["started"] else "",
        },
    )


@project_page("detail")
def trace_view(ctx: ProjectContext, key: str) -> HttpResponse:
    return _group_view(ctx, "trace", key)


@project_page("detail")
def session_view(ctx: ProjectContext, key: str) -> HttpResponse:
    return _group_view(ctx, "session", key)


@project_page("detail")
def request_view(ctx: ProjectContext, key: str) -> HttpResponse:
    return _group_view(ctx, "request", key)
