"""Property: whatever the traffic, grouping and filter, the query module's rollup answer equals
the same aggregate computed straight from the raw table — with duplicates, late arrivals after a
bucket was rolled up, feedback, and a reprice of a range."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.accept import accept
from ingest.drain import drain_until_empty
from ledger.clickhouse.client import get_clickhouse
from ledger.feedback import sync_feedback
from ledger.models import Feedback, PriceOverride
from ledger.pricing import pusd_to_usd
from ledger.queries import UsageQuery, usage
from ledger.reprice import reprice
from ledger.rollups import rollup_dirty
from ledger.whatif import Target, whatif
from tenancy.models import Organization, Project

DAY0 = (datetime.now(UTC) - timedelta(days=4)).replace(hour=0, minute=0, second=0, microsecond=0)
START, END = DAY0, DAY0 + timedelta(days=3)
MODELS = [("openai", "gpt-4o"), ("openai", "gpt-4o-mini"), ("anthropic", "claude-haiku-4-5"), ("acme", "mystery")]
_projects = itertools.count()

record = st.fixed_dictionaries(
    {
        "event_id": st.sampled_from([f"e{i}" for i in range(40)]),
        # a few hours spread over three days (day edges included) keep each example quick
        "minute": st.sampled_from([0, 13 * 60, 24 * 60 - 1, 24 * 60, 47 * 60 + 30, 50 * 60]).flatmap(
            lambda m: st.integers(m, m + 59)
        ),
        "model": st.sampled_from(MODELS),
        "feature": st.sampled_from(["chat", "search", "extract"]),
        "customer_id": st.sampled_from(["acme", "globex", "initech", ""]),
        "user_id": st.sampled_from(["u1", "u2", "u3"]),
        "route_version": st.sampled_from(["v1", "v2"]),
        "status": st.sampled_from(["ok", "ok", "ok", "error", "timeout"]),
        "traffic": st.sampled_from(["live", "live", "eval", "shadow"]),
        "attempt": st.integers(1, 3),
        "cache_hit": st.booleans(),
        "service_tier": st.sampled_from(["default", "batch"]),
        "input_tokens": st.integers(0, 50_000),
        "cached_share": st.floats(0, 1),
        "output_tokens": st.integers(0, 5_000),
        "latency_ms": st.one_of(st.none(), st.floats(1, 60_000)),
    }
)


def to_call(r: dict[str, Any]) -> dict[str, Any]:
    provider, model = r["model"]
    cache_read = int(r["input_tokens"] * r["cached_share"])
    ts = START + timedelta(minutes=r["minute"], seconds=17)
    call = {
        "event_id": r["event_id"], "timestamp": ts.isoformat(), "provider": provider, "model": model,
        "feature": r["feature"], "customer_id": r["customer_id"], "user_id": r["user_id"],
        "route_version": r["route_version"], "status": r["status"], "traffic": r["traffic"],
        "attempt": r["attempt"], "cache_hit": r["cache_hit"], "service_tier": r["service_tier"],
        "input_tokens": r["input_tokens"], "cache_read_tokens": cache_read, "output_tokens": r["output_tokens"],
    }  # fmt: skip
    if r["latency_ms"] is not None:
        call["latency_ms"] = r["latency_ms"]
        call["ttft_ms"] = r["latency_ms"] / 3
    return call


def send(project: Project, records: list[dict[str, Any]]) -> None:
    # Same event_id means the same call: a client re-sending it sends the same record.
    by_id = {r["event_id"]: r for r in records}
    if by_id:
        answer = accept(project, json.dumps({"calls": [to_call(r) for r in by_id.values()]}).encode(), None)
        assert answer.body["rejected"] == []
    drain_until_empty()
    sync_feedback()
    while rollup_dirty().has_more:
        pass


QUERIES: list[dict[str, Any]] = [
    {"granularity": "day", "group_by": ()},
    {"granularity": "day", "group_by": ("feature",)},
    {"granularity": "hour", "group_by": ("model", "route_version")},  # precomputed percentiles
    {"granularity": "hour", "group_by": ("route",)},  # no precomputed percentiles by route: merged
    {"granularity": "minute", "group_by": ("status",), "days": 1},
    {"granularity": None, "group_by": ("traffic", "provider")},
    {"granularity": "day", "group_by": ("feature",), "filters": {"model": ("gpt-4o", "claude-haiku-4-5")}},
    {"granularity": "hour", "group_by": ("traffic",), "filters": {"status": ("ok",)}},
    {"granularity": "hour", "group_by": ("customer_id",)},  # no customer-hour tier: raw
    {"granularity": "day", "group_by": ("customer_id",)},  # with quantiles: raw
    # customer and user tiers hold no latency sketches: asked without quantiles, they answer
    {"granularity": None, "group_by": ("customer_id", "model"), "filters": {"feature": ("chat",)}, "spend": True},
    {"granularity": "day", "group_by": ("customer_id",), "spend": True},
    {"granularity": "day", "group_by": ("user_id",), "spend": True},
    {"granularity": None, "group_by": ("environment",), "filters": {"status": ("error", "timeout")}},
    {"granularity": None, "group_by": ("customer_id", "route_version")},  # no rollup: raw fallback
]
CHECKED = ("calls", "cost", "input_tokens", "cache_read_tokens", "output_tokens", "errors", "retries",
           "retry_cost", "cache_hits", "cache_savings", "unpriced_calls", "feedback_count")  # fmt: skip
REFERENCE = {
    "calls": "count()", "cost": "sum(toInt128(c.cost_pusd))", "input_tokens": "sum(c.input_tokens)",
    "cache_read_tokens": "sum(c.cache_read_tokens)", "output_tokens": "sum(c.output_tokens)",
    "errors": "countIf(c.status != 'ok')", "retries": "countIf(c.attempt > 1)",
    "retry_cost": "sumIf(toInt128(c.cost_pusd), c.attempt > 1)", "cache_hits": "countIf(c.cache_hit)",
    "cache_savings": "sum(toInt128(c.cache_saving_pusd))", "unpriced_calls": "countIf(c.cost_source = 'unpriced')",
    "feedback_count": "countIf(isNotNull(fb.score))",
    "lat_lo": "quantileExact(0.90)(c.latency_ms)", "lat_hi": "quantileExact(0.995)(c.latency_ms)",
}  # fmt: skip


def reference(project: Project, spec: dict[str, Any], start: datetime, end: datetime) -> dict[tuple[Any, ...], Any]:
    unit = {"day": "toStartOfDay", "hour": "toStartOfHour", "minute": "toStartOfMinute"}.get(spec["granularity"])
    bucket = f"toUnixTimestamp({unit}(c.timestamp))" if unit else "0"
    dims = "".join(f", toString(c.{d})" for d in spec["group_by"])
    where = "".join(
        f" AND toString(c.{d}) IN {{f_{d}:Array(String)}}" for d in spec.get("filters", {})
    )  # fmt: skip
    sql = (
        f"SELECT {bucket} AS b{dims}, "
        + ", ".join(f"{e} AS {n}" for n, e in REFERENCE.items())
        + " FROM llm_calls AS c FINAL LEFT JOIN (SELECT event_id, argMax(score, created_at) AS score FROM feedback"
        " WHERE project_id = {p:UInt64} GROUP BY event_id) AS fb ON fb.event_id = c.event_id"
        " WHERE c.project_id = {p:UInt64} AND c.timestamp >= {s:DateTime64(3, 'UTC')}"
        f" AND c.timestamp < {{e:DateTime64(3, 'UTC')}}{where} GROUP BY ALL SETTINGS join_use_nulls = 1"
    )
    params = {"p": project.pk, "s": start, "e": end, **{f"f_{d}": list(v) for d, v in spec.get("filters", {}).items()}}
    result = get_clickhouse().query(sql, parameters=params)
    n = len(spec["group_by"])
    return {tuple(row[: 1 + n]): dict(zip(REFERENCE, row[1 + n :], strict=True)) for row in result.result_rows}


def check(project: Project) -> None:
    sources = set()
    for spec in QUERIES:
        start = START if "days" not in spec else END - timedelta(days=spec["days"])
        q = UsageQuery(
            project.pk, start, END, spec["granularity"], spec["group_by"], spec.get("filters", {}),
            metrics=CHECKED if spec.get("spend") else (*CHECKED, "latency_p95"), limit=1000,
        )  # fmt: skip
        result = usage(q)
        sources.add(result.source)
        got = {}
        for row in result.rows:
            if row["calls"] == 0:
                continue
            b = int(row["bucket"].timestamp()) if "bucket" in row else 0
            got[(b, *(row[d] for d in spec["group_by"]))] = row
        expected = reference(project, spec, start, END)
        assert set(got) == set(expected), (spec, result.source)
        for key, exp in expected.items():
            row = got[key]
            for metric in CHECKED:
                want = pusd_to_usd(exp[metric]) if isinstance(row[metric], Decimal) else exp[metric]
                assert row[metric] == want, (spec, key, metric, result.source)
            if spec.get("spend"):
                continue
            if exp["lat_lo"] is None or row["latency_p95"] is None:
                assert exp["lat_lo"] is None
                assert row["latency_p95"] is None
            else:  # TDigest: rank error well under 5 %, Float32 centroids
                assert exp["lat_lo"] * (1 - 1e-5) <= row["latency_p95"] <= exp["lat_hi"] * (1 + 1e-5), (spec, key)
    # the what-if's price tier agrees with the raw table through late data, re-sends and reprices
    for target in (Target(tier="batch"), Target(provider="openai", model="gpt-4o-mini")):
        q = UsageQuery(project.pk, START, END, "day", ("feature",))
        fast, raw = whatif(q, target), whatif(q, target, rollup=False)
        assert (fast.total, fast.rows) == (raw.total, raw.rows), target
    # every tier the query module can choose was exercised
    assert sources == {
        "rollup_day", "rollup_compact_day", "rollup_hour", "rollup_route_hour", "rollup_minute", "rollup_customer_day",
        "rollup_customer_total_day", "rollup_user_day", "llm_calls", "rollup_quantile_hour", "rollup_quantile_day",
    }  # fmt: skip


@pytest.mark.django_db
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    first=st.lists(record, min_size=1, max_size=40),
    late=st.lists(record, max_size=15),
    feedback=st.lists(st.tuples(st.sampled_from([f"e{i}" for i in range(45)]), st.floats(0, 5)), max_size=6),
    do_reprice=st.booleans(),
)
def test_rollups_equal_raw_aggregates(
    ch: object, first: list[dict[str, Any]], late: list[dict[str, Any]], feedback: list[tuple[str, float]],
    do_reprice: bool,
) -> None:  # fmt: skip
    org = Organization.objects.create(name=f"prop-org-{next(_projects)}")
    project = Project.objects.create(organization=org, name=f"prop-{next(_projects)}")
    # given traffic that was rolled up
    send(project, first)
    # and feedback, some for calls that do not exist (yet)
    for event_id, score in feedback:
        Feedback.objects.create(project=project, event_id=event_id, score=score)
    # and late arrivals and client re-sends into hours already rolled up
    send(project, [r for r in first[: len(first) // 2]] + late)
    # and perhaps a price correction for part of the range, then a reprice
    if do_reprice:
        PriceOverride.objects.create(
            project=project, provider="openai", model="gpt-4o", effective_from=START + timedelta(days=1),
            input_per_mtok=Decimal("1.1"), output_per_mtok=Decimal("3.3"),
        )  # fmt: skip
        reprice(project.pk, START, END)
        send(project, [])
    # then every query through the rollups equals the raw table's own aggregate
    check(project)
