"""Tables on the dashboards: the same rows render as HTML and export as CSV, with exact money.

A cell keeps its exact value (``Decimal`` money, ints, floats); formatting happens only for the
page. The CSV carries the exact values — money with 12 decimal places, as ``/v1/usage`` answers.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_DOWN, Decimal
from typing import Any
from urllib.parse import quote

from django.http import HttpResponse
from django.utils.text import slugify

MONEY_PLACES = Decimal("0.000000000001")
SECONDS_FROM_MS = 10_000  # latency reads in seconds from 10 s


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    kind: str = "text"  # text · money · int · float · pct · ms · link


@dataclass
class Table:
    name: str  # the export key (?export=<name>)
    title: str
    columns: list[Column]
    rows: list[dict[str, Any]] = field(default_factory=list)
    note: str = ""
    links: dict[str, str] = field(default_factory=dict)  # column key → URL template with {value}

    def csv_response(self, filename_hint: str) -> HttpResponse:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow([c.key for c in self.columns])
        for row in self.rows:
            writer.writerow([csv_value(row.get(c.key), c.kind) for c in self.columns])
        response = HttpResponse(buffer.getvalue(), content_type="text/csv; charset=utf-8")
        name = slugify(f"{filename_hint}-{self.name}") or "export"
        response["Content-Disposition"] = f'attachment; filename="{name}.csv"'
        return response


@dataclass
class PageData:
    """What a dashboard page shows: headline figures, charts (id, plotly figure) and tables."""

    kpis: list[dict[str, Any]] = field(default_factory=list)
    charts: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def table(self, name: str) -> Table | None:
        return next((t for t in self.tables if t.name == name), None)


def csv_value(value: Any, kind: str) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return f"{value.quantize(MONEY_PLACES, ROUND_DOWN):f}" if kind == "money" else f"{value:f}"
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    text = str(value)
    # A value a spreadsheet would run as a formula (a customer id like "=HYPERLINK(...)") is quoted.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") and kind == "text" else text


def usd(value: Decimal | None) -> str:
    """Money for reading: cents for amounts of a dollar or more, four significant places below."""
    if value is None:
        return "–"
    if value == 0:
        return "$0.00"
    sign = "-" if value < 0 else ""
    value = abs(value)
    if value >= 1:
        return f"{sign}${value:,.2f}"
    return f"{sign}${value:.4f}" if value >= Decimal("0.0001") else f"{sign}${value:.8f}"


NONE = "(none)"  # a dimension value the call left blank


def number(value: Any, kind: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if value == "" and kind == "text":
        return NONE
    if kind == "money":
        return usd(value)
    if kind == "int":
        return f"{int(value):,}"
    if kind == "pct":
        return f"{float(value) * 100:.1f} %"
    if kind == "pp":  # a difference of two rates, in percentage points
        return f"{float(value) * 100:+.1f} pp"
    if kind == "ms":
        return f"{float(value) / 1000:,.1f} s" if float(value) >= SECONDS_FROM_MS else f"{float(value):,.0f} ms"
    if kind == "float":
        return f"{float(value):,.2f}"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


def share(part: Decimal, whole: Decimal) -> float:
    return float(part / whole) if whole else math.nan


def per_thousand(cost: Decimal, calls: int) -> Decimal | None:
    return (cost * 1000 / calls).quantize(MONEY_PLACES, ROUND_DOWN) if calls else None


def per_call(cost: Decimal, calls: int) -> Decimal | None:
    """Cost per call, truncated to the pico-dollar like /v1/usage's cost_per_call."""
    return (cost / calls).quantize(MONEY_PLACES, ROUND_DOWN) if calls else None


def spend_columns(share_label: str = "Share of spend") -> list[Column]:
    """The columns every spend breakdown shares: calls, cost, per call, per 1,000 calls, share."""
    return [
        Column("calls", "Calls", "int"),
        Column("cost", "Cost", "money"),
        Column("cost_per_call", "Per call", "money"),
        Column("cost_per_1k", "Per 1,000 calls", "money"),
        Column("share", share_label, "pct"),
    ]


def spend_row(row: dict[str, Any], total: Decimal) -> dict[str, Any]:
    """A usage row with the derived spend figures of :func:`spend_columns` added."""
    return {
        **row,
        "cost_per_call": per_call(row["cost"], row["calls"]),
        "cost_per_1k": per_thousand(row["cost"], row["calls"]),
        "share": share(row["cost"], total),
    }


def column_format(kind: str, values: list[Any]) -> Callable[[Any], str]:
    """One format for a whole column, so its figures line up: money to the cent when the column
    reaches a dollar (else to as many places as its largest figure needs), latency in seconds when
    the column reaches 10 s."""
    present = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if kind == "money" and present:
        top = max(abs(Decimal(v)) for v in present)
        places = 2 if top >= 1 else 4 if top >= Decimal("0.0001") else 8
        return lambda v: money_at(v, places)
    if kind == "ms" and present and max(float(v) for v in present) >= SECONDS_FROM_MS:
        return lambda v: "–" if v is None else f"{float(v) / 1000:,.1f} s"
    if kind == "ms":
        return lambda v: "–" if v is None else f"{float(v):,.0f} ms"
    return lambda v: number(v, kind)


def money_at(value: Decimal | None, places: int) -> str:
    """Money at a fixed number of places; a non-zero amount too small to show says so ("<$0.01")."""
    if value is None:
        return "–"
    step = Decimal(1).scaleb(-places)
    if value != 0 and abs(value) < step:
        return f"<{'-' if value < 0 else ''}${step}"
    sign = "-" if value < 0 else ""
    return f"{sign}${abs(value):,.{places}f}"


def rendered(table: Table) -> dict[str, Any]:
    """The table as the template draws it: formatted cells, numeric columns right-aligned."""
    numeric = {"money", "int", "float", "pct", "ms"}
    formats = {c.key: column_format(c.kind, [row.get(c.key) for row in table.rows]) for c in table.columns}
    rows = []
    for row in table.rows:
        cells = []
        for c in table.columns:
            value = row.get(c.key)
            link = table.links.get(c.key)
            cells.append(
                {
                    "text": formats[c.key](value),
                    "num": c.kind in numeric,
                    "href": link.format(value=quote(str(value), safe="")) if link and value not in (None, "") else "",
                }
            )
        rows.append(cells)
    return {
        "name": table.name,
        "title": table.title,
        "note": table.note,
        "headers": [{"label": c.label, "num": c.kind in numeric} for c in table.columns],
        "rows": rows,
    }
