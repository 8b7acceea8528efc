"""Token outliers: single calls far above their feature's usual size, read through ledger.explore."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from rest_framework.test import APIClient

from ingest.tests.helpers import drain, post_calls
from ledger.explore import OutlierCall, OutlierQuery, QueryError, token_outliers
from tenancy.models import ApiKey, Project

DAY = datetime(2026, 10, 20, tzinfo=UTC)


def _call(when: datetime, feature: str, tokens: int, **fields: Any) -> dict[str, Any]:
    return {"provider": "openai", "model": "gpt-4o", "feature": feature, "input_tokens": tokens - 100,
            "output_tokens": 100, "cost_usd": "0.01", "timestamp": when.isoformat(), **fields}  # fmt: skip


def _baseline(feature: str, calls: int) -> list[dict[str, Any]]:
    return [_call(DAY - timedelta(days=1 + i % 6, hours=i % 20), feature, 1000 + i % 10) for i in range(calls)]


def test_calls_far_above_their_features_p95_biggest_first(project: Project, api: APIClient) -> None:
    post_calls(api, [
        *_baseline("search", 30),
        *_baseline("rare", 5),  # too few baseline calls: never judged
        _call(DAY - timedelta(days=8), "search", 90_000),  # before the baseline: neither usual nor judged
        _call(DAY + timedelta(hours=1), "search", 4_000, event_id="four-times"),
        _call(DAY + timedelta(hours=2), "search", 62_000, event_id="runaway", customer_id="acme",
              tags={"team": "growth"}),
        _call(DAY + timedelta(hours=3), "search", 20_000, event_id="big"),
        _call(DAY + timedelta(hours=4), "rare", 90_000, event_id="rare-but-huge"),
        _call(DAY + timedelta(days=1), "search", 90_000, event_id="tomorrow"),
    ])  # fmt: skip
    other = ApiKey.issue(Project.objects.create(organization=project.organization, name="other"), ["ingest"])[1]
    other_api = APIClient()
    other_api.credentials(HTTP_AUTHORIZATION=f"Bearer {other}")
    post_calls(other_api, [*_baseline("search", 30), _call(DAY + timedelta(hours=1), "search", 80_000)])
    drain()

    def query(factor: int, **options: Any) -> list[OutlierCall]:
        return token_outliers(OutlierQuery(project.pk, DAY, DAY + timedelta(days=1), Decimal(factor), **options))

    found = query(5, dimensions=("feature", "customer_id"))
    assert [c.event_id for c in found] == ["runaway", "big"]
    runaway = found[0]
    assert runaway == OutlierCall(
        "runaway", "search", 62_000, runaway.usual, {"feature": "search", "customer_id": "acme"}, {"team": "growth"}
    )
    assert 1000 <= runaway.usual <= 1010  # the p95 of the baseline calls
    assert [c.event_id for c in query(3)] == ["runaway", "big", "four-times"]
    assert [(c.event_id, c.dimensions) for c in query(3, limit=1)] == [("runaway", {})]
    assert [c.event_id for c in query(5, min_calls=5)] == ["rare-but-huge", "runaway", "big"]


def test_an_unknown_dimension_is_refused(project: Project) -> None:
    with pytest.raises(QueryError, match="unknown dimension 'tags'"):
        token_outliers(OutlierQuery(project.pk, DAY, DAY + timedelta(days=1), Decimal(5), dimensions=("tags",)))
