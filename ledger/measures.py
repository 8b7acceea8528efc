"""The measure SQL shared by the rollups (which write it) and the queries (which read raw calls with it).

Raw measures are computed over raw calls (table alias ``c``) left-joined with their feedback
(alias ``fb``), as :func:`raw_source` selects them; merged measures fold a finer rollup tier into a
coarser one. The dimension tuples say which columns each rollup tier is keyed on.
"""

from __future__ import annotations

from typing import Any

MAIN_DIMENSIONS = ("feature", "model", "provider", "route_version", "route", "environment", "traffic", "status")
CUSTOMER_DIMENSIONS = ("customer_id", "feature", "model")
USER_DIMENSIONS = ("user_id", "customer_id")
# Narrow views for the questions asked most, merged from a wider tier: each holds a few rows per
# bucket where the wide tier holds hundreds, so the dashboards' default charts read almost nothing.
ROUTE_DIMENSIONS = ("provider", "model", "route_version", "route")  # latency by model / route version
COMPACT_DIMENSIONS = ("feature", "provider", "model", "route_version")  # spend stacked by these
# The what-if's tier (rollup_price_hour): what a target price can depend on besides the main dimensions.
PRICE_DIMENSIONS = (*MAIN_DIMENSIONS, "service_tier", "streamed", "finish_reason", "error_type", "price_band")
# Input-token thresholds a call's price band counts (every catalogue tier threshold of genai-prices
# 0.2.3; ledger.whatif falls back to the raw table for a price with a threshold not listed here).
# Changing the list changes what stored bands mean: it needs a migration that rebuilds the tier.
PRICE_BANDS = (32000, 100000, 128000, 199999, 200000, 256000, 272000, 512000, 524288)
CUSTOMER_ONLY = ("customer_id",)  # top customers

# Settings of every rollup INSERT … SELECT (ledger.rollups, ledger.quantiles, ledger.pool_days).
# max_insert_threads=2: sort, compress and write the output in two threads, not one.
# optimize_on_insert stays on (the default): a part written with it is level 1, known free of
# duplicate keys, and a FINAL read takes such a part, alone in its partition, as it is. A level-0 part
# (optimize_on_insert=0) is merged on every FINAL read: 2.8x the time of a price-tier read on 30 days
# (19.5 ms against 7.0 ms, measured). Turning it off shortened a full rollup by about a fifth.
ROLLUP_INSERT_SETTINGS = {"max_insert_threads": 2}

# Measures from raw calls (the table alias is `c`, feedback is `fb`).
RAW_MEASURES = """
    count() AS calls,
    countIf(c.status != 'ok') AS error_calls,
    countIf(c.attempt > 1) AS retry_calls,
    sumIf(c.input_tokens + c.output_tokens, c.attempt > 1) AS retry_tokens,
    sumIf(toInt128(c.cost_pusd), c.attempt > 1) AS retry_cost_pusd,
    countIf(c.cache_hit) AS cache_hits,
    sum(toInt128(c.cache_saving_pusd)) AS cache_saving_pusd,
    sum(c.input_tokens) AS input_tokens,
    sum(c.input_tokens - c.cache_read_tokens - c.cache_write_tokens) AS uncached_input_tokens,
    sum(c.cache_read_tokens) AS cache_read_tokens,
    sum(c.cache_write_tokens) AS cache_write_tokens,
    sum(c.output_tokens) AS output_tokens,
    sum(c.reasoning_tokens) AS reasoning_tokens,
    sum(toInt128(c.cost_input_pusd)) AS cost_input_pusd,
    sum(toInt128(c.cost_cache_read_pusd)) AS cost_cache_read_pusd,
    sum(toInt128(c.cost_cache_write_pusd)) AS cost_cache_write_pusd,
    sum(toInt128(c.cost_output_pusd)) AS cost_output_pusd,
    sum(toInt128(c.cost_reasoning_pusd)) AS cost_reasoning_pusd,
    sum(toInt128(c.cost_pusd)) AS cost_pusd,
    countIf(c.cost_source = 'unpriced') AS unpriced_calls,
    countIf(c.streamed) AS streamed_calls,
    sum(c.tool_calls) AS tool_calls,
    countIf(isNotNull(c.latency_ms)) AS latency_calls,
    sum(ifNull(c.latency_ms, 0)) AS latency_sum_ms,
    quantileTDigestStateIf(assumeNotNull(c.ttft_ms), isNotNull(c.ttft_ms)) AS ttft_digest,
    quantileTDigestStateIf(assumeNotNull(c.latency_ms), isNotNull(c.latency_ms)) AS latency_digest,
    countIf(isNotNull(fb.score)) AS feedback_count,
    sum(ifNull(fb.score, 0)) AS feedback_score_sum,
    {version:UInt64} AS version"""

