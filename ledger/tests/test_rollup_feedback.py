"""A project without feedback is rolled up without the feedback join; its first feedback switches
the join back on, in every tier that counts feedback."""

from __future__ import annotations

from typing import Any

import pytest

from ledger.clickhouse.client import get_clickhouse
from ledger.feedback import sync_feedback
from ledger.models import Feedback
from ledger.rollups import _STATEMENTS, rollup_dirty
from ledger.tests.test_rollup_exactness import send
from tenancy.models import Project

FEEDBACK_TIERS = ("rollup_minute", "rollup_hour", "rollup_day", "rollup_customer_day", "rollup_user_day")


def call(event_id: str, minute: int) -> dict[str, Any]:
    return {
        "event_id": event_id, "minute": minute, "model": ("openai", "gpt-4o"), "feature": "chat",
        "customer_id": "acme", "user_id": "u1", "route_version": "v1", "status": "ok", "traffic": "live",
        "attempt": 1, "cache_hit": False, "service_tier": "default", "input_tokens": 100, "cached_share": 0.0,
        "output_tokens": 10, "latency_ms": 250.0,
    }  # fmt: skip


def feedback_in(project: Project) -> dict[str, tuple[int, float]]:
    ch = get_clickhouse()
    return {
        table: tuple(
            ch.query(
                f"SELECT sum(calls), sum(feedback_count), sum(feedback_score_sum) FROM {table} FINAL"
                " WHERE project_id = {p:UInt64}",
                parameters={"p": project.pk},
            ).result_rows[0]
        )
        for table in FEEDBACK_TIERS
    }


def test_raw_statements_without_feedback_do_not_join() -> None:
    for tier, with_feedback, without, _ in _STATEMENTS:
        if tier.source == "raw":
            assert "JOIN" not in without, tier.table
            assert ("LEFT JOIN" in with_feedback) == (tier.table in FEEDBACK_TIERS), tier.table


@pytest.mark.django_db
def test_first_feedback_is_counted_in_every_tier(project: Project) -> None:
    # given calls rolled up while the project had no feedback
    send(project, [call("a", 13 * 60 + 5), call("b", 13 * 60 + 7), call("c", 24 * 60 + 1)])
    assert set(feedback_in(project).values()) == {(3, 0, 0.0)}
    # when the first feedback arrives and the rollups run
    Feedback.objects.create(project=project, event_id="b", score=4.0)
    Feedback.objects.create(project=project, event_id="c", score=1.5)
    sync_feedback()
    while rollup_dirty().has_more:
        pass
    # then every tier that counts feedback has it
    assert set(feedback_in(project).values()) == {(3, 2, 5.5)}
