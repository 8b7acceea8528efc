"""The engineering page: how fast calls are, how often they fail or retry, and where tokens go."""

from __future__ import annotations

from typing import Any

from dashboards import charts
from dashboards.filters import Filters
from dashboards.tables import Column, PageData, Table
from ledger.queries import usage

SPLITS = {"model": "Model", "route_version": "Route version"}
PERCENTILES = ("p50", "p95", "p99")
TOP_GROUPS = 6
HEALTH_METRICS = (
    "calls", "tokens_per_second", "error_rate", "retry_rate", "cache_hit_rate", "errors", "retries", "cache_hits",
)  # fmt: skip


MODEL_METRICS = (
    "calls",
    "uncached_input_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "output_tokens",
    "reasoning_tokens",
    "ttft_p50",
    "ttft_p95",
    "latency_p50",
    "latency_p95",
    "latency_p99",
    "tokens_per_second",
    "error_rate",
    "retry_rate",
    "cost",
)
MODEL_COLUMNS = [
    Column("model", "Model"),
    Column("calls", "Calls", "int"),
    Column("ttft_p50", "TTFT p50", "ms"),
    Column("ttft_p95", "TTFT p95", "ms"),
    Column("latency_p50", "Latency p50", "ms"),
    Column("latency_p95", "Latency p95", "ms"),
    Column("latency_p99", "Latency p99", "ms"),
    Column("tokens_per_second", "Tokens/s", "float"),
    Column("error_rate", "Errors", "pct"),
    Column("retry_rate", "Retries", "pct"),
    Column("input_per_call", "Input/call", "float"),
    Column("output_per_call", "Output/call", "float"),
    Column("cost", "Cost", "money"),
]


def _f(value: Any) -> float:
    return float(value) if value is not None else 0.0


def engineering(project_id: int, f: Filters, split: str = "model", pct: str = "p95") -> PageData:
    page = PageData()
    health = usage(f.usage(project_id, granularity=f.bucket, metrics=HEALTH_METRICS)).rows
    calls = sum(r["calls"] for r in health)
    page.extra["has_data"] = calls > 0
    if not calls:
        return page
    page.charts += _latency_charts(project_id, f, split, pct)
    page.charts += _health_charts(health)
    page.charts.append(("routes", _route_chart(project_id, f)))
    models = _model_rows(project_id, f)
    page.charts.append(("tokens", _tokens_chart(models)))
    page.tables.append(_models_table(models))
    page.kpis = _kpis(health, calls)
    return page


def _latency_charts(project_id: int, f: Filters, split: str, pct: str) -> list[tuple[str, dict[str, Any]]]:
    """Total latency and time to first token at one percentile: a line per top model or route version
    by calls, and one for all the others."""
    latency = usage(
        f.usage(
            project_id,
            granularity=f.bucket,
            group_by=(split,),
            metrics=(f"ttft_{pct}", f"latency_{pct}"),
            order_by="calls",
            limit=TOP_GROUPS,
            other=charts.OTHER,  # the rest as one line, so no model (the slowest, say) disappears
        )
    ).rows
    xs, ttft = charts.series_by_group(latency, split, f"ttft_{pct}")
    _, total = charts.series_by_group(latency, split, f"latency_{pct}")
    label = SPLITS[split].lower()
    return [
        ("latency", charts.lines(f"Latency {pct} by {label}", xs, total, "ms")),
        ("ttft", charts.lines(f"Time to first token {pct} by {label}", xs, ttft, "ms")),
    ]


def _health_charts(health: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """Error, retry and cache hit rates, and throughput, per bucket (a gap where there were no calls)."""
    xs = [charts._x(r["bucket"]) for r in health]
    rates = {
        "error rate": [_f(r["error_rate"]) * 100 if r["calls"] else None for r in health],
        "retry rate": [_f(r["retry_rate"]) * 100 if r["calls"] else None for r in health],
        "cache hit rate": [_f(r["cache_hit_rate"]) * 100 if r["calls"] else None for r in health],
    }
    tps = {"output tokens/s": [_f(r["tokens_per_second"]) if r["calls"] else None for r in health]}
    return [
        ("rates", charts.lines("Error, retry and cache hit rates", xs, rates, "%")),
        ("throughput", charts.lines("Output tokens per second of call time", xs, tps, "tokens/s")),
    ]


def _route_chart(project_id: int, f: Filters) -> dict[str, Any]:
    routes = usage(
        f.usage(
            project_id,
            granularity=f.bucket,
            group_by=("route",),
            metrics=("calls",),
            order_by="calls",
            limit=8,
            other=charts.OTHER,
        )
    ).rows
    xs, series = charts.series_by_group(routes, "route", "calls")
    return charts.stacked_bars("Route mix (calls)", xs, series, unit="")


def _model_rows(project_id: int, f: Filters) -> list[dict[str, Any]]:
    query = f.usage(
        project_id, granularity=None, group_by=("model",), metrics=MODEL_METRICS, order_by="calls", limit=50
    )
    return usage(query).rows


def _tokens_chart(models: list[dict[str, Any]]) -> dict[str, Any]:
    """Tokens per call by kind, a bar per model."""

    def per_call_tokens(key: str) -> list[float]:
        return [r[key] / r["calls"] if r["calls"] else 0.0 for r in models]

    tokens = {
        "uncached input": per_call_tokens("uncached_input_tokens"),
        "cache read": per_call_tokens("cache_read_tokens"),
        "cache write": per_call_tokens("cache_write_tokens"),
        "output (excl. reasoning)": [
            (r["output_tokens"] - r["reasoning_tokens"]) / r["calls"] if r["calls"] else 0.0 for r in models
        ],
        "reasoning": per_call_tokens("reasoning_tokens"),
    }
    names = [r["model"] or charts.BLANK for r in models]
    return charts.hbars("Tokens per call: input vs output, by model", names, tokens)


def _models_table(models: list[dict[str, Any]]) -> Table:
    rows = [
        {
            **r,
            "input_per_call": (
                (r["uncached_input_tokens"] + r["cache_read_tokens"] + r["cache_write_tokens"]) / r["calls"]
                if r["calls"]
                else None
            ),
            "output_per_call": r["output_tokens"] / r["calls"] if r["calls"] else None,
        }
        for r in models
    ]
    return Table("models", "Models", MODEL_COLUMNS, rows)


def _kpis(health: list[dict[str, Any]], calls: int) -> list[dict[str, Any]]:
    errors = sum(r["errors"] for r in health)
    retries = sum(r["retries"] for r in health)
    hits = sum(r["cache_hits"] for r in health)
    return [
        {"label": "Calls", "value": calls, "kind": "int", "sub": ""},
        {"label": "Error rate", "value": errors / calls, "kind": "pct", "sub": f"{errors:,} failed"},
        {"label": "Retry rate", "value": retries / calls, "kind": "pct", "sub": f"{retries:,} retries"},
        {"label": "Cache hit rate", "value": hits / calls, "kind": "pct", "sub": f"{hits:,} served by the app cache"},
    ]