# Rollup dimensions computed from raw columns rather than copied (alias ``c``).
DIMENSION_EXPRESSIONS = {"price_band": f"arrayCount(x -> c.input_tokens > x, [{', '.join(map(str, PRICE_BANDS))}])"}
# The what-if's measures from raw calls: token parts of the calls that were not app cache hits.
PRICE_MEASURES = """
    count() AS calls,
    countIf(c.cache_hit) AS cache_hits,
    sum(toInt128(c.cost_pusd)) AS cost_pusd,
    sumIf(c.input_tokens - c.cache_read_tokens - c.cache_write_tokens, NOT c.cache_hit) AS priced_uncached_input_tokens,
    sumIf(c.cache_read_tokens, NOT c.cache_hit) AS priced_cache_read_tokens,
    sumIf(c.cache_write_tokens, NOT c.cache_hit) AS priced_cache_write_tokens,
    sumIf(c.output_tokens - c.reasoning_tokens, NOT c.cache_hit) AS priced_output_tokens,
    sumIf(c.reasoning_tokens, NOT c.cache_hit) AS priced_reasoning_tokens,
    max(c.cost_pusd) AS max_cost_pusd,
    max(c.latency_ms) AS max_latency_ms,
    max(c.ttft_ms) AS max_ttft_ms,
    max(c.input_tokens + c.output_tokens) AS max_tokens,
    {version:UInt64} AS version"""

SUM_COLUMNS = (
    "calls", "error_calls", "retry_calls", "retry_tokens", "retry_cost_pusd", "cache_hits", "cache_saving_pusd",
    "input_tokens", "uncached_input_tokens", "cache_read_tokens", "cache_write_tokens", "output_tokens",
    "reasoning_tokens", "cost_input_pusd", "cost_cache_read_pusd", "cost_cache_write_pusd", "cost_output_pusd",
    "cost_reasoning_pusd", "cost_pusd", "unpriced_calls", "streamed_calls", "tool_calls", "latency_calls",
    "latency_sum_ms", "feedback_count", "feedback_score_sum",
)  # fmt: skip
# Measures merged from a finer rollup tier.
MERGED_MEASURES = ",\n".join(
    [f"    sum({name}) AS {name}" for name in SUM_COLUMNS]
    + [
        "    quantileTDigestMergeState(ttft_digest) AS ttft_digest",
        "    quantileTDigestMergeState(latency_digest) AS latency_digest",
        "    {version:UInt64} AS version",
    ]
)

_RAW_SOURCE = """
FROM (
    SELECT project_id, event_id, timestamp, feature, model, provider, route_version, route, environment, traffic,
           status, service_tier, finish_reason, error_type, customer_id, user_id, input_tokens, cache_read_tokens,
           cache_write_tokens, output_tokens, reasoning_tokens, ttft_ms, latency_ms, attempt, cache_hit, streamed,
           tool_calls, cost_input_pusd, cost_cache_read_pusd, cost_cache_write_pusd, cost_output_pusd,
           cost_reasoning_pusd, cost_pusd, cache_saving_pusd, cost_source
    FROM llm_calls FINAL
    WHERE project_id = {project:UInt64}
      AND timestamp >= {$start:DateTime64(3, 'UTC')} AND timestamp < {$end:DateTime64(3, 'UTC')}
      $filter
) AS c
LEFT JOIN (
    SELECT event_id, argMax(score, created_at) AS score
    FROM feedback WHERE project_id = {project:UInt64} GROUP BY event_id
) AS fb ON fb.event_id = c.event_id"""


