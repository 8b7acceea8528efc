"""ledger.ranked: the top calls read through the price tier's maxima equal the plain read of the range."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ledger.calls_log import selection_where
from ledger.explore import CALL_ORDERS, CallsQuery, top_calls
from ledger.ranked import guide, ranked_calls
from ledger.raw import CallGroup, write_calls
from ledger.rollups import rollup_dirty
from ledger.tests.test_raw import BOOK, calls
from tenancy.models import Project

DAY = datetime(2026, 11, 10, tzinfo=UTC)


def _ms(when: datetime) -> int:
    return int(when.timestamp() * 1000)


def write(project: Project, records: list[dict[str, Any]], version: int = 1) -> None:
    group = CallGroup(project.pk, uuid.uuid4(), _ms(DAY), calls(*records))
    write_calls([group], {project.pk: BOOK}, version, token=uuid.uuid4().hex)


def traffic(seed: int, n: int = 400, hours: int = 48) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [
        {
            "event_id": f"c{seed}-{i}",
            "timestamp": _ms(DAY + timedelta(minutes=rng.randrange(hours * 60), seconds=rng.random() * 59)),
            "feature": rng.choice(["chat", "search", "summary"]),
            "customer_id": rng.choice(["acme", "globex", ""]),
            "status": rng.choice(["ok", "ok", "ok", "error"]),
            "input_tokens": rng.choice([10, 100, 1000, 5000]) + rng.randrange(50),
            "output_tokens": rng.randrange(0, 800, 20),  # ties on purpose
            "latency_ms": rng.choice([None, float(rng.randrange(100, 9000, 100))]),
            "ttft_ms": rng.choice([None, float(rng.randrange(50, 2000, 50))]),
        }
        for i in range(n)
    ]


def plain(project: Project, q: CallsQuery) -> list[str]:
    """The same ranking without the tier: every call of the range sorted."""
    params: dict[str, Any] = {}
    where = selection_where(q.project_id, q.start, q.end, q.filters, params)
    return [c["event_id"] for c in ranked_calls(q.project_id, where, CALL_ORDERS[q.order_by], params, q.limit)]


@pytest.mark.parametrize("order", list(CALL_ORDERS))
def test_the_guided_top_calls_equal_the_plain_read(project: Project, order: str) -> None:
    write(project, traffic(1))
    # re-sent versions: a third of the calls cost more or less now, and one call moved to another feature
    resent = [{**r, "input_tokens": r["input_tokens"] * 3 if i % 2 else 1} for i, r in enumerate(traffic(1)[::3])]
    write(project, resent, version=2)
    rollup_dirty()
    ranges = [
        (DAY, DAY + timedelta(days=2)),  # whole hours only
        (DAY + timedelta(hours=3, minutes=17), DAY + timedelta(hours=40, minutes=5)),  # partial edge hours
        (DAY + timedelta(hours=5), DAY + timedelta(hours=6)),  # one hour: nothing to guide by
    ]
    for start, end in ranges:
        every: list[dict[str, tuple[str, ...]]] = [
            {}, {"feature": ("chat", "search")}, {"status": ("error",)}, {"customer_id": ("acme",)},
        ]  # fmt: skip
        for filters in every:
            for limit in (1, 7, 50):
                q = CallsQuery(project.pk, start, end, filters, order_by=order, limit=limit)
                assert [c["event_id"] for c in top_calls(q)] == plain(project, q), (start, end, filters, limit)


def test_calls_the_rollup_has_not_seen_yet_are_still_found(project: Project) -> None:
    write(project, traffic(2))
    rollup_dirty()
    # given: a late, very expensive call in an hour already rolled up, not rolled up again yet
    late = {**traffic(2)[0], "event_id": "late", "timestamp": _ms(DAY + timedelta(hours=7, minutes=3)),
            "input_tokens": 10_000_000}  # fmt: skip
    write(project, [late])
    q = CallsQuery(project.pk, DAY, DAY + timedelta(days=2), order_by="cost", limit=5)
    top = [c["event_id"] for c in top_calls(q)]
    assert top[0] == "late"
    assert top == plain(project, q)


def test_the_guide_reads_only_the_hours_that_can_hold_the_top_calls(project: Project) -> None:
    write(project, traffic(3, n=600))
    rollup_dirty()
    start, end = DAY, DAY + timedelta(days=2)
    guided = guide(project.pk, start, end, {}, "cost_pusd", 5)
    assert guided is not None
    condition, params = guided
    assert "toStartOfHour(timestamp) IN" in condition
    assert 1 <= len(params["guide_hours"]) <= 10  # of 48 hours with calls
    assert params["guide_at_least"] > 0
    # no guide on a dimension the tier does not hold, or when the range has too few rows
    assert guide(project.pk, start, end, {"customer_id": ("acme",)}, "cost_pusd", 5) is None
    assert guide(project.pk, start, start + timedelta(minutes=30), {}, "cost_pusd", 5) is None
    assert guide(project.pk, start, end, {}, "cost_pusd", 10_000) is None


def test_a_replaced_row_still_in_the_tier_does_not_hide_the_top_calls(project: Project) -> None:
    # given: the most expensive call is re-sent at a lower cost; until a merge, the tier holds both
    # the row with its old maximum and the new one
    base = traffic(4, n=300)
    write(project, [*base, {**base[0], "event_id": "big", "input_tokens": 9_000_000}])
    rollup_dirty()
    write(project, [{**base[0], "event_id": "big", "input_tokens": 1}], version=2)
    rollup_dirty()
    for limit in (1, 3, 20):
        q = CallsQuery(project.pk, DAY, DAY + timedelta(days=2), order_by="cost", limit=limit)
        top = [c["event_id"] for c in top_calls(q)]
        assert "big" not in top
        assert top == plain(project, q)
