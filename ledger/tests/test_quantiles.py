"""Precomputed latency and TTFT percentiles (ledger.quantiles): the answer merging the digests gives,
within the sketch's rank error of the raw table's exact quantiles, through late data, re-sends and
reprices; every other query still merges the digests."""

from __future__ import annotations

import json
import math
import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.test import override_settings

from ingest.accept import accept
from ingest.drain import drain_until_empty
from ledger import quantiles
from ledger.clickhouse.client import get_clickhouse
from ledger.clickhouse.migrate import discover
from ledger.dirty import mark_dirty
from ledger.models import PriceOverride
from ledger.queries import UsageQuery, usage
from ledger.reprice import reprice
from ledger.rollups import rollup_dirty
from ledger.tests.statements import Statements
from ledger.usage_batches import usage_many
from tenancy.models import Project

DAY0 = (datetime.now(UTC) - timedelta(days=4)).replace(hour=0, minute=0, second=0, microsecond=0)
START, END = DAY0, DAY0 + timedelta(days=2)
MODELS = [("openai", "gpt-4o"), ("openai", "gpt-4o-mini"), ("anthropic", "claude-haiku-4-5"), ("acme", "mystery")]
HOURS = [0, 1, 13, 23, 24, 30, 47]  # hours after DAY0 with traffic (day edges included)
PERCENTILES = ("ttft_p50", "ttft_p95", "ttft_p99", "latency_p50", "latency_p95", "latency_p99")
METRICS = ("calls", "cost", "errors", "error_rate", *PERCENTILES)


def make_calls(n: int, seed: int, prefix: str = "e") -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        provider, model = rng.choice(MODELS)
        latency = rng.lognormvariate(7, 0.8) if rng.random() > 0.1 else None
        call = {
            "event_id": f"{prefix}{i}",
            "timestamp": (DAY0 + timedelta(hours=rng.choice(HOURS), seconds=rng.randrange(3600))).isoformat(),
            "provider": provider, "model": model, "feature": rng.choice(["chat", "search", "extract"]),
            "route_version": rng.choice(["v1", "v2"]), "environment": rng.choice(["prod", "staging"]),
            "status": rng.choice(["ok", "ok", "ok", "error"]),
            "input_tokens": rng.randrange(10, 5000), "output_tokens": rng.randrange(1, 800),
        }  # fmt: skip
        if latency is not None:
            call["latency_ms"] = latency
            if rng.random() > 0.3:
                call["ttft_ms"] = latency / rng.uniform(2, 6)
        out.append(call)
    return out


def send(project: Project, calls: list[dict[str, Any]]) -> None:
    for i in range(0, len(calls), 500):
        answer = accept(project, json.dumps({"calls": calls[i : i + 500]}).encode(), None)
        assert answer.body["rejected"] == []
    drain_until_empty()
    while rollup_dirty().has_more:
        pass


def merged(q: UsageQuery) -> Any:
    """What the query answers merging the TDigest states (no precomputed percentiles)."""
    with override_settings(LEDGER_PRECOMPUTED_QUANTILES=False):
        return usage(q)


def assert_same(q: UsageQuery, *, precomputed: bool) -> list[dict[str, Any]]:
    fast, slow = usage(q), merged(q)
    assert (fast.source in quantiles.TABLES) is precomputed, (q, fast.source)
    assert slow.source not in quantiles.TABLES
    assert fast.truncated == slow.truncated
    assert fast.rows == slow.rows, (q, fast.source, slow.source)
    return fast.rows


SPECS: list[dict[str, Any]] = [
    {"granularity": "hour", "group_by": ()},
    {"granularity": "hour", "group_by": ("model",)},
    {"granularity": "hour", "group_by": ("feature",)},
    {"granularity": "hour", "group_by": ("route_version", "model")},
    {"granularity": "hour", "group_by": ("provider", "model", "route_version"), "filters": {"model": ("gpt-4o",)}},
    {"granularity": "day", "group_by": ()},
    {"granularity": "day", "group_by": ("provider", "model")},
    {"granularity": "day", "group_by": ("feature", "model")},
    {"granularity": "day", "group_by": ("route_version",), "filters": {"route_version": ("v1",)}},
]


def check_precomputed(project: Project) -> None:
    for spec in SPECS:
        q = UsageQuery(project.pk, START, END, metrics=METRICS, limit=100, **spec)
        assert_same(q, precomputed=True)


