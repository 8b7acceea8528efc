"""Customer pages: who costs what, and one customer's spend by feature and model over time."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from dashboards import charts
from dashboards.filters import Filters
from dashboards.tables import Column, PageData, Table, number, per_call, share, spend_columns, spend_row, usd
from ledger.queries import usage

ZERO = Decimal(0)


def _totals(rows: list[dict[str, Any]]) -> tuple[Decimal, int]:
    return sum((r["cost"] for r in rows), start=ZERO), sum(r["calls"] for r in rows)


def _versus(value: Decimal | None, average: Decimal | None) -> float | None:
    """How far a per-call cost is above (+) or below (−) the average, as a fraction."""
    return float(value / average - 1) if value is not None and average else None


def customer_list(project_id: int, f: Filters, limit: int = 200) -> PageData:
    page = PageData()
    scoped = f.without("customer_id")
    project = usage(scoped.usage(project_id, granularity=None, metrics=("cost", "calls"))).rows
    cost, calls = _totals(project)
    page.extra["has_data"] = calls > 0
    if not calls:
        return page
    result = usage(
        scoped.usage(project_id, granularity=None, group_by=("customer_id",), metrics=("cost", "calls"), limit=limit)
    )
    average = per_call(cost, calls)
    page.tables.append(
        Table(
            "customers",
            f"Customers by spend (top {limit})" if result.truncated else "Customers by spend",
            [
                Column("customer_id", "Customer"),
                Column("calls", "Calls", "int"),
                Column("cost", "Cost", "money"),
                Column("cost_per_call", "Per call", "money"),
                Column("vs_average", "Per call vs average", "pct"),
                Column("share", "Share of spend", "pct"),
            ],
            [
                {
                    "customer_id": r["customer_id"],
                    "calls": r["calls"],
                    "cost": r["cost"],
                    "cost_per_call": per_call(r["cost"], r["calls"]),
                    "vs_average": _versus(per_call(r["cost"], r["calls"]), average),
                    "share": share(r["cost"], cost),
                }
                for r in result.rows
            ],
        )
    )
    page.kpis = [
        {"label": "Spend", "value": cost, "kind": "money", "sub": f"{calls:,} calls"},
        {"label": "Average per call", "value": average, "kind": "money", "sub": "all customers"},
    ]
    return page


def customer_detail(project_id: int, f: Filters, customer: str) -> PageData:
    page = PageData()
    scoped = f.without("customer_id")
    mine = {"customer_id": (customer,)}
    by_feature_model = usage(
        scoped.usage(
            project_id,
            granularity=None,
            group_by=("feature", "model"),
            filters=mine,
            metrics=("cost", "calls"),
            limit=200,
        )
    ).rows
    cost, calls = _totals(by_feature_model)
    page.extra["has_data"] = calls > 0
    if not calls:
        return page
    project = usage(scoped.usage(project_id, granularity=None, metrics=("cost", "calls"))).rows
    p_cost, p_calls = _totals(project)
    over_time = usage(
        scoped.usage(project_id, granularity=f.bucket, group_by=("feature",), filters=mine, metrics=("cost",), limit=12)
    ).rows
    xs, series = charts.series_by_group(over_time, "feature", "cost")
    page.charts.append(("spend", charts.stacked_bars(f"{customer}: spend per {f.bucket} by feature", xs, series)))
    page.tables.append(
        Table(
            "features",
            "By feature and model",
            [Column("feature", "Feature"), Column("model", "Model"), *spend_columns("Share of this customer")],
            [spend_row(r, cost) for r in by_feature_model],
        )
    )
    page.kpis = _customer_kpis(cost, calls, p_cost, p_calls)
    return page


def _customer_kpis(cost: Decimal, calls: int, p_cost: Decimal, p_calls: int) -> list[dict[str, Any]]:
    """One customer's spend, calls and per-call cost against the whole project's (``p_…``)."""
    mine_per_call, avg_per_call = per_call(cost, calls), per_call(p_cost, p_calls)
    return [
        {
            "label": "Spend",
            "value": cost,
            "kind": "money",
            "sub": f"{number(share(cost, p_cost), 'pct')} of the project",
        },
        {"label": "Calls", "value": calls, "kind": "int", "sub": ""},
        {"label": "Per call", "value": mine_per_call, "kind": "money", "sub": f"project average {usd(avg_per_call)}"},
        {
            "label": "Against the average",
            "value": _versus(mine_per_call, avg_per_call),
            "kind": "pct",
            "sub": "per call, vs all customers",
        },
    ]
