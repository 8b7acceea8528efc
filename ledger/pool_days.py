"""A pool's figures per UTC day and hour (the rows of ``rollup_capacity_figures`` with ``pooled`` 1,
migration 0012).

A pool is a rate limit shared by several models (``ledger.models.RateLimit.pool_models``); its
minutes are its models' minutes summed, so its day figures (peaks, largest minutes, 429s, limits:
those of its models' rows) cannot be merged from theirs. They are written from the
model tier (``rollup_capacity_minute``) for the pools configured at the time: by the rollup for the
days it recomputes (:func:`recompute`, with tombstones like every tier) and for a pool's whole
history when a limit is saved or deleted (:func:`refresh`). Each row records the ``members`` it
summed; ``ledger.capacity`` uses a row only while they are the pool's current models, and reads the
minutes for every other day, so a stale or missing row never changes an answer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime

from ledger.clickhouse.client import get_clickhouse
from ledger.measures import CAPACITY_DAY_MEASURES, ROLLUP_INSERT_SETTINGS, latest_limits
from ledger.models import RateLimit

log = logging.getLogger(__name__)
FIGURES_TABLE = "rollup_capacity_figures"
MINUTE_TABLE = "rollup_capacity_minute"
_NAMES = [line.rsplit(" AS ", 1)[1].strip() for line in CAPACITY_DAY_MEASURES.split(",\n")]
# One pool's minutes summed (named like the model tier's columns, so the day measures apply), then
# its day figures.
_INSERT = (
    f"INSERT INTO {FIGURES_TABLE} (project_id, bucket, provider, model, pooled, grain, members, {', '.join(_NAMES)})"  # noqa: S608
    " SELECT project_id, $bucket AS bucket, provider, model, 1 AS pooled, $grain AS grain,"
    " {members:Array(String)} AS members,\n"
    f"{CAPACITY_DAY_MEASURES}\n"
    " FROM (SELECT m.project_id AS project_id, m.bucket AS bucket, m.provider AS provider, {pool:String} AS model,"
    " sum(m.calls) AS calls, sum(m.input_tokens) AS input_tokens, sum(m.cache_read_tokens) AS cache_read_tokens,"
    " sum(m.output_tokens) AS output_tokens, sum(m.rate_limited_calls) AS rate_limited_calls,\n"
    + ",\n".join(latest_limits("m"))
    + f"\n FROM {MINUTE_TABLE} AS m FINAL WHERE m.project_id = {{project:UInt64}} AND m.provider = {{provider:String}}"
    " AND toString(m.model) IN {members:Array(String)} AND toStartOfDay(m.bucket) IN {days:Array(DateTime('UTC'))}"
    f" GROUP BY project_id, bucket, provider) AS {MINUTE_TABLE}"
    " GROUP BY project_id, bucket, provider, model HAVING calls > 0"
)
_TOMBSTONE = (
    f"INSERT INTO {FIGURES_TABLE} (project_id, bucket, provider, model, pooled, grain, version)"  # noqa: S608
    f" SELECT project_id, bucket, provider, model, pooled, grain, {{version:UInt64}} FROM {FIGURES_TABLE} FINAL"
    " WHERE project_id = {project:UInt64} AND toStartOfDay(bucket) IN {days:Array(DateTime('UTC'))}"
    " AND pooled = 1 AND version < {version:UInt64} AND calls > 0"
)
# Each grain with its bucket: the days' figures and the hours'.
_GRAINS = (("'day'", "toStartOfDay(bucket)"), ("'hour'", "toStartOfHour(bucket)"))
_DAYS = (
    f"SELECT DISTINCT bucket FROM {FIGURES_TABLE} FINAL WHERE project_id = {{project:UInt64}}"  # noqa: S608
    " AND pooled = 0 AND grain = 'day' AND (provider, model) IN {pairs:Array(Tuple(String, String))} AND calls > 0"
    " ORDER BY bucket"
)


def pools(project_id: int) -> list[RateLimit]:
    """The project's limits that pool several models (a model's own limit is no pool)."""
    return [limit for limit in RateLimit.objects.filter(project_id=project_id) if limit.members != [limit.model]]


def signature(provider: str, name: str, members: Sequence[str]) -> str:
    """What a row must record to stand for a pool: its provider, name and models."""
    return "\x00".join([provider, name, *members])


def recompute(project_id: int, days: Sequence[datetime], version: int | None = None) -> None:
    """Write the day and hour figures of the project's pools for ``days`` (UTC midnights), then
    tombstones for the rows of those days the recompute did not write again."""
    if not days:
        return
    ch = get_clickhouse()
    version = version or time.time_ns() // 1000
    params = {"project": project_id, "days": sorted(days), "version": version}
    configured = pools(project_id)
    for grain, bucket in _GRAINS:
        insert = _INSERT.replace("$grain", grain).replace("$bucket", bucket)
        for limit in configured:
            ch.command(
                insert,
                parameters={**params, "provider": limit.provider, "pool": limit.model, "members": limit.members},
                settings=ROLLUP_INSERT_SETTINGS,
            )
    ch.command(_TOMBSTONE, parameters=params, settings=ROLLUP_INSERT_SETTINGS)


def refresh(project_id: int) -> None:
    """Rewrite the pools' figures for every day their models have traffic (a pool was saved or deleted)."""
    pairs = [(limit.provider, member) for limit in pools(project_id) for member in limit.members]
    ch = get_clickhouse()
    days = (
        [
            d.replace(tzinfo=UTC)
            for (d,) in ch.query(_DAYS, parameters={"project": project_id, "pairs": pairs}).result_rows
        ]
        if pairs
        else []
    )
    days += [  # the days of the rows of pools no longer configured so, to tombstone
        d.replace(tzinfo=UTC)
        for (d,) in ch.query(
            f"SELECT DISTINCT toStartOfDay(bucket) FROM {FIGURES_TABLE} FINAL"  # noqa: S608
            " WHERE project_id = {project:UInt64} AND pooled = 1 AND calls > 0",
            parameters={"project": project_id},
        ).result_rows
    ]
    recompute(project_id, sorted(set(days)))


def refresh_quietly(project_id: int) -> None:
    """:func:`refresh`, logging a failure instead of raising it: the capacity answer stays exact
    without the rows (it reads the minutes), so saving a limit never fails on it."""
    try:
        refresh(project_id)
    except Exception:
        log.warning("could not refresh the pool figures of project %s", project_id, exc_info=True)