@pytest.mark.django_db
def test_precomputed_equal_merged_and_within_rank_error_of_raw(project: Project) -> None:
    send(project, make_calls(3000, seed=1))
    check_precomputed(project)
    # and within the sketch's rank error of the exact quantiles of the raw calls, per hour and model
    rows = usage(UsageQuery(project.pk, START, END, "hour", ("model",), metrics=METRICS, limit=100)).rows
    exact = {
        (int(b.timestamp()), m): (lo, hi)
        for b, m, lo, hi in get_clickhouse()
        .query(
            "SELECT toStartOfHour(timestamp), toString(model), quantileExact(0.90)(latency_ms),"
            " quantileExact(0.995)(latency_ms) FROM llm_calls FINAL WHERE project_id = {p:UInt64}"
            " AND latency_ms IS NOT NULL GROUP BY ALL",
            parameters={"p": project.pk},
        )
        .result_rows
    }
    checked = 0
    for row in rows:
        key = (int(row["bucket"].timestamp()), row["model"])
        if key not in exact:
            assert row["latency_p95"] is None
            continue
        lo, hi = exact[key]
        assert lo * (1 - 1e-5) <= row["latency_p95"] <= hi * (1 + 1e-5), key
        checked += 1
    assert checked >= len(HOURS) * len(MODELS) - 2


