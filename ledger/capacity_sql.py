"""The statements behind ``ledger.capacity``: what the capacity answer reads, and how.

Each minute's sums per (provider, model or pool) come from the raw calls, the detail tier (under
filters) or the minute tier; each day's and hour's figures from ``rollup_capacity_figures``
(migration 0012). ``SUMMARY`` folds them into one row per model or pool; ``ledger.capacity``
binds the parameters, picks the sources and reads the answer.
"""

from __future__ import annotations

from ledger import pool_days

DETAIL_TABLE = "rollup_capacity_detail_minute"
MINUTE_TABLE = "rollup_capacity_minute"
FIGURES_TABLE = pool_days.FIGURES_TABLE
FILTERS = ("provider", "model", "feature", "route", "route_version", "environment", "traffic")
MEASURES = ("tpm", "itpm", "uncached_itpm", "otpm", "rpm")
# limit → (the peak it bounds, the observed column); Anthropic's ITPM is judged on uncached input.
LIMITS = {"tpm": "tpm", "rpm": "rpm", "itpm": "itpm", "otpm": "otpm"}
OBSERVED = {
    "tpm": "limit_tokens",
    "rpm": "limit_requests",
    "itpm": "limit_input_tokens",
    "otpm": "limit_output_tokens",
}

# A minute's sums, per (provider, model or pool): from the rollup (``$source`` = a capacity tier)
# or from raw calls. ``transform`` maps a pool's member models to the pool's name.
GROUP = (
    "transform(concat(toString(provider), '\\x00', toString(model)), {pool_keys:Array(String)},"
    " {pool_names:Array(String)}, toString(model))"
)
# Each observed limit's latest report in the minute, as (its time, its value): ``$limit_x`` is the
# source's column for kind x, ``$at_x`` its time (ties in time go to the larger limit, so the answer
# never depends on the order rows are read in).
KINDS = [c.removeprefix("limit_") for c in OBSERVED.values()]  # tokens, requests, input_tokens, …


def latest(value: str, at: str, alias: str) -> str:
    """The latest of ``value`` (reported at ``at``) as ``{alias}_at`` and ``{alias}``."""
    return (
        f"maxIf({at}, isNotNull({value})) AS {alias}_at,"
        f" argMaxIf({value}, ({at}, assumeNotNull({value})), isNotNull({value})) AS {alias}"
    )


