"""A budget's spend over its current period as a plotly figure: spend so far, the thresholds its
rules fire at, the amount, and the forecast to the period's end.

The figure is plain JSON (plotly's figure format) drawn by the page frame's script; figures in
dollars are floats here because they are only drawn — the page's numbers stay exact Decimals.
"""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal
from typing import Any

from alerts.burn import Burn
from alerts.models import Budget


def spend_chart(budget: Budget, burn: Burn) -> dict[str, Any]:
    """Cumulative spend per local day of the period, a line per actual-spend threshold, the forecast."""
    window = burn.window
    days = [window.first_day + timedelta(days=i) for i in range(window.days)]
    shown = [d for d in days if d <= max(burn.daily, default=window.first_day)]
    running, ys = Decimal(0), []
    for day in shown:
        running += burn.daily.get(day, Decimal(0))
        ys.append(float(running))
    end = (window.end_day - timedelta(days=1)).isoformat()
    start = window.first_day.isoformat()
    traces: list[dict[str, Any]] = [
        {"type": "scatter", "mode": "lines+markers", "name": "spent", "x": [d.isoformat() for d in shown], "y": ys,
         "line": {"color": "#2f5bd3", "width": 3}, "hovertemplate": "%{x}: $%{y:,.2f}<extra>spent</extra>"},
    ]  # fmt: skip
    if burn.forecast is not None and shown:
        traces.append(
            {"type": "scatter", "mode": "lines", "name": "forecast", "x": [shown[-1].isoformat(), end],
             "y": [ys[-1], float(burn.forecast)], "line": {"color": "#5d6778", "dash": "dot"},
             "hovertemplate": "%{x}: $%{y:,.2f}<extra>forecast</extra>"}
        )  # fmt: skip
    thresholds = sorted({t for r in budget.rules.all() if r.kind == "actual" for t in r.thresholds} | {100})
    for t in thresholds:
        level = float(budget.amount * Decimal(t) / 100)
        traces.append(
            {"type": "scatter", "mode": "lines", "name": f"{t} %" if t != 100 else "amount", "x": [start, end],
             "y": [level, level], "line": {"color": "#b42318" if t >= 100 else "#b54708", "width": 1,
             "dash": "solid" if t == 100 else "dash"}, "hovertemplate": f"{t} %: $%{{y:,.2f}}<extra></extra>"}
        )  # fmt: skip
    return {
        "data": traces,
        "layout": {
            "title": {"text": f"Spend this period against {budget.name}'s thresholds", "font": {"size": 14}},
            "margin": {"l": 56, "r": 16, "t": 40, "b": 40},
            "height": 280,
            "xaxis": {"range": [start, end], "type": "date"},
            "yaxis": {"title": {"text": "$"}, "rangemode": "tozero"},
            "legend": {"orientation": "h", "y": -0.2},
            "hovermode": "x unified",
        },
    }


def chart_json(figure: dict[str, Any]) -> str:
    """The figure as JSON safe inside a <script> element."""
    return json.dumps(figure).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