@pytest.mark.django_db
def test_a_breakdown_over_precomputed_percentiles_is_one_read(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ranked by a sum with no "(other)", the groups are ranked from the cells of one statement: the
    same answer as a ranking statement first (top groups, ties by label, the cut), in one read; a
    grouping with more cells than ``limit + 1`` groups hold takes the two statements."""
    send(project, make_calls(1500, seed=5))
    statements = Statements(monkeypatch)
    cases: list[tuple[dict[str, Any], bool]] = [  # (the query, whether groups are cut)
        ({"group_by": ("model",), "limit": 100}, False),  # every group kept
        ({"group_by": ("model",), "limit": 2}, True),  # the two biggest by cost
        ({"group_by": ("provider", "model"), "limit": 3, "order_by": "calls"}, True),
        ({"group_by": ("feature",), "limit": 1, "order_by": "errors"}, True),
        ({"group_by": ("route_version", "model"), "limit": 5, "granularity": "day"}, True),
    ]
    for case, cut in cases:
        spec: dict[str, Any] = {"granularity": "hour", "metrics": ("latency_p95", "calls", "cost"), **case}
        q = UsageQuery(project.pk, START, END, **spec)
        statements.count = 0
        fast = usage(q)
        assert statements.count == 1, case
        assert fast.source in quantiles.TABLES
        slow = merged(q)
        assert fast.truncated == slow.truncated == cut, case
        assert fast.rows == slow.rows, case
        kept = len({tuple(r[d] for d in case["group_by"]) for r in fast.rows})
        assert kept == case["limit"] if cut else 0 < kept <= case["limit"], case
    # Equal totals (no errors among ok calls): the groups in label order, as the ranking statement has them.
    q = UsageQuery(
        project.pk, START, END, "hour", ("model",), metrics=("calls",), order_by="errors", limit=2,
        filters={"status": ("ok",)},
    )  # fmt: skip
    fast = usage(q)
    assert list(dict.fromkeys(r["model"] for r in fast.rows)) == sorted(m for _, m in MODELS)[:2]
    assert fast.rows == merged(q).rows
    # More cells than limit + 1 groups can hold: answered by the ranking statement and the cells'.
    monkeypatch.setattr("ledger.queries.buckets", lambda *args: iter(()))  # a guard of limit + 1 cells
    q = UsageQuery(project.pk, START, END, "hour", ("model",), metrics=("latency_p95", "calls"), limit=2)
    statements.count = 0
    fast = usage(q)
    assert statements.count == 3  # the one read, then the ranking and the cells
    assert fast.rows == merged(q).rows
    assert fast.truncated


@pytest.mark.django_db
def test_late_data_resends_and_reprices_keep_it_right(project: Project) -> None:
    first = make_calls(1500, seed=2)
    send(project, first)
    check_precomputed(project)
    # late calls and client re-sends into hours already rolled up
    send(project, make_calls(700, seed=3, prefix="late") + first[:300])
    check_precomputed(project)
    # a correction (a newer version of each call, as a reprice writes) moves every "mystery" call of
    # the first hour to another model: that group's precomputed cell must go (a tombstone)
    get_clickhouse().command(
        "INSERT INTO llm_calls SELECT * REPLACE ('openai' AS provider, 'gpt-4o' AS model, version + 1 AS version)"
        " FROM (SELECT * FROM llm_calls FINAL WHERE project_id = {p:UInt64} AND model = 'mystery'"
        " AND toStartOfHour(timestamp) = {h:DateTime('UTC')})",
        parameters={"p": project.pk, "h": DAY0},
    )
    left = get_clickhouse().command(
        "SELECT count() FROM llm_calls FINAL WHERE project_id = {p:UInt64} AND model = 'mystery'"
        " AND toStartOfHour(timestamp) = {h:DateTime('UTC')}",
        parameters={"p": project.pk, "h": DAY0},
    )
    assert int(left) == 0
    mark_dirty({project.pk: {DAY0}})
    send(project, [])
    check_precomputed(project)
    q = UsageQuery(project.pk, DAY0, DAY0 + timedelta(hours=1), "hour", ("model",), metrics=METRICS)
    cells = {r["model"]: r for r in usage(q).rows}
    assert cells.get("mystery", {"calls": 0})["calls"] == 0
    assert cells.get("mystery", {"latency_p95": None})["latency_p95"] is None
    PriceOverride.objects.create(
        project=project, provider="openai", model="gpt-4o", effective_from=DAY0,
        input_per_mtok=Decimal("1.1"), output_per_mtok=Decimal("3.3"),
    )  # fmt: skip
    before = usage(UsageQuery(project.pk, START, END, "day", ("model",), metrics=METRICS)).rows
    reprice(project.pk, START, END)
    send(project, [])
    check_precomputed(project)
    after = usage(UsageQuery(project.pk, START, END, "day", ("model",), metrics=METRICS)).rows
    cells_before = {(r["bucket"], r["model"]): r for r in before}
    cells_after = {(r["bucket"], r["model"]): r for r in after}
    assert cells_after.keys() == cells_before.keys()
    changed = [k for k in cells_after if cells_after[k]["cost"] != cells_before[k]["cost"]]
    assert changed  # the reprice reached the precomputed sums
    assert all(k[1] == "gpt-4o" for k in changed)
    assert all(cells_after[k]["latency_p95"] == cells_before[k]["latency_p95"] for k in cells_after)


@pytest.mark.django_db
def test_other_queries_merge_the_digests(project: Project) -> None:
    send(project, make_calls(1500, seed=4))
    p = project.pk

    def q(**kw: Any) -> UsageQuery:
        return UsageQuery(
            **{"project_id": p, "start": START, "end": END, "granularity": "hour", "metrics": METRICS, **kw}
        )

    fallbacks = [
        q(granularity="day", tz="America/New_York"),  # days off UTC
        q(granularity="hour", tz="Asia/Kolkata"),  # hours off whole UTC hours
        q(start=START + timedelta(minutes=30)),  # not on whole buckets
        q(granularity="day", end=END - timedelta(hours=2)),
        q(group_by=("model",), filters={"feature": ("chat",)}),  # a filter on a dimension not grouped
        q(group_by=("environment",)),  # a grouping not precomputed
        q(group_by=("model",), order_by="latency_p95"),  # ranked by a percentile of the range
        q(granularity=None, group_by=("model",), start=START + timedelta(hours=1)),  # a total off whole days
        q(granularity=None, group_by=("environment",)),  # a total of a grouping not precomputed
        q(granularity="minute", start=END - timedelta(days=1)),
    ]
    for query in fallbacks:
        assert_same(query, precomputed=False)
    precomputed = [
        q(tz="Europe/Paris"),  # whole-hour offsets: each local hour is one UTC hour
        q(group_by=("model",), order_by="calls", limit=4, other="(other)"),  # no rest to fold
        # a folded rest: the kept groups read precomputed cells, the rest merges its groups' sketches
        q(group_by=("model",), order_by="calls", limit=2, other="(other)"),
        q(granularity="day", group_by=("feature", "model"), order_by="cost", limit=3, other="(other)"),
        q(group_by=("model",), order_by="error_rate", limit=2, other="(other)"),  # ranked apart, then folded
        q(group_by=("model",), order_by="calls", limit=3),  # the top 3, ranked by calls
        q(group_by=("model",), order_by="error_rate", limit=3),  # ranked by a ratio of sums
    ]
    for query in precomputed:
        assert_same(query, precomputed=True)
    rest = usage(q(group_by=("model",), order_by="calls", limit=2, other="(other)")).rows
    assert any(r["model"] == "(other)" and r["calls"] and r["latency_p95"] for r in rest)
    # one statement for several queries (no ranking statement): a fold that might have a rest merges
    folded = q(group_by=("model",), order_by="calls", limit=4, other="(other)")
    [many] = usage_many([folded])
    assert many.source not in quantiles.TABLES
    assert many.rows == merged(folded).rows


@pytest.mark.django_db
def test_totals_over_whole_days_merge_the_days_states(project: Project) -> None:
    send(project, make_calls(3000, seed=6))
    p = project.pk
    exact = {
        m: (lo, hi)
        for m, lo, hi in get_clickhouse()
        .query(
            "SELECT toString(model), quantileExact(0.90)(latency_ms), quantileExact(0.995)(latency_ms)"
            " FROM llm_calls FINAL WHERE project_id = {p:UInt64} AND latency_ms IS NOT NULL GROUP BY ALL",
            parameters={"p": p},
        )
        .result_rows
    }
    specs: list[dict[str, Any]] = [
        {"group_by": ("model",)},
        {"group_by": ("model",), "order_by": "latency_p95", "limit": 2},  # ranked by the range's percentile
        {"group_by": ("route_version",), "filters": {"route_version": ("v1", "v2")}},
        {"group_by": ()},
    ]
    for spec in specs:
        q = UsageQuery(p, START, END, None, metrics=METRICS, **{"limit": 100, **spec})
        fast, slow = usage(q), merged(q)
        assert fast.source == quantiles.DAY_TABLE, spec
        assert slow.source not in quantiles.TABLES
        assert fast.truncated == slow.truncated
        dims = q.group_by
        assert [tuple(r[d] for d in dims) for r in fast.rows] == [tuple(r[d] for d in dims) for r in slow.rows]
        for a, b in zip(fast.rows, slow.rows, strict=True):
            assert {k: v for k, v in a.items() if k not in PERCENTILES} == {
                k: v for k, v in b.items() if k not in PERCENTILES
            }  # the sums are the tier's, to the pico-dollar
            if "model" in dims:
                lo, hi = exact[a["model"]]
                assert lo * (1 - 1e-5) <= a["latency_p95"] <= hi * (1 + 1e-5), (spec, a["model"])
            for name in PERCENTILES:  # the same sketch, merged in two steps: within its rank error
                assert a[name] == pytest.approx(b[name], rel=0.05), (spec, name)
    ranked = usage(UsageQuery(p, START, END, None, ("model",), metrics=METRICS, order_by="latency_p95", limit=100))
    p95s = [r["latency_p95"] for r in ranked.rows if r["latency_p95"] is not None]
    assert p95s == sorted(p95s, reverse=True)


@pytest.mark.django_db
def test_migration_backfill_writes_what_the_rollup_writes(project: Project) -> None:
    send(project, make_calls(800, seed=5))
    ch = get_clickhouse()

    def stored() -> dict[str, Any]:
        states = {
            quantiles.HOUR_TABLE: "",
            quantiles.DAY_TABLE: ", quantilesTDigestMerge(0.5, 0.95, 0.99)(ttft_digest) AS ts,"
            " quantilesTDigestMerge(0.5, 0.95, 0.99)(latency_digest) AS ls",
        }
        return {
            table: ch.query(
                f"SELECT * EXCEPT (version, ttft_digest, latency_digest){states[table]} FROM"
                f" (SELECT * FROM {table} FINAL WHERE project_id = {{p:UInt64}} AND calls > 0)"
                " GROUP BY ALL ORDER BY grouped_by, bucket, feature, provider, model, route_version",
                parameters={"p": project.pk},
            ).result_rows
            if table == quantiles.DAY_TABLE
            else ch.query(
                f"SELECT * EXCEPT version FROM {table} FINAL WHERE project_id = {{p:UInt64}} AND calls > 0"
                " ORDER BY grouped_by, bucket, feature, provider, model, route_version",
                parameters={"p": project.pk},
            ).result_rows
            for table in quantiles.TABLES
        }

    written = stored()
    assert all(written.values())
    assert any(not math.isnan(row[-1][1]) for row in written[quantiles.DAY_TABLE])  # the states were written
    # Each table's latest backfill: the hours' from 0013, the days' (with their states) from 0014.
    migrations = {m.name: m for m in discover()}
    hours = [s for s in migrations["rollup_quantiles"].written() if s.startswith("INSERT INTO rollup_quantile_hour")]
    days = [s for s in migrations["rollup_quantile_day_digests"].written() if s.startswith("INSERT")]
    assert len(hours) == len(days) == 1
    for statement in hours + days:
        ch.command(statement)
    assert repr(stored()) == repr(written)  # NaN included
