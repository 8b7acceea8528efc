"""The metrics a usage query may ask for: each one's SQL over a rollup row's measure columns, and its kind."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    sql: str  # over the measure columns of a rollup row
    kind: str  # "money" (pico-USD → Decimal), "int", "float"


def _q(column: str, index: int) -> str:
    return f"quantilesTDigestMerge(0.5, 0.95, 0.99)({column})[{index}]"


def _ratio(num: str, den: str) -> str:
    return f"if(sum({den}) = 0, nan, sum({num}) / sum({den}))"


METRICS: dict[str, Metric] = {
    "cost": Metric("sum(cost_pusd)", "money"),
    "cost_input": Metric("sum(cost_input_pusd)", "money"),
    "cost_cache_read": Metric("sum(cost_cache_read_pusd)", "money"),
    "cost_cache_write": Metric("sum(cost_cache_write_pusd)", "money"),
    "cost_output": Metric("sum(cost_output_pusd)", "money"),
    "cost_reasoning": Metric("sum(cost_reasoning_pusd)", "money"),
    "cost_per_call": Metric("if(sum(calls) = 0, toInt128(0), intDiv(sum(cost_pusd), sum(calls)))", "money"),
    "calls": Metric("sum(calls)", "int"),
    "errors": Metric("sum(error_calls)", "int"),
    "error_rate": Metric(_ratio("error_calls", "calls"), "float"),
    "retries": Metric("sum(retry_calls)", "int"),
    "retry_rate": Metric(_ratio("retry_calls", "calls"), "float"),
    "retry_tokens": Metric("sum(retry_tokens)", "int"),
    "retry_cost": Metric("sum(retry_cost_pusd)", "money"),
    "cache_hits": Metric("sum(cache_hits)", "int"),
    "cache_hit_rate": Metric(_ratio("cache_hits", "calls"), "float"),
    "cache_savings": Metric("sum(cache_saving_pusd)", "money"),
    "cache_read_share": Metric(_ratio("cache_read_tokens", "input_tokens"), "float"),
    "input_tokens": Metric("sum(input_tokens)", "int"),
    "uncached_input_tokens": Metric("sum(uncached_input_tokens)", "int"),
    "cache_read_tokens": Metric("sum(cache_read_tokens)", "int"),
    "cache_write_tokens": Metric("sum(cache_write_tokens)", "int"),
    "output_tokens": Metric("sum(output_tokens)", "int"),
    "reasoning_tokens": Metric("sum(reasoning_tokens)", "int"),
    "unpriced_calls": Metric("sum(unpriced_calls)", "int"),
    "streamed_calls": Metric("sum(streamed_calls)", "int"),
    "tool_calls": Metric("sum(tool_calls)", "int"),
    "ttft_p50": Metric(_q("ttft_digest", 1), "float"),
    "ttft_p95": Metric(_q("ttft_digest", 2), "float"),
    "ttft_p99": Metric(_q("ttft_digest", 3), "float"),
    "latency_p50": Metric(_q("latency_digest", 1), "float"),
    "latency_p95": Metric(_q("latency_digest", 2), "float"),
    "latency_p99": Metric(_q("latency_digest", 3), "float"),
    "latency_avg": Metric(_ratio("latency_sum_ms", "latency_calls"), "float"),
    "tokens_per_second": Metric(
        "if(sum(latency_sum_ms) = 0, nan, sum(output_tokens) * 1000 / sum(latency_sum_ms))", "float"
    ),
    "feedback_count": Metric("sum(feedback_count)", "int"),
    "feedback_score": Metric(_ratio("feedback_score_sum", "feedback_count"), "float"),
}
DEFAULT_METRICS = ("cost", "calls")
