"""The overview (finance) page: what was spent, on what, for whom, what was wasted and saved.

Every number comes from :func:`ledger.queries.usage`; the page's figures are built here and the
view only renders them. Money stays ``Decimal`` until the template formats it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from dashboards import charts
from dashboards.filters import Filters
from dashboards.tables import Column, PageData, Table, per_call, per_thousand, share, spend_columns, spend_row, usd
from ledger import forecast as forecasting
from ledger.focus import FocusQuery
from ledger.pricebook import load_price_book
from ledger.pricing import pusd_to_usd, tokens_cost_pusd
from ledger.queries import UsageQuery, UsageResult, usage
from ledger.usage_batches import usage_breakdowns

STACKS = {"feature": "Feature", "model": "Model", "customer_id": "Customer", "route_version": "Route version"}
TOP_GROUPS = 8
ZERO = Decimal(0)
TOTAL_METRICS = ("cost", "calls", "retry_cost", "cache_savings", "errors", "unpriced_calls")
NO_FORECAST = "no forecast until one full day of spend is known"
MODEL_METRICS = ("cost", "calls", "unpriced_calls", "cache_read_tokens", "cost_cache_read", "cache_savings")
BREAKDOWN_METRICS = (*MODEL_METRICS, "retry_cost", "retries")  # models, waste and features


def _sum(rows: list[dict[str, Any]], key: str) -> Any:
    return sum((r[key] for r in rows), start=ZERO if rows and isinstance(rows[0][key], Decimal) else 0)


@dataclass(frozen=True)
class MonthToDate:
    spent: Decimal
    forecast: Decimal | None  # None until one complete day is known
    period_start: datetime
    period_end: datetime
    run_rate: Decimal | None = None  # mean daily spend of the last 7 complete days
    method: str = ""  # how the forecast was made, in words (ledger.forecast.METHODS)


def _month_window(f: Filters, now: datetime) -> tuple[datetime, datetime, datetime, datetime]:
    """(history start, month start, next month start, end of today), local midnights of the filters' zone:
    the daily spend month_to_date needs is [history start, end of today)."""
    zone = f.zone
    today = now.astimezone(zone).date()
    start = datetime.combine(today.replace(day=1), time(), zone)
    history_from = min(today.replace(day=1), today - timedelta(days=forecasting.HISTORY_DAYS))
    return (
        datetime.combine(history_from, time(), zone),
        start,
        (start + timedelta(days=32)).replace(day=1),
        datetime.combine(today + timedelta(days=1), time(), zone),
    )


def month_to_date(
    project_id: int, f: Filters, now: datetime | None = None, daily: dict[date, Decimal] | None = None
) -> MonthToDate:
    """This calendar month's spend (in the filters' time zone) and its forecast to month end, by the
    same weekday-aware method as the budgets' forecast rules (ledger.forecast, docs/alerts.md).

    ``daily``: the local days' spend over these filters when the caller has already read every day
    of the window (the overview's chart, :func:`_chart_days`); otherwise it is read here."""
    zone = f.zone
    now = (now or datetime.now(UTC)).astimezone(zone)
    today = now.date()
    history_from, start, next_month, end_of_today = _month_window(f, now)
    if daily is None:
        rows = usage(
            UsageQuery(
                project_id=project_id,
                start=history_from.astimezone(UTC),
                end=end_of_today.astimezone(UTC),
                granularity="day",
                tz=f.tz,
                filters=dict(f.dims),
                metrics=("cost",),
            )
        ).rows
        daily = {r["bucket"].astimezone(zone).date(): r["cost"] for r in rows}
    spent = sum((v for d, v in daily.items() if d >= start.date()), start=ZERO)
    day_start = datetime.combine(today, time(), zone)
    elapsed = Decimal((now - day_start).total_seconds()) / Decimal((end_of_today - day_start).total_seconds())
    found = forecasting.forecast_detail(daily, start.date(), next_month.date(), today, elapsed)
    if found is None:
        return MonthToDate(spent, None, start, next_month, forecasting.run_rate(daily, today), NO_FORECAST)
    return MonthToDate(spent, found.total, start, next_month, found.run_rate, found.explanation)


def _stacked(project_id: int, f: Filters, stack: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The spend chart (top groups of ``stack`` and "(other)") and the range's totals per bucket,
    both from one statement: the groups, the rest folded in, add up to the totals."""
    grouped = usage(
        f.usage(
            project_id,
            granularity=f.bucket,
            group_by=(stack,),
            metrics=TOTAL_METRICS,
            limit=TOP_GROUPS,
            other=charts.OTHER,
        )
    )
    xs, series = charts.series_by_group(grouped.rows, stack, "cost")
    totals: dict[str, dict[str, Any]] = {}
    for row in grouped.rows:
        bucket = totals.setdefault(
            charts._x(row["bucket"]), {"bucket": row["bucket"], **dict.fromkeys(TOTAL_METRICS, 0)}
        )
        for metric in TOTAL_METRICS:
            bucket[metric] += row[metric]
    figure = charts.stacked_bars(f"Spend per {f.bucket} by {STACKS[stack].lower()}", xs, series)
    return figure, list(totals.values())


def _chart_days(f: Filters, now: datetime, totals: list[dict[str, Any]]) -> dict[date, Decimal] | None:
    """The month-to-date window's daily spend taken from the chart's daily totals, when the chart
    has every day of it (daily buckets over a range that covers it); else None (read it apart)."""
    history_from, _, _, end_of_today = _month_window(f, now)
    if f.bucket != "day" or f.start > history_from or f.end < end_of_today:
        return None
    zone = f.zone
    first, last = history_from.date(), end_of_today.date()
    days = {row["bucket"].astimezone(zone).date(): row["cost"] for row in totals}
    return {day: cost for day, cost in days.items() if first <= day < last}


def overview(
    project_id: int,
    f: Filters,
    stack: str = "feature",
    customers: bool = True,
    only: str | None = None,
    now: datetime | None = None,
) -> PageData:
    """The overview's figures; ``customers=False`` leaves out everything per customer; ``only``: just
    that table (a CSV export), with the range's total spend its shares need and nothing else."""
    if only is not None:
        return _one_table(project_id, f, customers, only)
    page = PageData()
    spend_chart, totals = _stacked(project_id, f, stack)
    cost, calls = _sum(totals, "cost"), _sum(totals, "calls")
    page.extra["has_data"] = calls > 0
    if not calls:
        return page
    now = now or datetime.now(UTC)
    mtd = month_to_date(project_id, f, now, _chart_days(f, now, totals))
    page.extra["mtd"] = mtd
    page.charts.append(("spend", spend_chart))
    # Models, waste and top features: one statement, each part over the smallest rollup with its dimensions.
    models_result, waste_result, features_result = usage_breakdowns(
        f.usage(project_id, granularity=None, metrics=BREAKDOWN_METRICS),
        [(("provider", "model"), 500), (("traffic", "status"), 100), (("feature",), 50)],
    )
    models = models_result.rows
    waste, wasted = _waste(waste_result.rows, cost)
    savings, saved = _savings(project_id, models, cost)
    page.tables.append(_top_table(features_result, cost, "features", "Top features", "feature", "Feature"))
    if customers:
        page.tables.append(_top(project_id, f, cost, "customers", "Top customers", "customer_id", "Customer", limit=25))
    page.tables += [waste, savings, _models_table(models, cost)]
    page.extra["unpriced"] = [r for r in models if r["unpriced_calls"]]
    page.kpis = _kpis(cost, calls, mtd, wasted, saved)
    return page


def _one_table(project_id: int, f: Filters, customers: bool, name: str) -> PageData:
    """One of the overview's tables exactly as the page builds it, read without the rest of the page."""
    total = usage(f.usage(project_id, granularity=None, metrics=("cost", "calls"))).rows[0]
    cost = total["cost"]
    if not total["calls"]:  # as the page: a range without calls has no tables
        return PageData()
    if name == "customers":
        if not customers:
            return PageData()
        return PageData(tables=[_top(project_id, f, cost, name, "Top customers", "customer_id", "Customer", limit=25)])
    if name not in ("features", "waste", "savings", "models"):
        return PageData()
    models_result, waste_result, features_result = usage_breakdowns(
        f.usage(project_id, granularity=None, metrics=BREAKDOWN_METRICS),
        [(("provider", "model"), 500), (("traffic", "status"), 100), (("feature",), 50)],
    )
    tables = {
        "features": lambda: _top_table(features_result, cost, "features", "Top features", "feature", "Feature"),
        "waste": lambda: _waste(waste_result.rows, cost)[0],
        "savings": lambda: _savings(project_id, models_result.rows, cost)[0],
        "models": lambda: _models_table(models_result.rows, cost),
    }
    return PageData(tables=[tables[name]()])


def _top(project_id: int, f: Filters, cost: Decimal, name: str, title: str, dim: str, label: str, limit: int) -> Table:
    """The biggest spenders along one dimension, with their share of the range's spend."""
    result = usage(f.usage(project_id, granularity=None, group_by=(dim,), metrics=("cost", "calls"), limit=limit))
    return _top_table(result, cost, name, title, dim, label)


def _top_table(result: UsageResult, cost: Decimal, name: str, title: str, dim: str, label: str) -> Table:
    return Table(
        name,
        title,
        [Column(dim, label), *spend_columns()],
        [spend_row({dim: r[dim], "calls": r["calls"], "cost": r["cost"]}, cost) for r in result.rows],
        note="Only the top rows are shown; export for the same rows." if result.truncated else "",
    )


def _waste(rows: list[dict[str, Any]], cost: Decimal) -> tuple[Table, Decimal]:
    """Spend that bought nothing for users, and its total, from the spend by traffic and status.
    Each call counts once: eval/shadow traffic and failed calls in full; for live calls that
    succeeded, what their retries cost."""
    shadow = sum((r["cost"] for r in rows if r["traffic"] != "live"), start=ZERO)
    failed = sum((r["cost"] for r in rows if r["traffic"] == "live" and r["status"] != "ok"), start=ZERO)
    retried = sum((r["retry_cost"] for r in rows if r["traffic"] == "live" and r["status"] == "ok"), start=ZERO)
    waste = shadow + failed + retried
    table = Table(
        "waste",
        "Waste",
        [Column("kind", "Kind"), Column("cost", "Cost", "money"), Column("share", "Share of spend", "pct")],
        [
            {"kind": "Retries of successful live calls", "cost": retried, "share": share(retried, cost)},
            {"kind": "Eval and shadow traffic", "cost": shadow, "share": share(shadow, cost)},
            {"kind": "Failed live calls (error, timeout, cancelled)", "cost": failed, "share": share(failed, cost)},
            {"kind": "Total", "cost": waste, "share": share(waste, cost)},
        ],
        note=(
            "Each call is counted once: eval/shadow traffic and failed live calls in full; a live call"
            " that succeeded counts only when it was a retry (attempt > 1), as the record contract defines."
        ),
    )
    return table, waste


def _provider_cache_savings(project_id: int, models: list[dict[str, Any]]) -> Decimal:
    """What provider prompt caching saved: cache reads valued at each model's current input price."""
    books = load_price_book(project_id)
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    saved = ZERO
    for row in models:
        if not row["cache_read_tokens"]:
            continue
        price = books.price(row["provider"], row["model"], "default", now_ms)
        if price is not None:
            full = pusd_to_usd(tokens_cost_pusd(row["cache_read_tokens"], price.rates_for(0).input))
            saved += max(ZERO, full - row["cost_cache_read"])
    return saved


def _savings(project_id: int, models: list[dict[str, Any]], cost: Decimal) -> tuple[Table, Decimal]:
    """The app's own cache (calls that never reached a provider) and provider prompt caching, and their sum."""
    app_cache = _sum(models, "cache_savings") if models else ZERO
    provider_cache = _provider_cache_savings(project_id, models)
    table = Table(
        "savings",
        "Savings",
        [Column("kind", "Kind"), Column("saved", "Saved", "money"), Column("share", "Against spend", "pct")],
        [
            {"kind": "App cache hits (no provider call)", "saved": app_cache, "share": share(app_cache, cost)},
            {
                "kind": "Provider prompt-cache reads (at today's input price)",
                "saved": provider_cache,
                "share": share(provider_cache, cost),
            },
        ],
    )
    return table, app_cache + provider_cache


def _models_table(models: list[dict[str, Any]], cost: Decimal) -> Table:
    return Table(
        "models",
        "Spend by model",
        [
            Column("provider", "Provider"),
            Column("model", "Model"),
            Column("calls", "Calls", "int"),
            Column("cost", "Cost", "money"),
            Column("cost_per_call", "Per call", "money"),
            Column("unpriced_calls", "Unpriced calls", "int"),
            Column("share", "Share of spend", "pct"),
        ],
        [
            {
                **{k: r[k] for k in ("provider", "model", "calls", "cost", "unpriced_calls")},
                "cost_per_call": per_call(r["cost"], r["calls"]),
                "share": share(r["cost"], cost),
            }
            for r in models
        ],
    )


def _kpis(cost: Decimal, calls: int, mtd: MonthToDate, waste: Decimal, saved: Decimal) -> list[dict[str, Any]]:
    forecast = (
        f"forecast {usd(mtd.forecast)} by {mtd.period_end:%b %d}"
        + (f" · 7-day run-rate {usd(mtd.run_rate)}/day" if mtd.run_rate is not None else "")
        if mtd.forecast is not None
        else NO_FORECAST
    )
    return [
        {"label": "Spend in range", "value": cost, "kind": "money", "sub": f"{calls:,} calls"},
        {"label": "Per 1,000 calls", "value": per_thousand(cost, calls), "kind": "money", "sub": "average"},
        {"label": "Month to date", "value": mtd.spent, "kind": "money", "sub": forecast, "note": mtd.method},
        {"label": "Waste", "value": waste, "kind": "money", "sub": _pct(share(waste, cost)) + " of spend"},
        {"label": "Saved by caching", "value": saved, "kind": "money", "sub": "app + provider"},
    ]


def _pct(value: float) -> str:
    return "–" if math.isnan(value) else f"{value * 100:.1f} %"


def focus_query(project_id: int, f: Filters, customers: bool = True) -> FocusQuery:
    """The FOCUS export of the page's range and filters (the overview's "Download FOCUS" button);
    ``customers=False`` leaves customer ids out, as the page does for roles without detail."""
    return FocusQuery(project_id, f.start, f.end, dict(f.dims), customers=customers)
