"""Reads of the small day tiers run on one thread; every other read keeps the engine's default."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ledger.clickhouse.client import ClickHouse
from ledger.explore import dimension_values
from ledger.queries import UsageQuery, usage
from ledger.read_threads import read_settings
from ledger.usage_batches import usage_breakdowns, usage_many
from tenancy.models import Project

DAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=3)


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any]]:
    """(caller, max_threads sent) of every statement while the test runs."""
    seen: list[tuple[str, Any]] = []
    original = ClickHouse._timed

    def record(client: ClickHouse, kind: str, caller: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append((caller, (kwargs.get("settings") or {}).get("max_threads")))
        return original(client, kind, caller, fn, *args, **kwargs)

    monkeypatch.setattr(ClickHouse, "_timed", record)
    return seen


def test_only_small_tables_get_one_thread() -> None:
    assert read_settings(["rollup_compact_day", "rollup_quantile_day"]) == {"max_threads": 1}
    assert read_settings(["rollup_compact_day", "rollup_hour"]) == {}
    assert read_settings(["llm_calls"]) == {}
    assert read_settings([]) == {}


@pytest.mark.django_db
def test_day_tier_reads_run_on_one_thread_and_the_others_do_not(project: Project, sent: list[Any]) -> None:
    def q(**kw: Any) -> UsageQuery:
        return UsageQuery(**{"project_id": project.pk, "start": DAY, "end": DAY + timedelta(days=2), **kw})

    assert usage(q(granularity="day", group_by=("feature",))).source == "rollup_compact_day"
    assert usage(q(granularity="day", group_by=("traffic",))).source == "rollup_day"
    usage_many([q(granularity="day"), q(granularity="day", filters={"feature": ("chat",)})])
    usage_breakdowns(q(granularity=None), [(("model",), 10), (("traffic",), 10)])
    dimension_values(project.pk, DAY, DAY + timedelta(days=2))
    assert len(sent) >= 5
    assert all(threads == 1 for _, threads in sent), sent  # the groups' ranking statements too
    sent.clear()
    assert usage(q(granularity="hour", group_by=("model",))).source != "rollup_compact_day"
    assert usage(q(granularity="day", group_by=("customer_id",))).source == "rollup_customer_total_day"
    assert usage(q(granularity="day", tags={"team": ("a",)})).source == "llm_calls"
    usage_many([q(granularity="day"), q(granularity="hour")])  # one part off the day tiers: the default
    assert len(sent) >= 4
    assert all(threads is None for _, threads in sent), sent
