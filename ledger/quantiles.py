"""Latency and TTFT percentiles precomputed per bucket (``rollup_quantile_hour`` / ``_day``, migration 0013).

Merging TDigest states costs in centroids, not rows: a latency chart over a month of hours merged
thousands of states per page. For the groupings the charts ask for by default (:data:`GROUPINGS`),
the rollup writes each bucket's p50/p95/p99 of latency and TTFT, computed from the merged digest
of that bucket's rows in the tier a query would merge them from (so the answer is the one merging
gives, exact within the sketch's rank error), with the bucket's sums beside them. Each row names
its grouping (``grouped_by``: the grouped dimensions, sorted, comma-joined; the others hold '').

Rows are written by :func:`recompute` for the hours and days the rollup recomputes, under its
version, with tombstones (zero rows) for the groups it no longer produced, like every tier. The
digest states stay in the other tiers: a query answers from here only when each of its (bucket,
group) cells is one precomputed row (:func:`table_for`); a breakdown that folds the groups past
its limit into one reads the kept groups here and merges only the rest's states
(``ledger.queries._with_merged_rest``); anything else merges the states.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from django.conf import settings

from ledger.clickhouse.client import get_clickhouse
from ledger.measures import ROLLUP_INSERT_SETTINGS, ROUTE_DIMENSIONS, SUM_COLUMNS

HOUR_TABLE = "rollup_quantile_hour"
DAY_TABLE = "rollup_quantile_day"
TABLES = (HOUR_TABLE, DAY_TABLE)
DIMENSIONS = ("feature", "provider", "model", "route_version")
# The engineering page's splits, compare's and /v1/usage's usual latency breakdowns.
GROUPINGS: tuple[tuple[str, ...], ...] = (
    (), ("feature",), ("provider",), ("model",), ("route_version",), ("provider", "model"),
    ("model", "route_version"), ("provider", "model", "route_version"), ("feature", "model"),
)  # fmt: skip
_LEVELS = {"p50": 1, "p95": 2, "p99": 3}
_QUANTILES = [f"{kind}_{level}" for kind in ("ttft", "latency") for level in _LEVELS]
# What a percentile metric reads here: the one row of its (bucket, group) cell.
METRIC_SQL = {name: f"any({name})" for name in _QUANTILES}


def grouping(dimensions: Sequence[str]) -> str:
    return ",".join(sorted(dimensions))


_NAMED = {grouping(g) for g in GROUPINGS}


def table_for(
    granularity: str | None,
    group_by: Sequence[str],
    filters: dict[str, tuple[str, ...]],
    metrics: Sequence[str],
    order_by: str,
    *,
    day_ok: bool,
    hour_ok: bool,
) -> str | None:
    """The precomputed table answering these, or None (merge the digests). Every (bucket, group)
    cell must be one row: buckets of the table's own grain on whole buckets (days only in UTC),
    a precomputed grouping, filters only on grouped dimensions (they pick groups), and groups not
    ranked by a percentile (that needs the range's merged digest). Only for queries that ask for a
    percentile: the other tiers answer sums as cheaply."""
    if not settings.LEDGER_PRECOMPUTED_QUANTILES:
        return None
    if not any(m in METRIC_SQL for m in metrics):
        return None
    if grouping(group_by) not in _NAMED or not set(filters) <= set(group_by):
        return None
    if granularity is None and day_ok:
        # A total over whole UTC days: each group's days' digests merged (a few rows per group where
        # the tier holds one per day and every other dimension), ranked by any metric in the same pass.
        return DAY_TABLE
    if order_by in METRIC_SQL:
        return None
    if granularity == "day" and day_ok:
        return DAY_TABLE
    if granularity == "hour" and hour_ok:
        return HOUR_TABLE
    return None


def _tier(grain: str, dims: tuple[str, ...]) -> str:
    """The tier a usage query merges these groups' digests from (ledger.queries._source)."""
    if grain == "day":
        return "rollup_compact_day"
    return "rollup_route_hour" if set(dims) <= set(ROUTE_DIMENSIONS) else "rollup_hour"


def _measures(grain: str) -> str:
    sums = ", ".join(f"sum({c}) AS {c}" for c in SUM_COLUMNS)
    quantiles = ", ".join(
        f"quantilesTDigestMerge(0.5, 0.95, 0.99)({kind}_digest)[{i}] AS {kind}_{level}"
        for kind in ("ttft", "latency")
        for level, i in _LEVELS.items()
    )
    if grain == "day":  # the day's merged states too (migration 0014), for totals over whole days
        quantiles += ", quantileTDigestMergeState(ttft_digest) AS ttft_state"
        quantiles += ", quantileTDigestMergeState(latency_digest) AS latency_state"
    return f"{sums}, {quantiles}"


def _where(grain: str) -> str:
    """One project's dirty hours (days) of a tier."""
    buckets = "hours" if grain == "hour" else "days"
    return (
        " WHERE project_id = {project:UInt64}"
        " AND bucket >= {start:DateTime('UTC')} AND bucket < {end:DateTime('UTC')}"
        f" AND bucket IN {{{buckets}:Array(DateTime('UTC'))}}"
    )


def _select(grain: str, dims: tuple[str, ...]) -> str:
    """One grouping's rows of one grain, over every project and bucket (the migration's backfill)."""
    columns = ", ".join(f"toString({d})" if d in dims else "''" for d in DIMENSIONS)
    return (
        f"SELECT project_id, bucket, '{grouping(dims)}', {columns}, {_measures(grain)},"  # noqa: S608
        f" toUInt64(toUnixTimestamp64Micro(now64(6))) FROM {_tier(grain, dims)} FINAL"
        f" GROUP BY project_id, bucket{''.join(', ' + d for d in dims)} HAVING calls > 0"
    )


def _grouping_sets(grain: str, tier: str, sets: list[tuple[str, ...]]) -> str:
    """The rows of ``sets`` (all over ``tier``) for a project's dirty buckets: one scan, grouping sets.
    ``grouping()`` has one bit per dimension, set where the row's set does not hold it (the standard's
    meaning, which the statement asks for)."""
    dims = [d for d in DIMENSIONS if any(d in s for s in sets)]
    mask = f"grouping({', '.join(dims)})"
    bits = {s: sum(1 << (len(dims) - 1 - k) for k, d in enumerate(dims) if d not in s) for s in sets}
    name = "multiIf(" + "".join(f"{mask} = {m}, '{grouping(s)}', " for s, m in bits.items()) + "'?')"
    columns = ", ".join(f"toString({d})" if d in dims else "''" for d in DIMENSIONS)
    keys = ", ".join(f"(project_id, bucket{''.join(', ' + d for d in s)})" for s in sets)
    return (
        f"SELECT project_id, bucket, {name}, {columns}, {_measures(grain)}, {{version:UInt64}}"  # noqa: S608
        f" FROM {tier} FINAL{_where(grain)} GROUP BY GROUPING SETS ({keys}) HAVING calls > 0"
    )


_COLUMNS = f"project_id, bucket, grouped_by, {', '.join(DIMENSIONS)}, {', '.join(SUM_COLUMNS)}, {', '.join(_QUANTILES)}"
_GRAIN_COLUMNS = {"hour": _COLUMNS, "day": f"{_COLUMNS}, ttft_digest, latency_digest"}


def backfill_sql(grain: str) -> str:
    """Every grouping's rows of one grain over every project and bucket (migration 0013 runs this)."""
    table = HOUR_TABLE if grain == "hour" else DAY_TABLE
    selects = " UNION ALL ".join(_select(grain, dims) for dims in GROUPINGS)
    return f"INSERT INTO {table} ({_GRAIN_COLUMNS[grain]}, version) {selects}"


def insert_sql(grain: str) -> list[str]:
    """The statements writing every grouping's rows of one grain for a project's dirty buckets: one
    per tier read (the tier a usage query would merge those groups' digests from)."""
    table = HOUR_TABLE if grain == "hour" else DAY_TABLE
    by_tier: dict[str, list[tuple[str, ...]]] = {}
    for dims in GROUPINGS:
        by_tier.setdefault(_tier(grain, dims), []).append(dims)
    return [
        f"INSERT INTO {table} ({_GRAIN_COLUMNS[grain]}, version) {_grouping_sets(grain, tier, sets)}"
        for tier, sets in by_tier.items()
    ]


def _tombstone_sql(grain: str) -> str:
    table = HOUR_TABLE if grain == "hour" else DAY_TABLE
    keys = f"project_id, bucket, grouped_by, {', '.join(DIMENSIONS)}"
    return (
        f"INSERT INTO {table} ({keys}, version) SELECT {keys}, {{version:UInt64}} FROM {table} FINAL"  # noqa: S608
        f"{_where(grain)} AND version < {{version:UInt64}} AND calls > 0"
    )


_STATEMENTS = {grain: (*insert_sql(grain), _tombstone_sql(grain)) for grain in ("hour", "day")}


def recompute(project_id: int, hours: Sequence[datetime], days: Sequence[datetime], version: int) -> None:
    """Write the percentiles of ``hours`` and ``days`` (UTC, after their tiers were recomputed under
    ``version``), then tombstones for the groups of those buckets not written again."""
    ch = get_clickhouse()
    for grain, buckets, step in (("hour", sorted(hours), 3600), ("day", sorted(days), 86400)):
        if not buckets:
            continue
        end = datetime.fromtimestamp(buckets[-1].timestamp() + step, buckets[-1].tzinfo)
        params = {"project": project_id, "start": buckets[0], "end": end, grain + "s": buckets, "version": version}
        for statement in _STATEMENTS[grain]:
            ch.command(
                statement,
                parameters=params,
                caller=f"ledger.quantiles.recompute.{grain}",
                # grouping(): 1 for a column NOT in the set
                settings={**ROLLUP_INSERT_SETTINGS, "force_grouping_standard_compatibility": 1},
            )