def raw_source(filter_sql: str = "", start: str = "start", end: str = "end", *, feedback: bool = True) -> str:
    """``FROM`` one project's raw calls in [start, end) (alias ``c``) joined with their latest feedback (``fb``).

    ``filter_sql`` (``AND …`` over the raw columns) narrows the calls; ``start`` and ``end`` name the
    bound parameters holding the range. The aggregate needs ``SETTINGS join_use_nulls = 1``.
    ``feedback=False``: the calls alone, for measures that do not read ``fb`` (:func:`without_feedback`)."""
    source = _RAW_SOURCE if feedback else _RAW_SOURCE[: _RAW_SOURCE.index("\nLEFT JOIN")]
    bound = source.replace("{$start:", "{" + start + ":").replace("{$end:", "{" + end + ":")
    return bound.replace("$filter", filter_sql)


# The feedback measures of RAW_MEASURES, and what they are when no call has feedback (every score NULL).
_NO_FEEDBACK = {
    "countIf(isNotNull(fb.score)) AS feedback_count": "toUInt64(0) AS feedback_count",
    "sum(ifNull(fb.score, 0)) AS feedback_score_sum": "toFloat64(0) AS feedback_score_sum",
}


def without_feedback(measures: str) -> str:
    """``measures`` (lines of RAW_MEASURES) for calls none of which has feedback: the same figures
    without the join. The hash join costs a fifth of a rollup statement over raw calls (measured)."""
    for with_fb, without in _NO_FEEDBACK.items():
        measures = measures.replace(with_fb, without)
    if "fb." in measures:
        raise ValueError("measures read feedback beyond feedback_count and feedback_score_sum")
    return measures


def raw_calls_where(filters: dict[str, tuple[str, ...]], params: dict[str, Any]) -> str:
    """The WHERE clause over raw calls of one project in [start, end) with dimension filters; binds the
    filter values into ``params`` (the caller binds ``project``, ``start`` and ``end``)."""
    return calls_where(filters, params, "timestamp", "DateTime64(3, 'UTC')")


def calls_where(filters: dict[str, tuple[str, ...]], params: dict[str, Any], time_column: str, time_type: str) -> str:
    """:func:`raw_calls_where` over any table with ``project_id``, the dimensions and a time column."""
    where = [
        "project_id = {project:UInt64}",
        f"{time_column} >= {{start:{time_type}}}",
        f"{time_column} < {{end:{time_type}}}",
    ]
    for i, (dim, values) in enumerate(sorted(filters.items())):
        params[f"f{i}"] = list(values)
        where.append(f"toString({dim}) IN {{f{i}:Array(String)}}")
    return " AND ".join(where)


