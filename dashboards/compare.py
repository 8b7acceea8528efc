"""Route version (or model) comparison: two variants side by side, with the deltas."""

from __future__ import annotations

import math
from typing import Any

from dashboards import charts
from dashboards.filters import Filters
from dashboards.tables import Column, PageData, Table, per_call
from ledger.queries import usage

DIMENSIONS = {"route_version": "Route version", "model": "Model", "route": "Route", "feature": "Feature"}
METRICS: tuple[tuple[str, str, str], ...] = (  # (key, label, kind); lower is better unless noted
    ("calls", "Calls", "int"),
    ("cost", "Cost", "money"),
    ("cost_per_call", "Cost per call", "money"),
    ("latency_p50", "Latency p50", "ms"),
    ("latency_p95", "Latency p95", "ms"),
    ("latency_p99", "Latency p99", "ms"),
    ("ttft_p50", "TTFT p50", "ms"),
    ("ttft_p95", "TTFT p95", "ms"),
    ("error_rate", "Error rate", "pct"),
    ("retry_rate", "Retry rate", "pct"),
    ("feedback_score", "Feedback score", "float"),
    ("feedback_count", "Feedback count", "int"),
)
HIGHER_IS_BETTER = {"feedback_score"}
NEUTRAL = {"calls", "cost", "feedback_count"}
MIN_CALLS = 30  # per side: below this a difference says little, and the page says so
SIGNIFICANCE = 0.05  # two-sided p-value below which a rate difference is called significant
# The rates tested, with the count metric behind each (successes out of calls).
TESTED_RATES = {"error_rate": "errors", "retry_rate": "retries"}
TEST_NAME = "two-proportion z-test (pooled, two-sided)"


def two_proportion_z(x1: int, n1: int, x2: int, n2: int) -> tuple[float, float] | None:
    """(z, two-sided p) of the difference between x1/n1 and x2/n2 under H0: equal proportions; None
    when it is undefined (no calls on a side, or no variation at all)."""
    if n1 <= 0 or n2 <= 0:
        return None
    pooled = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return None
    z = (x2 / n2 - x1 / n1) / se
    return z, math.erfc(abs(z) / math.sqrt(2))


def _significance(key: str, a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any] | None:
    count = TESTED_RATES.get(key)
    if count is None:
        return None
    result = two_proportion_z(int(a.get(count) or 0), int(a.get("calls") or 0), int(b.get(count) or 0),
                              int(b.get("calls") or 0))  # fmt: skip
    if result is None:
        return {"tested": False, "text": "not testable (no variation)"}
    z, p = result
    significant = p < SIGNIFICANCE
    return {
        "tested": True,
        "z": z,
        "p": p,
        "significant": significant,
        "text": f"{'significant' if significant else 'not significant'} (p = {p:.3f}, z = {z:+.2f})",
    }


def _delta(a: Any, b: Any) -> tuple[Any, float]:
    """(b − a, relative change) with NaN where it is not defined."""
    if a is None or b is None:
        return None, math.nan
    if isinstance(a, float) and (math.isnan(a) or (isinstance(b, float) and math.isnan(b))):
        return math.nan, math.nan
    diff = b - a
    rel = float(diff / a) if a else math.nan
    return diff, rel


def compare(project_id: int, f: Filters, dim: str, a: str, b: str) -> PageData:
    page = PageData()
    scoped = f.without(dim)  # the two variants are the filter on this dimension
    query_metrics = (*(m for m, _, _ in METRICS if m != "cost_per_call"), *TESTED_RATES.values())
    totals = usage(
        scoped.usage(
            project_id, granularity=None, group_by=(dim,), filters={dim: (a, b)}, metrics=query_metrics, limit=2
        )
    ).rows
    page.extra["has_data"] = bool(totals)
    if not totals:
        return page
    by_variant = {r[dim]: r for r in totals}
    rows = _comparison_rows(by_variant, a, b)
    page.extra["comparison"] = rows
    page.extra["test_name"] = TEST_NAME
    page.extra["min_calls"] = MIN_CALLS
    page.extra["too_few"] = [
        {"side": side, "value": value, "calls": int(by_variant.get(value, {}).get("calls") or 0)}
        for side, value in (("A", a), ("B", b))
        if int(by_variant.get(value, {}).get("calls") or 0) < MIN_CALLS
    ]
    page.tables.append(_comparison_table(rows, a, b))
    page.charts += _charts(project_id, scoped, dim, a, b)
    return page


def _comparison_rows(by_variant: dict[str, dict[str, Any]], a: str, b: str) -> list[dict[str, Any]]:
    """One row per metric: A, B, the delta, the relative change and whether B is better or worse."""
    for row in by_variant.values():
        row["cost_per_call"] = per_call(row["cost"], row["calls"])
    rows = []
    for key, label, kind in METRICS:
        va = by_variant.get(a, {}).get(key)
        vb = by_variant.get(b, {}).get(key)
        diff, rel = _delta(va, vb)
        verdict = ""
        if key not in NEUTRAL and not math.isnan(rel) and abs(rel) >= 0.02:
            better = (rel > 0) == (key in HIGHER_IS_BETTER)
            verdict = "better" if better else "worse"
        test = _significance(key, by_variant.get(a, {}), by_variant.get(b, {}))
        if test is not None and test["tested"] and not test["significant"]:
            verdict = ""  # a difference the test cannot tell from chance is not called better or worse
        rows.append(
            {"metric": label, "a": va, "b": vb, "delta": diff, "change": rel, "verdict": verdict, "kind": kind,
             "delta_kind": "pp" if kind == "pct" else kind, "test": test}
        )  # fmt: skip
    return rows


def _comparison_table(rows: list[dict[str, Any]], a: str, b: str) -> Table:
    columns = [
        Column("metric", "Metric"),
        Column("a", a, "raw"),
        Column("b", b, "raw"),
        Column("delta", "Delta (B − A)", "raw"),
        Column("change", "Change", "pct"),
    ]
    return Table("comparison", f"{a} vs {b}", columns, rows)


def _charts(project_id: int, scoped: Filters, dim: str, a: str, b: str) -> list[tuple[str, dict[str, Any]]]:
    """Cost per call and latency p95 of the two variants over time."""
    series = usage(
        scoped.usage(
            project_id,
            granularity=scoped.bucket,
            group_by=(dim,),
            filters={dim: (a, b)},
            metrics=("calls", "cost_per_call", "latency_p95", "error_rate"),
            limit=2,
        )
    ).rows
    for row in series:  # a bucket without calls has no cost per call: a gap, not $0
        if not row["calls"]:
            row["cost_per_call"] = None
    xs, cpc = charts.series_by_group(series, dim, "cost_per_call")
    _, lat = charts.series_by_group(series, dim, "latency_p95")
    return [
        ("cost-per-call", charts.lines("Cost per call", xs, cpc, "$", yaxis={"tickprefix": "$"})),
        ("latency", charts.lines("Latency p95", xs, lat, "ms")),
    ]
