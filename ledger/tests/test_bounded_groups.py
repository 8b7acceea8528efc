"""A breakdown over time whose filters name every grouped dimension (a budget's scope) cannot have
more groups than the filters allow: it is answered without a ranking statement, exactly as before."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from ledger.queries import UsageQuery, usage
from ledger.rollups import rollup_dirty
from ledger.telemetry import REGISTRY
from ledger.tests.test_ranked import DAY, traffic, write
from ledger.usage_batches import usage_many
from tenancy.models import Project


def reads() -> float:
    """ClickHouse reads this process has made (the client observes each one)."""
    return sum(
        s.value
        for family in REGISTRY.collect()
        if family.name == "meterline_clickhouse_query_seconds"
        for s in family.samples
        if s.name.endswith("_count") and s.labels["kind"] == "read"
    )


def test_a_breakdown_bounded_by_its_filters_takes_one_statement_and_agrees_group_by_group(project: Project) -> None:
    write(project, traffic(7, n=300))
    rollup_dirty()
    scoped = UsageQuery(
        project.pk, DAY, DAY + timedelta(days=3), "day", ("feature", "customer_id"),
        filters={"feature": ("chat", "search"), "customer_id": ("acme", "globex", "nobody")}, metrics=("cost", "calls"),
    )  # fmt: skip
    before = reads()
    alone = usage(scoped)
    assert reads() - before == 1  # no statement ranking the groups first
    (together,) = usage_many([scoped])
    assert together.rows == alone.rows
    assert not alone.truncated
    # each group's series is what the same selection narrowed to that group answers
    groups = {(r["feature"], r["customer_id"]) for r in alone.rows}
    assert groups == {(f, c) for f in ("chat", "search") for c in ("acme", "globex")}
    for feature, customer in groups:
        narrowed = usage(replace(scoped, group_by=(), filters={"feature": (feature,), "customer_id": (customer,)}))
        mine = [r for r in alone.rows if (r["feature"], r["customer_id"]) == (feature, customer)]
        assert [(r["bucket"], r["cost"], r["calls"]) for r in mine] == [
            (r["bucket"], r["cost"], r["calls"]) for r in narrowed.rows
        ]
    # more groups allowed than the limit: ranked (and cut) as before
    ranked = usage(replace(scoped, limit=2))
    assert ranked.truncated
    assert len({(r["feature"], r["customer_id"]) for r in ranked.rows}) == 2
