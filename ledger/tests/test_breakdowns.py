"""ledger.queries.usage_breakdowns: one statement, each part what usage() answers, from its own smallest tier
(parts over the same tier read it once, as grouping sets: overlapping dimensions, cuts and ties included)."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from ledger.queries import UsageQuery, usage
from ledger.rollups import rollup_dirty
from ledger.tests.test_ranked import DAY, traffic, write
from ledger.usage_batches import usage_breakdowns
from tenancy.models import Project


def test_each_breakdown_is_usage_of_its_part_from_the_smallest_tier(project: Project) -> None:
    write(project, traffic(5, n=300))
    rollup_dirty()
    base = UsageQuery(project.pk, DAY, DAY + timedelta(days=3), None, metrics=("cost", "calls"), order_by="cost")
    parts = [(("provider", "model"), 500), (("traffic", "status"), 100), (("feature",), 2), (("customer_id",), 5),
             (("model",), 1), (("route_version",), 3), (("feature", "model"), 4), (("model", "feature"), 2),
             (("feature",), 1), (("status",), 2)]  # fmt: skip
    answers = usage_breakdowns(base, parts)
    for (group_by, limit), answer in zip(parts, answers, strict=True):
        alone = usage(replace(base, group_by=group_by, limit=limit))
        assert answer.rows == alone.rows
        assert (answer.source, answer.truncated) == (alone.source, alone.truncated)
    assert [a.source for a in answers] == [
        "rollup_compact_day", "rollup_day", "rollup_compact_day", "rollup_customer_total_day",
        "rollup_compact_day", "rollup_compact_day", "rollup_compact_day", "rollup_compact_day", "rollup_compact_day",
        "rollup_day",
    ]  # fmt: skip
    # the same, filtered; and ranked by calls (a tie-prone order): still each part's own order and cut
    by_calls = replace(base, order_by="calls", filters={"feature": ("chat", "search")})
    for (group_by, limit), answer in zip(parts, usage_breakdowns(by_calls, parts), strict=True):
        assert answer.rows == usage(replace(by_calls, group_by=group_by, limit=limit)).rows
        assert answer.truncated == usage(replace(by_calls, group_by=group_by, limit=limit)).truncated