LATEST_IN = ", ".join(latest(f"$limit_{k}", f"$at_{k}", f"minute_{k}") for k in KINDS)
MINUTES = (
    f"SELECT provider, {GROUP} AS grp, $bucket AS minute,"  # noqa: S608
    " $calls AS rpm, sum(input_tokens) + sum(output_tokens) AS tpm, sum(input_tokens) AS itpm,"
    " sum(input_tokens) - sum(cache_read_tokens) AS uncached_itpm, sum(output_tokens) AS otpm,"
    f" $rate_limited AS rate_limited, {LATEST_IN} FROM $source WHERE project_id = {{project:UInt64}}"
    " AND $time >= {start:DateTime('UTC')} AND $time < {end:DateTime('UTC')}$filters"
    " GROUP BY provider, grp, minute HAVING rpm > 0"
)
ROLLUP = {
    "bucket": "bucket", "calls": "sum(calls)", "rate_limited": "sum(rate_limited_calls)", "time": "bucket",
    **{f"limit_{k}": f"limit_{k}" for k in KINDS}, **{f"at_{k}": f"limit_{k}_at" for k in KINDS},
}  # fmt: skip
RAW = {
    "bucket": "toStartOfMinute(timestamp)", "calls": "count()", "time": "timestamp",
    "rate_limited": "countIf(status = 'error' AND error_type = 'rate_limit')",
    **{f"limit_{k}": f"ratelimit_limit_{k}" for k in KINDS}, **{f"at_{k}": "timestamp" for k in KINDS},
}  # fmt: skip
MEMBER = "(provider, model) IN {pool_pairs:Array(Tuple(String, String))}"
# The minute tier's rows the figures do not answer: the models of a pool (summed with their pool's
# others per minute) over the range, and the others' in the range's partial edge hours. ``$members``
# are the models of a pool and the days and hours the minutes must answer for them: the whole
# range, or, where the pool tiers answer, the partial edge hours and the days and hours they lack.
MINUTE_SOURCE = (
    f"(SELECT * FROM {MINUTE_TABLE} FINAL WHERE project_id = {{project:UInt64}}"  # noqa: S608
    " AND bucket >= {start:DateTime('UTC')} AND bucket < {end:DateTime('UTC')}"
    " AND (bucket < {hours_from:DateTime('UTC')} OR bucket >= {hours_to:DateTime('UTC')} OR $members))"
)
LACKING = (
    f"{MEMBER} AND ((provider, model, toStartOfDay(bucket))"
    " IN {pool_lacking:Array(Tuple(String, String, DateTime('UTC')))}"
    " OR (provider, model, toStartOfHour(bucket))"
    " IN {pool_lacking_hours:Array(Tuple(String, String, DateTime('UTC')))})"
)
# The whole days of the range, and its whole hours outside them (the edge hours).
IN_DAYS = "bucket >= {whole_from:DateTime('UTC')} AND bucket < {whole_to:DateTime('UTC')}"
IN_HOURS = (
    "bucket >= {hours_from:DateTime('UTC')} AND bucket < {hours_to:DateTime('UTC')}"
    " AND (bucket < {whole_from:DateTime('UTC')} OR bucket >= {whole_to:DateTime('UTC')})"
)
# The figures tier's rows for the whole days and the edge hours: a model's own (outside any pool:
# ``$models``), and a pool's that stand for it as configured now (``pool_days.signature``: ``$pools``).
CURRENT_POOL = (
    "pooled = 1 AND has({pool_sigs:Array(String)},"
    " concat(toString(provider), '\\x00', toString(model), '\\x00', arrayStringConcat(members, '\\x00')))"
)
FIGURE_ROWS = (
    f"{FIGURES_TABLE} FINAL WHERE project_id = {{project:UInt64}} AND calls > 0"
    f" AND ((grain = 'day' AND {IN_DAYS}) OR (grain = 'hour' AND {IN_HOURS}))"
    " AND ((pooled = 0 AND $models) OR ($pools))"
)
# What the figures hold of the range's pools as configured now (pooled 1), and the whole days and
# edge hours in which the pools' models had traffic (pooled 0): where a model had traffic and its
# pool has no row, the minutes answer (``_lacking``).
POOL_COVERAGE = (
    "SELECT pooled, toString(grain), provider, toString(model), groupArray(bucket) FROM"  # noqa: S608
    f" {FIGURE_ROWS.replace('$models', MEMBER).replace('$pools', CURRENT_POOL)}"
    " GROUP BY pooled, grain, provider, model"
)
# Per (provider, model or pool) and day: the minutes with traffic, the peak of each measure, the
# peak's key (tpm · 2048 + 1439 − the minute of the day: its largest value is the earliest minute
# of the largest tpm), each measure's $top largest minutes (descending), the 429s and the latest
# observed limits. Each day's list length (l_) and last value (e_) tell whether it was cut short.
DAY_SUMMARY = ["n", *(f"d_{m}" for m in MEASURES), *(f"l_{m}, e_{m}" for m in MEASURES)]
DAY_LIMITS = [f"o_{k}_at, o_{k}" for k in KINDS]
# Where each field sits in a day of the summary's list: (day, n, the peaks, per measure (length, last), the limits).
AT_LISTS = 2 + len(MEASURES)
AT_LIMITS = AT_LISTS + 2 * len(MEASURES)
DAYS_FROM_MINUTES = (
    "SELECT provider, grp, toDate(minute) AS day, count() AS n, "  # noqa: S608
    + ", ".join(f"toUInt64(max({m})) AS d_{m}" for m in MEASURES)
    + ", toUInt64(max(toUInt64(tpm) * 2048 + (1439 - toRelativeMinuteNum(minute) % 1440))) AS d_key, "
    + ", ".join(f"arraySlice(arrayReverseSort(groupArray(toInt64({m}))), 1, $top) AS t_{m}" for m in MEASURES)
    + ", toUInt64(sum(rate_limited)) AS d_rate_limited, "
    + ", ".join(f"length(t_{m}) AS l_{m}, t_{m}[-1] AS e_{m}" for m in MEASURES)
    + ", "
    + ", ".join(latest(f"minute_{k}", f"minute_{k}_at", f"o_{k}") for k in KINDS)
    + " FROM ($minutes) GROUP BY provider, grp, day"
)
# The same figures for the whole days and the edge hours from the figures tier (``FIGURE_ROWS``):
# a day's top lists hold its largest CAPACITY_TOP_MINUTES only, an hour's every minute. An hour's
# row is one more entry of its day.
DAYS_FROM_FIGURES = (
    "SELECT provider, toString(model) AS grp, toDate(bucket) AS day, toUInt64(active_minutes) AS n, "  # noqa: S608
    + ", ".join(f"peak_{m} AS d_{m}" for m in MEASURES)
    + ", peak_key AS d_key, "
    + ", ".join(f"CAST(top_{m}, 'Array(Int64)') AS t_{m}" for m in MEASURES)
    + ", rate_limited_calls AS d_rate_limited, "
    + ", ".join(f"length(top_{m}) AS l_{m}, toInt64(top_{m}[-1]) AS e_{m}" for m in MEASURES)
    + ", "
    + ", ".join(f"limit_{k}_at AS o_{k}_at, limit_{k} AS o_{k}" for k in KINDS)
    + " FROM $rows$filters"
)
# Then per model: the peaks, the peak minute (the earliest day of the largest tpm), the days, and
# the nearest-rank p99: the k-th largest minute, k = n − ⌈0.99·n⌉ + 1, taken from the union of the
# days' top lists. Python (:func:`_unsure`) judges whether that is exact from the days, and picks
# the latest observed limits from them (:func:`_observed`).
RANK = "toUInt64(sum(n) - intDiv(99 * sum(n) + 99, 100) + 1)"
SUMMARY = (
    f"SELECT provider, grp, sum(n), {RANK} AS k, "  # noqa: S608
    + ", ".join(f"max(d_{m})" for m in MEASURES)
    + ", "
    + ", ".join(f"arrayElement(arrayReverseSort(arrayFlatten(groupArray(t_{m}))), k) AS p99_{m}" for m in MEASURES)
    + ", argMax(toDateTime(day, 'UTC') + toIntervalMinute(1439 - d_key % 2048),"
    " (d_tpm, -toInt64(toUInt32(day)), d_key)),"
    " sum(d_rate_limited), groupArray(("
    + ", ".join(["day", *DAY_SUMMARY, *DAY_LIMITS])
    + ")) FROM ($days) GROUP BY provider, grp ORDER BY provider, grp"
)
# The exact p99 of the models ``_unsure`` named, from every minute of the range.
P99_SQL = (
    "SELECT provider, grp, "  # noqa: S608
    + ", ".join(f"arrayElement(arraySort(groupArray({m})), intDiv(99 * count() + 99, 100))" for m in MEASURES)
    + " FROM ($minutes) WHERE has({unsure:Array(String)}, concat(toString(provider), '\\x00', grp))"
    " GROUP BY provider, grp"
)
