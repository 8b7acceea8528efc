"""Several usage queries in one statement: :func:`usage_many` (any queries with the same metrics,
UNION ALL) and :func:`usage_breakdowns` (totals breakdowns of one selection, parts over the same
table read once as grouping sets). Each result is what ``ledger.queries.usage`` would answer."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from ledger.clickhouse.client import get_clickhouse
from ledger.queries import (
    QueryError,
    UsageQuery,
    UsageResult,
    _build,
    _prepare,
    _Prepared,
    _rows,
    _select_metrics,
    _shape,
    bucket_sql,
)
from ledger.read_threads import read_settings


def _prefix_params(sql: str, bound: dict[str, Any], prefix: str) -> str:
    """``sql`` with each ``{name:Type}`` placeholder of a parameter in ``bound`` renamed ``prefix + name``."""

    def rename(match: re.Match[str]) -> str:
        name = match.group(1)
        return "{" + (prefix if name in bound else "") + name + ":"

    return re.sub(r"\{([A-Za-z_][A-Za-z0-9_]*):", rename, sql)


def usage_many(queries: Sequence[UsageQuery]) -> list[UsageResult]:
    """Several usage queries answered by ONE statement (UNION ALL), each result what :func:`usage`
    would answer. Each must be one statement on its own (not a breakdown over time ranked by a
    percentile or ratio, which :class:`QueryError` refuses) and all must ask for the same metrics."""
    if not queries:
        return []
    if len({tuple(dict.fromkeys([*q.metrics, q.order_by])) for q in queries}) > 1:
        raise QueryError("queries answered together must ask for the same metrics")
    parts, params, finishes = [], {}, []
    tables: list[str] = []
    for i, q in enumerate(queries):
        built = _build(q, prequery=False)
        tables += built.tables
        # One column layout for every part (the groups as an array of strings, below), and the
        # part's parameters with a prefix of their own, so parts with other filters never clash.
        head = f"SELECT {bucket_sql(q.granularity, 'bucket')} AS b, "
        if not built.sql.startswith(head):
            raise QueryError("a usage statement of an unexpected shape")
        inner = (
            f"SELECT toUInt16({i}) AS part, toInt64({bucket_sql(q.granularity, 'bucket')}) AS b, "
            + built.sql[len(head) :]
        )
        inner = _prefix_params(inner, built.params, f"q{i}_")
        prefix = f"q{i}_"
        params.update({prefix + k: v for k, v in built.params.items()})
        groups = list(q.group_by)
        keys = ", ".join(f"g_{d}" for d in groups)
        metric_cols = ", ".join(f"m_{m}" for m in dict.fromkeys([*q.metrics, q.order_by]))
        parts.append(f"SELECT part, b, [{keys}]::Array(String) AS groups, {metric_cols} FROM ({inner})")
        finishes.append((groups, built.finish))
    result = get_clickhouse().query(
        " UNION ALL ".join(parts), parameters=params, caller="ledger.queries.usage_many", settings=read_settings(tables)
    )
    by_part: dict[int, list[dict[str, Any]]] = {i: [] for i in range(len(queries))}
    for row in _rows(result):
        by_part[int(row.pop("part"))].append(row)
    out = []
    for i, (groups, finish) in enumerate(finishes):
        rows = [{**{d: r["groups"][j] for j, d in enumerate(groups)}, **r} for r in by_part[i]]
        out.append(finish(rows))
    return out


def usage_breakdowns(base: UsageQuery, parts: Sequence[tuple[tuple[str, ...], int]]) -> list[UsageResult]:
    """Several totals breakdowns of one selection (same range and filters), each ``(group_by, limit)``
    ranked by ``base.order_by`` with ``base.metrics``, answered by one statement (UNION ALL, each part
    over the smallest table that holds its dimensions: top features from the compact day tier, top
    customers from the customer totals; parts over the same table read it once, as grouping sets).
    Each result is what :func:`usage` would answer."""
    if base.granularity is not None:
        raise QueryError("breakdowns are totals: granularity must be None")
    if not parts or any(not group_by for group_by, _ in parts):
        raise QueryError("each breakdown needs a group_by")
    metrics = list(dict.fromkeys(base.metrics))
    prepared = [_prepare(replace(base, group_by=group_by, limit=limit)) for group_by, limit in parts]
    # Parts that read the same table under the same conditions share one scan (each grouping set
    # once in it: a part grouping by the same dimensions as another starts a scan of its own).
    scans: list[tuple[tuple[str, str, str], list[int]]] = []
    for i, p in enumerate(prepared):
        key = (p.source, p.where_sql, repr(sorted(p.params.items())))
        scan = next((m for k, m in scans if k == key and all(set(parts[j][0]) != set(parts[i][0]) for j in m)), None)
        if scan is None:
            scans.append((key, [i]))
        else:
            scan.append(i)
    selects, params = [], {}
    for n, (_, members) in enumerate(scans):
        p = prepared[members[0]]
        sql = _breakdown_scan(p, [(i, *parts[i]) for i in members], metrics, base.order_by)
        # Each scan's parameters under a prefix of its own: scans over different tables may bind
        # their bounds differently.
        selects.append(_prefix_params(sql, p.params, f"q{n}_"))
        params.update({f"q{n}_{k}": v for k, v in p.params.items()})
    result = get_clickhouse().query(
        " UNION ALL ".join(selects),
        parameters=params,
        caller="ledger.queries.usage_breakdowns",
        # grouping(): 1 for a column NOT in the set
        settings={"force_grouping_standard_compatibility": 1, **read_settings(p.source_name for p in prepared)},
    )
    names = [c.removeprefix("m_") for c in result.column_names]
    by_part: dict[int, list[dict[str, Any]]] = {i: [] for i in range(len(parts))}
    for raw in result.result_rows:
        row = dict(zip(names, raw, strict=True))
        by_part[int(row["part"])].append(row)
    out = []
    for i, ((group_by, limit), p) in enumerate(zip(parts, prepared, strict=True)):
        ranked = sorted(by_part[i], key=lambda r: int(r["rn"]))  # each part in its rank order
        rows = [{"b": 0, **{d: r["g"][j] for j, d in enumerate(group_by)}, **r} for r in ranked]
        truncated = len(rows) > limit
        shaped = _shape(rows[:limit], p.q, p.tz, p.start, p.end, list(group_by), metrics, [()])
        out.append(UsageResult(shaped, truncated, p.source_name))
    return out


def _breakdown_scan(
    p: _Prepared, members: list[tuple[int, tuple[str, ...], int]], metrics: list[str], order_by: str
) -> str:
    """One SELECT answering the breakdowns ``members`` ((part, group_by, limit), all over ``p``'s table
    and conditions): columns part, g (the group's values as strings), the metrics, rn (its rank).
    Each part ranks by ``order_by`` descending, then its dimensions, and keeps ``limit + 1`` groups."""
    select_metrics = _select_metrics([*metrics, order_by])
    if len(members) == 1:
        i, group_by, limit = members[0]
        keys, columns = ", ".join(f"toString({d})" for d in group_by), ", ".join(group_by)
        return (
            f"SELECT part, g, {_metric_columns(metrics, order_by)},"
            f" row_number() OVER (ORDER BY m_{order_by} DESC, {columns}) AS rn FROM ("
            f"SELECT toUInt8({i}) AS part, [{keys}] AS g, {columns}, {select_metrics}"
            f" FROM {p.source} {p.where_kw} {p.where_sql} GROUP BY {columns}"
            f" ORDER BY m_{order_by} DESC, {columns} LIMIT {limit + 1})"
        )
    dims = list(dict.fromkeys(d for _, group_by, _ in members for d in group_by))
    # grouping(dims): one bit per dimension, the first the most significant, set where the row's
    # grouping set does not hold that dimension (the standard's meaning, asked for by the caller).
    masks = [
        sum(1 << (len(dims) - 1 - k) for k, d in enumerate(dims) if d not in group_by) for _, group_by, _ in members
    ]
    sets = list(zip(masks, members, strict=True))
    part = "multiIf(" + "".join(f"gid = {m}, {i}, " for m, (i, _, _) in sets) + "255)"
    g = "multiIf(" + "".join(f"gid = {m}, [{', '.join(f'toString({d})' for d in gb)}], " for m, (_, gb, _) in sets)
    limits = "multiIf(" + "".join(f"gid = {m}, {lim + 1}, " for m, (_, _, lim) in sets) + "0)"
    grouping_sets = ", ".join(f"({', '.join(group_by)})" for _, group_by, _ in members)
    columns = ", ".join(dims)
    # Dimensions outside a row's grouping set hold one default value throughout it, so ordering by
    # all of them ranks each set by its own dimensions, as its own statement would.
    return (
        f"SELECT toUInt8({part}) AS part, {g}[]) AS g, {_metric_columns(metrics, order_by)}, rn FROM ("
        f"SELECT *, row_number() OVER (PARTITION BY gid ORDER BY m_{order_by} DESC, {columns}) AS rn FROM ("
        f"SELECT grouping({columns}) AS gid, {columns}, {select_metrics}"
        f" FROM {p.source} {p.where_kw} {p.where_sql} GROUP BY GROUPING SETS ({grouping_sets})))"
        f" WHERE rn <= {limits}"
    )


def _metric_columns(metrics: Sequence[str], order_by: str) -> str:
    return ", ".join(f"m_{m}" for m in dict.fromkeys([*metrics, order_by]))
