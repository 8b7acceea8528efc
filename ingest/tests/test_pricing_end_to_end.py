"""Post → drain → rows in ClickHouse with exact costs (integer pico-USD) for each pricing case."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from rest_framework.test import APIClient

from ingest.tests.helpers import drain, post_calls, raw_rows
from ledger.models import PriceOverride, TierMultiplier
from tenancy.models import Project

USD = 10**12  # pico-USD per USD
NOW = "2026-11-20T12:00:00Z"


def usd(amount: str) -> int:
    return int(Decimal(amount) * USD)


# (label, record, expected column values)
CASES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    (
        "cached reads are a part of input, priced apart and never twice",
        # gpt-4o: $2.50 input, $1.25 cache read, $10 output per Mtok
        {"provider": "openai", "model": "gpt-4o", "input_tokens": 1000, "cache_read_tokens": 400, "output_tokens": 500},
        {"cost_input_pusd": usd("0.0015"), "cost_cache_read_pusd": usd("0.0005"), "cost_output_pusd": usd("0.005"),
         "cost_pusd": usd("0.007"), "cost_source": "catalogue"},
    ),
    (
        "cache writes at their own price",
        # claude-sonnet-4-5: $3 input, $3.75 cache write, $0.30 cache read, $15 output
        {"provider": "anthropic", "model": "claude-sonnet-4-5", "input_tokens": 10_000, "cache_write_tokens": 2000,
         "cache_read_tokens": 5000, "output_tokens": 100},
        {"cost_input_pusd": usd("0.009"), "cost_cache_write_pusd": usd("0.0075"),
         "cost_cache_read_pusd": usd("0.0015"), "cost_output_pusd": usd("0.0015"), "cost_pusd": usd("0.0195")},
    ),
    (
        "reasoning tokens are part of output and priced as output",
        # o3 since 2025-06-10: $2 input, $8 output
        {"provider": "openai", "model": "o3", "input_tokens": 100, "output_tokens": 1000, "reasoning_tokens": 800},
        {"cost_input_pusd": usd("0.0002"), "cost_output_pusd": usd("0.0016"), "cost_reasoning_pusd": usd("0.0064"),
         "cost_pusd": usd("0.0082")},
    ),
    (
        "batch tier uses the catalogue's batch price",
        {"provider": "openai", "model": "gpt-4o", "input_tokens": 1_000_000, "output_tokens": 1_000_000,
         "service_tier": "batch"},
        {"cost_pusd": usd("6.25"), "price_ref": "genai-prices {v}:openai/gpt-4o@base+batch"},
    ),
    (
        "flex tier without a catalogue price gets the 0.5 multiplier",
        {"provider": "anthropic", "model": "claude-haiku-4-5", "input_tokens": 1_000_000, "output_tokens": 0,
         "service_tier": "flex"},
        {"cost_pusd": usd("0.5"), "price_ref": "genai-prices {v}:anthropic/claude-haiku-4-5@basex0.5"},
    ),
    (
        "a provider-reported cost wins over the computed one, exactly",
        {"provider": "openai", "model": "gpt-4o", "input_tokens": 1000, "output_tokens": 0,
         "cost_usd": "0.123456789012"},
        {"cost_input_pusd": usd("0.0025"), "cost_pusd": 123_456_789_012, "cost_source": "reported"},
    ),
    (
        "a list price that changed: an old call pays the old price",
        # o3 before 2025-06-10: $10 input, $40 output
        {"provider": "openai", "model": "o3", "input_tokens": 1000, "output_tokens": 1000,
         "timestamp": "2025-01-15T00:00:00Z"},
        {"cost_pusd": usd("0.05"), "price_ref": "genai-prices {v}:openai/o3@base"},
    ),
    (
        "and a new call pays the new one",
        {"provider": "openai", "model": "o3", "input_tokens": 1000, "output_tokens": 1000,
         "timestamp": "2025-07-01T00:00:00Z"},
        {"cost_pusd": usd("0.01"), "price_ref": "genai-prices {v}:openai/o3@2025-06-10"},
    ),
    (
        "an app cache hit costs nothing and records what it saved",
        {"provider": "openai", "model": "gpt-4o", "input_tokens": 1000, "output_tokens": 100, "cache_hit": True},
        {"cost_pusd": 0, "cache_saving_pusd": usd("0.0035")},
    ),
    (
        "an unknown model is kept, at cost 0, flagged unpriced",
        {"provider": "acme", "model": "mystery-7b", "input_tokens": 1000, "output_tokens": 1000},
        {"cost_pusd": 0, "cost_source": "unpriced", "price_ref": ""},
    ),
]  # fmt: skip


@pytest.mark.django_db
@pytest.mark.parametrize(("label", "record", "expected"), CASES, ids=[c[0] for c in CASES])
def test_post_drain_prices_exactly(
    api: APIClient, project: Project, label: str, record: dict[str, Any], expected: dict[str, Any]
) -> None:
    import genai_prices

    # given
    record = {"timestamp": NOW, **record}
    # when
    response = post_calls(api, [record])
    assert response.status_code == 202, response.json()
    assert response.json()["accepted"] == 1
    drain()
    # then
    rows = raw_rows(project)
    assert len(rows) == 1
    row = rows[0]
    for column, value in expected.items():
        if isinstance(value, str):
            value = value.format(v=genai_prices.__version__)
        assert row[column] == value, f"{label}: {column}"
    parts = ("cost_input_pusd", "cost_cache_read_pusd", "cost_cache_write_pusd", "cost_output_pusd",
             "cost_reasoning_pusd")  # fmt: skip
    if row["cost_source"] in ("catalogue", "override") and not row["cache_hit"]:
        assert sum(row[p] for p in parts) == row["cost_pusd"]


@pytest.mark.django_db
def test_project_override_applies_from_its_effective_date(api: APIClient, project: Project) -> None:
    # given a self-hosted model the catalogue does not know, priced by the project from March on
    PriceOverride.objects.create(
        project=project, provider="selfhost", model="llama-3-70b", effective_from=datetime(2026, 3, 1, tzinfo=UTC),
        input_per_mtok=Decimal("0.5"), output_per_mtok=Decimal("1.5"),
    )  # fmt: skip
    # and a negotiated price for a catalogue model, replacing the list price
    PriceOverride.objects.create(
        project=project, provider="openai", model="gpt-4o", effective_from=datetime(2026, 6, 1, tzinfo=UTC),
        input_per_mtok=Decimal("2"), output_per_mtok=Decimal("8"), cache_read_per_mtok=Decimal("0.2"),
    )  # fmt: skip
    TierMultiplier.objects.create(project=project, service_tier="priority", multiplier=Decimal("2"))
    calls = [
        {"event_id": "a", "provider": "selfhost", "model": "llama-3-70b", "timestamp": "2026-02-28T23:59:59Z",
         "input_tokens": 1_000_000, "output_tokens": 1_000_000},
        {"event_id": "b", "provider": "selfhost", "model": "llama-3-70b", "timestamp": "2026-03-01T00:00:00Z",
         "input_tokens": 1_000_000, "output_tokens": 1_000_000},
        {"event_id": "c", "provider": "openai", "model": "gpt-4o", "timestamp": "2026-05-31T00:00:00Z",
         "input_tokens": 1_000_000, "cache_read_tokens": 500_000, "output_tokens": 0},
        {"event_id": "d", "provider": "openai", "model": "gpt-4o", "timestamp": "2026-06-02T00:00:00Z",
         "input_tokens": 1_000_000, "cache_read_tokens": 500_000, "output_tokens": 0},
        {"event_id": "e", "provider": "openai", "model": "gpt-4o", "timestamp": "2026-06-02T00:00:00Z",
         "input_tokens": 1_000_000, "output_tokens": 0, "service_tier": "priority"},
    ]  # fmt: skip
    # when
    assert post_calls(api, calls).json()["accepted"] == 5
    drain()
    # then
    rows = {r["event_id"]: r for r in raw_rows(project)}
    assert rows["a"]["cost_source"] == "unpriced"
    assert rows["b"]["cost_pusd"] == usd("2.0")
    assert rows["b"]["cost_source"] == "override"
    assert rows["b"]["price_ref"].startswith("override:")
    assert rows["c"]["cost_pusd"] == usd("1.25") + usd("0.625")  # list price before the override
    assert rows["d"]["cost_pusd"] == usd("1.0") + usd("0.1")  # negotiated price after it
    assert rows["e"]["cost_pusd"] == usd("4.0")  # negotiated price × the project's priority multiplier
