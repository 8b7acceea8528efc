"""plotly figures for the dashboards, built as plain figure dicts (no per-figure validation cost).

The page embeds each figure as JSON; ``app.js`` draws it with the plotly.js the app serves itself.
Charts carry floats (plotly has no decimals); every exact number is in a table beside the chart.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

PALETTE = ("#2f5bd3", "#e07a1f", "#1a9e77", "#c0392b", "#8e44ad", "#7f8c8d", "#d4a017", "#16a3b8", "#b5651d")
OTHER = "(other)"
BLANK = "(none)"

_LAYOUT: dict[str, Any] = {
    "margin": {"l": 56, "r": 16, "t": 36, "b": 40},
    "legend": {"orientation": "h", "y": -0.18},
    "hovermode": "x unified",
    "font": {"family": "system-ui, sans-serif", "size": 12},
    "paper_bgcolor": "rgba(0,0,0,0)",
    "plot_bgcolor": "rgba(0,0,0,0)",
    "xaxis": {"gridcolor": "#eceff4"},
    "yaxis": {"gridcolor": "#eceff4", "rangemode": "tozero"},
}


def _num(value: Any) -> float | None:
    if value is None:
        return None
    out = float(value)
    return None if math.isnan(out) else out


def _x(bucket: Any) -> str:
    return bucket.isoformat() if isinstance(bucket, datetime) else str(bucket)


def figure(title: str, traces: list[dict[str, Any]], **layout: Any) -> dict[str, Any]:
    merged = {**_LAYOUT, "title": {"text": title, "font": {"size": 14}}}
    for key, value in layout.items():
        merged[key] = {**merged.get(key, {}), **value} if isinstance(value, dict) else value
    return {"data": traces, "layout": merged}


def series_by_group(
    rows: Iterable[dict[str, Any]], group: str, metric: str
) -> tuple[list[str], dict[str, list[float | None]]]:
    """Long-format usage rows → (x values, {group value: y values aligned with x})."""
    xs: list[str] = []
    seen: set[str] = set()
    values: dict[str, dict[str, Any]] = defaultdict(dict)
    for row in rows:
        x = _x(row["bucket"])
        if x not in seen:
            seen.add(x)
            xs.append(x)
        values[str(row.get(group, "")) or BLANK][x] = row[metric]
    return xs, {g: [_num(v.get(x)) for x in xs] for g, v in values.items()}


def _with_data(series: dict[str, list[Any]], zero_is_data: bool) -> dict[str, list[Any]]:
    """The series that have something to draw: a legend lists no name without data."""
    return {k: ys for k, ys in series.items() if any(y is not None and (zero_is_data or y != 0) for y in ys)}


def stacked_bars(title: str, xs: Sequence[str], series: dict[str, list[float | None]], unit: str = "$") -> dict:
    series = _with_data(series, zero_is_data=False)
    traces = [
        {
            "type": "bar",
            "name": name,
            "x": list(xs),
            "y": ys,
            "marker": {"color": "#b8bfcc" if name == OTHER else PALETTE[i % len(PALETTE)]},
            "hovertemplate": f"%{{y:{'$,.2f' if unit == '$' else ',.0f'}}}",
        }
        for i, (name, ys) in enumerate(series.items())
    ]
    return figure(title, traces, barmode="stack", yaxis={"tickprefix": unit if unit == "$" else ""})


def lines(title: str, xs: Sequence[str], series: dict[str, list[float | None]], y_title: str = "", **kw: Any) -> dict:
    """A line per series; None is a gap (no calls in that bucket), never drawn as zero."""
    series = _with_data(series, zero_is_data=True)
    traces = [
        {
            "type": "scatter",
            "mode": "lines+markers",  # markers: a value between two empty buckets is still seen
            "marker": {"size": 5},
            "name": name,
            "x": list(xs),
            "y": ys,
            "line": {"color": "#b8bfcc" if name == OTHER else PALETTE[i % len(PALETTE)], "width": 2},
            "connectgaps": False,
        }
        for i, (name, ys) in enumerate(series.items())
    ]
    return figure(title, traces, yaxis={"title": {"text": y_title}, **kw.pop("yaxis", {})}, **kw)


def hbars(title: str, labels: Sequence[str], series: dict[str, list[float]], unit: str = "") -> dict:
    series = _with_data(series, zero_is_data=False)
    traces = [
        {
            "type": "bar",
            "orientation": "h",
            "name": name,
            "y": list(labels),
            "x": xs,
            "marker": {"color": PALETTE[i % len(PALETTE)]},
        }
        for i, (name, xs) in enumerate(series.items())
    ]
    height = max(260, 60 + 28 * len(labels))
    return figure(
        title,
        traces,
        barmode="stack",
        height=height,
        hovermode="closest",
        yaxis={"autorange": "reversed", "automargin": True},
        xaxis={"ticksuffix": unit},
    )


def to_json(fig: dict[str, Any]) -> str:
    """The figure as JSON safe to embed in a <script type="application/json"> element."""

    def default(value: Any) -> Any:
        if isinstance(value, Decimal):
            return float(value)
        if isinstance(value, datetime):
            return value.isoformat()
        raise TypeError(type(value).__name__)

    text = json.dumps(fig, default=default, allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
