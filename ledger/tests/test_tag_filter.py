"""Usage filtered by call tags (the budgets' tag scope) reads the raw calls and counts only matches."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from ingest.tests.helpers import drain, post_calls
from ledger.queries import QueryError, UsageQuery, usage
from tenancy.models import Project


def test_tag_filter(project: Project, api: APIClient) -> None:
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    base = {"provider": "openai", "model": "gpt-4o", "timestamp": (now - timedelta(hours=1)).isoformat()}
    post_calls(api, [
        {**base, "cost_usd": "1.00", "tags": {"team": "growth", "env": "eu"}},
        {**base, "cost_usd": "2.00", "tags": {"team": "growth", "env": "us"}},
        {**base, "cost_usd": "4.00", "tags": {"team": "platform"}},
        {**base, "cost_usd": "8.00"},
    ])  # fmt: skip
    drain()

    def total(tags: dict[str, tuple[str, ...]]) -> tuple[Decimal, str]:
        result = usage(UsageQuery(project.pk, now - timedelta(days=1), now, None, tags=tags))
        return result.rows[0]["cost"], result.source

    assert total({"team": ("growth",)}) == (Decimal("3"), "llm_calls")
    assert total({"team": ("growth", "platform")})[0] == Decimal("7")
    assert total({"team": ("growth",), "env": ("us",)})[0] == Decimal("2")
    assert total({"team": ("nobody",)})[0] == Decimal("0")
    with pytest.raises(QueryError, match="tag filter needs"):
        total({"team": ()})