# Capacity tiers (ledger.capacity): what a provider counts per minute, and the limits it reported.
CAPACITY_DETAIL_DIMENSIONS = ("provider", "model", "feature", "route_version", "route", "environment", "traffic")
CAPACITY_DIMENSIONS = ("provider", "model")
OBSERVED_LIMITS = {  # the rollup column → the llm_calls column it takes the latest value of
    "limit_tokens": "ratelimit_limit_tokens",
    "limit_requests": "ratelimit_limit_requests",
    "limit_input_tokens": "ratelimit_limit_input_tokens",
    "limit_output_tokens": "ratelimit_limit_output_tokens",
}
_DETAIL = "rollup_capacity_detail_minute"
_CAPACITY_SUMS = ("calls", "input_tokens", "cache_read_tokens", "output_tokens", "rate_limited_calls")
CAPACITY_RAW_MEASURES = ",\n".join(
    [
        "    count() AS calls",
        "    sum(c.input_tokens) AS input_tokens",
        "    sum(c.cache_read_tokens) AS cache_read_tokens",
        "    sum(c.output_tokens) AS output_tokens",
        "    countIf(c.status = 'error' AND c.error_type = 'rate_limit') AS rate_limited_calls",
    ]
    + [
        f"    argMaxIf(c.{raw}, (c.timestamp, assumeNotNull(c.{raw})), isNotNull(c.{raw})) AS {name},\n"
        f"    maxIf(c.timestamp, isNotNull(c.{raw})) AS {name}_at"
        for name, raw in OBSERVED_LIMITS.items()
    ]
    + ["    {version:UInt64} AS version"]
)


def latest_limits(source: str) -> list[str]:
    """The latest observed limits of ``source``'s rows (its value and time per kind)."""
    # qualified: the bare names would be this select's own aliases (an aggregate in an aggregate)
    return [
        f"    argMaxIf({source}.{name}, ({source}.{name}_at, assumeNotNull({source}.{name})),"
        f" isNotNull({source}.{name})) AS {name},\n"
        f"    max({source}.{name}_at) AS {name}_at"
        for name in OBSERVED_LIMITS
    ]


CAPACITY_MERGED_MEASURES = ",\n".join(
    [f"    sum({name}) AS {name}" for name in _CAPACITY_SUMS]
    + latest_limits(_DETAIL)
    + ["    {version:UInt64} AS version"]
)
_MINUTE = "rollup_capacity_minute"
# A minute's value of each measure.
_DAY_VALUES = {
    "tpm": f"{_MINUTE}.input_tokens + {_MINUTE}.output_tokens",
    "itpm": f"{_MINUTE}.input_tokens",
    "uncached_itpm": f"{_MINUTE}.input_tokens - {_MINUTE}.cache_read_tokens",
    "otpm": f"{_MINUTE}.output_tokens",
    "rpm": f"{_MINUTE}.calls",
}
_MINUTE_OF_DAY = f"(1439 - toRelativeMinuteNum({_MINUTE}.bucket) % 1440)"
# A model's own rows in rollup_capacity_figures (a pool's: pooled 1 and its members; migration 0012).
CAPACITY_MODEL_FIGURES = (("pooled", "0"), ("members", "CAST([], 'Array(String)')"))
CAPACITY_TOP_MINUTES = 100  # the largest minutes a day's figures keep per measure (migration 0008)
# A day's figures (migration 0008 says what each holds).
CAPACITY_DAY_MEASURES = ",\n".join(
    [
        f"    sum({_MINUTE}.calls) AS calls",
        f"    toUInt32(countIf({_MINUTE}.calls > 0)) AS active_minutes",
        f"    sum({_MINUTE}.rate_limited_calls) AS rate_limited_calls",
        *(f"    max({value}) AS peak_{name}" for name, value in _DAY_VALUES.items()),
        f"    maxIf(({_DAY_VALUES['tpm']}) * 2048 + {_MINUTE_OF_DAY}, {_MINUTE}.calls > 0) AS peak_key",
        *(
            f"    arraySlice(arrayReverseSort(groupArrayIf({value}, {_MINUTE}.calls > 0)), 1, {CAPACITY_TOP_MINUTES})"
            f" AS top_{name}"
            for name, value in _DAY_VALUES.items()
        ),
        *latest_limits(_MINUTE),
        "    {version:UInt64} AS version",
    ]
)
# The raw columns the capacity tier reads (besides the dimensions).
CAPACITY_RAW_COLUMNS = (
    "input_tokens", "cache_read_tokens", "output_tokens", "status", "error_type", *OBSERVED_LIMITS.values(),
)  # fmt: skip
