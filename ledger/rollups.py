"""Recompute rollups for dirty hours, exactly and idempotently.

For each (project, UTC day) with dirty hours: the minute, hour and customer-hour rows of those
hours are recomputed from ``llm_calls FINAL`` (joined with feedback); then the day, customer-day
and user-day rows of the whole day (day tiers from the hour tiers, users from raw). Each statement
writes complete rows under one new ``version`` and then a zero row for every dimension set that
the recompute no longer produced, so FINAL reads equal what the raw table says.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings

from ledger import pool_days, quantiles
from ledger.claims import Mark, claim_dirty, finish_claim, kept, release_claim
from ledger.clickhouse.client import get_clickhouse
from ledger.dirty import mark_dirty
from ledger.measures import (
    CAPACITY_DAY_MEASURES,
    CAPACITY_DETAIL_DIMENSIONS,
    CAPACITY_DIMENSIONS,
    CAPACITY_MERGED_MEASURES,
    CAPACITY_MODEL_FIGURES,
    CAPACITY_RAW_COLUMNS,
    CAPACITY_RAW_MEASURES,
    COMPACT_DIMENSIONS,
    CUSTOMER_DIMENSIONS,
    CUSTOMER_ONLY,
    DIMENSION_EXPRESSIONS,
    MAIN_DIMENSIONS,
    MERGED_MEASURES,
    PRICE_DIMENSIONS,
    PRICE_MEASURES,
    RAW_MEASURES,
    ROLLUP_INSERT_SETTINGS,
    ROUTE_DIMENSIONS,
    USER_DIMENSIONS,
    raw_source,
    without_feedback,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Tier:
    table: str
    dimensions: tuple[str, ...]
    bucket_expr: str  # over the source rows
    source: str  # "raw" or the finer table merged from
    span: str  # "hours" (recompute the dirty hours only) or "day"
    sketches: bool = True  # customer and user tiers skip the latency sketches: they are about spend
    # A tier with measures of its own (the capacity tiers): from raw, or merged from a finer tier;
    # from raw it reads llm_calls alone (no feedback), these columns besides its dimensions.
    own_measures: str | None = None
    raw_columns: tuple[str, ...] = ()
    # Columns every row of the tier holds the same value in (column, SQL value): where several tiers
    # share one table (the capacity figures: days and hours), they tell the tiers' rows apart.
    fixed: tuple[tuple[str, str], ...] = ()


TIERS = (
    Tier("rollup_minute", MAIN_DIMENSIONS, "toStartOfMinute(c.timestamp)", "raw", "hours"),
    Tier("rollup_hour", MAIN_DIMENSIONS, "toStartOfHour(c.timestamp)", "raw", "hours"),
    Tier("rollup_price_hour", PRICE_DIMENSIONS, "toStartOfHour(c.timestamp)", "raw", "hours", False, PRICE_MEASURES),
    Tier("rollup_route_hour", ROUTE_DIMENSIONS, "bucket", "rollup_hour", "hours"),
    Tier("rollup_day", MAIN_DIMENSIONS, "toStartOfDay(bucket)", "rollup_hour", "day"),
    Tier("rollup_compact_day", COMPACT_DIMENSIONS, "bucket", "rollup_day", "day"),
    Tier("rollup_customer_day", CUSTOMER_DIMENSIONS, "toStartOfDay(c.timestamp)", "raw", "day", False),
    Tier("rollup_customer_total_day", CUSTOMER_ONLY, "bucket", "rollup_customer_day", "day", False),
    Tier("rollup_user_day", USER_DIMENSIONS, "toStartOfDay(c.timestamp)", "raw", "day", False),
    Tier(
        "rollup_capacity_detail_minute", CAPACITY_DETAIL_DIMENSIONS, "toStartOfMinute(c.timestamp)", "raw", "hours",
        own_measures=CAPACITY_RAW_MEASURES, raw_columns=CAPACITY_RAW_COLUMNS,
    ),
    Tier(
        "rollup_capacity_minute", CAPACITY_DIMENSIONS, "bucket", "rollup_capacity_detail_minute", "hours",
        own_measures=CAPACITY_MERGED_MEASURES,
    ),
    Tier(
        "rollup_capacity_figures", CAPACITY_DIMENSIONS, "toStartOfHour(bucket)", "rollup_capacity_minute", "hours",
        own_measures=CAPACITY_DAY_MEASURES, fixed=(*CAPACITY_MODEL_FIGURES, ("grain", "'hour'")),
    ),
    Tier(
        "rollup_capacity_figures", CAPACITY_DIMENSIONS, "toStartOfDay(bucket)", "rollup_capacity_minute", "day",
        own_measures=CAPACITY_DAY_MEASURES, fixed=(*CAPACITY_MODEL_FIGURES, ("grain", "'day'")),
    ),
)  # fmt: skip


def _measures(tier: Tier) -> tuple[str, list[str]]:
    """The measure expressions and their column names for a tier (sketches only where kept)."""
    text = tier.own_measures or (RAW_MEASURES if tier.source == "raw" else MERGED_MEASURES)
    lines = [line for line in text.strip("\n").split(",\n") if tier.sketches or "_digest" not in line]
    return ",\n".join(lines), [line.rsplit(" AS ", 1)[1].strip() for line in lines]


def _insert_sql(tier: Tier, feedback: bool = True) -> str:
    """The tier's recompute statement; ``feedback=False``: for a project without feedback (from raw
    calls without the feedback join, the feedback measures zero: the same rows)."""
    dims = ", ".join(tier.dimensions)
    measures, names = _measures(tier)
    if tier.source == "raw" and not (feedback and "fb." in measures):
        measures, feedback = without_feedback(measures), False
    fixed = "".join(f", {c}" for c, _ in tier.fixed)
    target = f"{tier.table} (project_id, bucket, {dims}{fixed}, {', '.join(names)})"
    if tier.source == "raw":
        hour_filter = (
            "AND toStartOfHour(timestamp) IN {hours:Array(DateTime('UTC'))}"
            if tier.span == "hours"
            else "AND toStartOfDay(timestamp) IN {days:Array(DateTime('UTC'))}"
        )
        select_dims = ", ".join(f"{DIMENSION_EXPRESSIONS.get(d, 'c.' + d)} AS {d}" for d in tier.dimensions)
        if tier.raw_columns:
            source = (
                f"\nFROM (SELECT project_id, timestamp, {', '.join((*tier.dimensions, *tier.raw_columns))}"
                " FROM llm_calls FINAL WHERE project_id = {project:UInt64}"
                " AND timestamp >= {start:DateTime64(3, 'UTC')} AND timestamp < {end:DateTime64(3, 'UTC')}"
                f" {hour_filter}) AS c"
            )
            return (
                f"INSERT INTO {target} SELECT c.project_id AS project_id, {tier.bucket_expr} AS bucket, {select_dims},"
                f"\n{measures}{source}\nGROUP BY project_id, bucket, {dims}"
            )
        return (
            f"INSERT INTO {target} SELECT c.project_id AS project_id, {tier.bucket_expr} AS bucket, {select_dims},\n"
            f"{measures}{raw_source(hour_filter, feedback=feedback)}\n"
            f"GROUP BY project_id, bucket, {dims} SETTINGS join_use_nulls = 1"
        )
    dims_values = dims + "".join(f", {v} AS {c}" for c, v in tier.fixed)
    return (
        f"INSERT INTO {target} SELECT project_id, {tier.bucket_expr} AS bucket, {dims_values},\n{measures}\n"
        f"FROM {tier.source} FINAL WHERE project_id = {{project:UInt64}}"
        " AND bucket >= {start:DateTime('UTC')} AND bucket < {end:DateTime('UTC')}"
        + (
            " AND toStartOfHour(bucket) IN {hours:Array(DateTime('UTC'))}"
            if tier.span == "hours"
            else " AND toStartOfDay(bucket) IN {days:Array(DateTime('UTC'))}"
        )
        + f" GROUP BY project_id, bucket, {dims} HAVING calls > 0"
    )


def _tombstone_sql(tier: Tier) -> str:
    """Zero rows, under the new version, for dimension sets the recompute did not produce."""
    keys = f"project_id, bucket, {', '.join((*tier.dimensions, *(c for c, _ in tier.fixed)))}"
    hour_filter = (
        " AND toStartOfHour(bucket) IN {hours:Array(DateTime('UTC'))}"
        if tier.span == "hours"
        else " AND bucket IN {days:Array(DateTime('UTC'))}"
    ) + "".join(f" AND {c} = {v}" for c, v in tier.fixed)
    return (
        f"INSERT INTO {tier.table} ({keys}, version) SELECT {keys}, {{version:UInt64}} FROM {tier.table} FINAL"
        " WHERE project_id = {project:UInt64} AND bucket >= {start:DateTime('UTC')} AND bucket < {end:DateTime('UTC')}"
        f"{hour_filter} AND version < {{version:UInt64}} AND calls > 0"
    )


# Per tier: its recompute with the feedback join, without it (a project without feedback), the tombstones.
_STATEMENTS = [(tier, _insert_sql(tier), _insert_sql(tier, feedback=False), _tombstone_sql(tier)) for tier in TIERS]
_HAS_FEEDBACK = "SELECT count() > 0 FROM feedback WHERE project_id = {project:UInt64}"


def _kept(table: str) -> timedelta | None:
    """How long a tier keeps its rows (None: for good); older hours are not recomputed there."""
    if table == "rollup_minute":
        return timedelta(days=settings.CLICKHOUSE_MINUTE_TTL_DAYS)
    if table in ("rollup_hour", "rollup_route_hour", "rollup_price_hour", quantiles.HOUR_TABLE):
        return timedelta(days=settings.CLICKHOUSE_HOUR_TTL_DAYS)
    return None


def recompute(project_id: int, hours: Iterable[datetime]) -> None:
    """Recompute one project's dirty hours, then the day-level rows of the days they fall in.

    One statement per tier covers every dirty hour (or day) given, so a rebuild of months costs
    a dozen statements, not a dozen per day."""
    ch = get_clickhouse()
    version = time.time_ns() // 1000
    hour_list = sorted({h.astimezone(UTC).replace(minute=0, second=0, microsecond=0) for h in hours})
    day_list = sorted({h.replace(hour=0) for h in hour_list})
    now = datetime.now(UTC)
    # Feedback synced after this check marks its calls' hours dirty again (ledger.feedback): a
    # recompute without it is recomputed.
    has_feedback = bool(ch.command(_HAS_FEEDBACK, parameters={"project": project_id}))
    for tier, insert_fb, insert_no_fb, tombstone in _STATEMENTS:
        insert = insert_fb if has_feedback else insert_no_fb
        kept = _kept(tier.table)
        if tier.span == "hours":
            # the tier's TTL would drop older rows anyway: do not recompute them
            wanted = [h for h in hour_list if kept is None or h + timedelta(hours=1) >= now - kept]
            if not wanted:
                continue
            start, end = wanted[0], wanted[-1] + timedelta(hours=1)
        else:
            wanted, start, end = hour_list, day_list[0], day_list[-1] + timedelta(days=1)
        params = {
            "project": project_id, "start": start, "end": end, "hours": wanted, "days": day_list, "version": version,
        }  # fmt: skip
        ch.command(insert, parameters=params, settings=ROLLUP_INSERT_SETTINGS)
        ch.command(tombstone, parameters=params, settings=ROLLUP_INSERT_SETTINGS)
    # after the tiers whose digests they merge
    hour_kept = _kept("rollup_hour")
    kept_hours = [h for h in hour_list if hour_kept is None or h + timedelta(hours=1) >= now - hour_kept]
    quantiles.recompute(project_id, kept_hours, day_list, version)
    pool_days.recompute(project_id, day_list, version)  # after the model tier it sums


@dataclass
class RollupResult:
    hours: int = 0
    projects: int = 0
    has_more: bool = False
    project_ids: tuple[int, ...] = ()  # the projects whose rollups changed (budgets evaluate these)


def rollup_dirty(max_hours: int = 2000) -> RollupResult:
    """Claim the oldest dirty hours (``ledger.claims``) and recompute them, project by project.

    A project's marks are cleared right after its recompute, unless re-marked meanwhile (those stay
    dirty for the next rollup). If a recompute fails, the marks not yet recomputed are handed back
    and the error propagates. The claim is renewed while the rollup runs (``claims.kept``)."""
    token, marks = claim_dirty(max_hours)
    if not marks:
        return RollupResult()
    by_project: dict[int, list[Mark]] = defaultdict(list)
    for mark in marks:
        by_project[mark[1]].append(mark)
    projects = sorted(by_project)
    with kept(token):
        for i, project_id in enumerate(projects):
            try:
                recompute(project_id, [hour for _, _, hour, _ in by_project[project_id]])
            except BaseException:
                release_claim(token, [m for pid in projects[i:] for m in by_project[pid]])
                raise
            finish_claim(token, by_project[project_id])
    return RollupResult(
        hours=len(marks),
        projects=len(by_project),
        has_more=len(marks) == max_hours,
        project_ids=tuple(projects),
    )


def mark_range_dirty(start: datetime, end: datetime, project_id: int | None = None) -> int:
    """Mark every hour with raw calls in [start, end) dirty (for ``rollup --from --to``)."""
    sql = (
        "SELECT DISTINCT project_id, toStartOfHour(timestamp) FROM llm_calls"
        " WHERE timestamp >= {start:DateTime64(3, 'UTC')} AND timestamp < {end:DateTime64(3, 'UTC')}"
    )
    params: dict[str, object] = {"start": start, "end": end}
    if project_id is not None:
        sql += " AND project_id = {project:UInt64}"
        params["project"] = project_id
    hours: dict[int, set[datetime]] = defaultdict(set)
    for pid, hour in get_clickhouse().query(sql, parameters=params).result_rows:
        hours[int(pid)].add(hour.replace(tzinfo=UTC))
    mark_dirty(hours)
    return sum(len(h) for h in hours.values())
