"""The FOCUS export against the ledger: rows, the exact per-token-class split, and every total.

Calls go in through the real ingest path (API → outbox → drain → rollups) into chDB; the export is
read back as CSV and Parquet and compared with ``/v1/usage`` and the raw table, to the pico-dollar.
"""

from __future__ import annotations

import csv
import io
import json
import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from rest_framework.test import APIClient

from api.tests.test_usage import ingest_and_roll, reader
from ledger.clickhouse.client import get_clickhouse
from ledger.focus import COLUMN_NAMES, FocusQuery, focus_csv, focus_parquet, focus_rows, unit_price
from ledger.queries import QueryError
from tenancy.models import Project

DAY = (datetime.now(UTC) - timedelta(days=4)).replace(hour=0, minute=0, second=0, microsecond=0)
MANDATORY = (
    "BilledCost", "BillingAccountId", "BillingAccountName", "BillingCurrency", "BillingPeriodStart",
    "BillingPeriodEnd", "ChargeCategory", "ChargeClass", "ChargeDescription", "ChargePeriodStart",
    "ChargePeriodEnd", "ContractedCost", "EffectiveCost", "InvoiceIssuerName", "ListCost", "PricingQuantity",
    "PricingUnit", "ProviderName", "PublisherName", "ServiceCategory", "ServiceName",
)  # fmt: skip
MODELS = [
    ("openai", "gpt-4o-mini"),
    ("openai", "gpt-4o"),
    ("openai", "o3-mini"),
    ("anthropic", "claude-sonnet-4-20250514"),
    ("nowhere", "a-model-no-catalogue-knows"),
]


def call(event_id: str, when: datetime, **fields: Any) -> dict[str, Any]:
    return {
        "event_id": event_id, "timestamp": when.isoformat(), "provider": "openai", "model": "gpt-4o-mini",
        "input_tokens": 1000, "output_tokens": 100, "feature": "chat", **fields,
    }  # fmt: skip


def csv_rows(q: FocusQuery) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO("".join(focus_csv(q)))))


def ledger_cost(project: Project, start: datetime, end: datetime) -> Decimal:
    """What the raw ledger holds for the range, in USD."""
    return Decimal(
        get_clickhouse().command(
            "SELECT sum(cost_pusd) FROM llm_calls FINAL WHERE project_id = {p:UInt64}"
            " AND timestamp >= {s:DateTime64(3, 'UTC')} AND timestamp < {e:DateTime64(3, 'UTC')}",
            parameters={"p": project.pk, "s": start, "e": end},
        )
    ).scaleb(-12)


def usage_by_day(project: Project, start: datetime, end: datetime) -> dict[str, str]:
    body = (
        reader(project)
        .get("/v1/usage", {"from": start.isoformat(), "to": end.isoformat(), "granularity": "day", "metrics": "cost"})
        .json()
    )
    return {row["bucket"]: row["cost"] for row in body["data"]}


@pytest.mark.django_db
def test_one_call_splits_into_token_classes_at_their_own_prices(api: APIClient, project: Project) -> None:
    # given one gpt-4o-mini call: 1000 input of which 200 cache reads; 100 output of which none reasoning
    ingest_and_roll(
        api,
        [call("a", DAY + timedelta(hours=3), cache_read_tokens=200, customer_id="acme", route_version="v2",
              environment="prod")],
    )  # fmt: skip
    # when
    rows = csv_rows(FocusQuery(project.pk, DAY, DAY + timedelta(days=1)))
    # then: uncached input 800 × $0.15/M, cache read 200 × $0.075/M, output 100 × $0.60/M
    assert [(r["x_TokenClass"], r["ConsumedQuantity"], r["BilledCost"]) for r in rows] == [
        ("input", "800.000000", "0.000120000000"),
        ("cache_read", "200.000000", "0.000015000000"),
        ("output", "100.000000", "0.000060000000"),
    ]
    first = rows[0]
    assert set(MANDATORY) <= set(first)
    assert first["ServiceCategory"] == "AI and Machine Learning"
    assert first["ChargeCategory"] == "Usage"
    assert first["ChargeClass"] == ""
    assert first["BillingCurrency"] == "USD"
    assert first["ChargePeriodStart"] == DAY.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert first["ChargePeriodEnd"] == (DAY + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    month = DAY.replace(day=1)
    assert first["BillingPeriodStart"] == month.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert first["BillingPeriodEnd"] == (month + timedelta(days=32)).replace(day=1).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert first["ProviderName"] == first["PublisherName"] == first["InvoiceIssuerName"] == "openai"
    assert first["SubAccountName"] == project.name
    assert first["BillingAccountName"] == project.organization.name
    assert first["SkuId"] == "openai/gpt-4o-mini/input"
    assert first["SkuMeter"] == "Uncached Input Tokens"
    assert first["SkuPriceId"].startswith("openai/gpt-4o-mini/input@genai-prices ")
    assert first["PricingUnit"] == "1000000 Tokens"
    assert first["PricingQuantity"] == "0.000800"
    assert first["ConsumedUnit"] == "Tokens"
    # List, contracted and effective cost are what was billed; the unit price is per million tokens
    assert first["ListCost"] == first["ContractedCost"] == first["EffectiveCost"] == "0.000120000000"
    assert first["ListUnitPrice"] == first["ContractedUnitPrice"] == "0.150000000000"
    assert json.loads(first["Tags"]) == {"feature": "chat", "customer": "acme", "route_version": "v2",
                                         "environment": "prod"}  # fmt: skip
    assert (first["x_Feature"], first["x_CustomerId"], first["x_RouteVersion"], first["x_Environment"]) == (
        "chat", "acme", "v2", "prod",
    )  # fmt: skip
    assert first["x_Calls"] == "1"
    assert first["x_UnpricedCalls"] == "0"
    assert list(rows[0]) == list(COLUMN_NAMES)


@pytest.mark.django_db
def test_reasoning_and_cache_writes_get_rows_of_their_own(api: APIClient, project: Project) -> None:
    ingest_and_roll(
        api,
        [
            call("r", DAY + timedelta(hours=1), model="o3-mini", output_tokens=500, reasoning_tokens=300),
            call("w", DAY + timedelta(hours=2), provider="anthropic", model="claude-sonnet-4-20250514",
                 input_tokens=3000, cache_write_tokens=2000, cache_read_tokens=500, output_tokens=10),
        ],
    )  # fmt: skip
    rows = csv_rows(FocusQuery(project.pk, DAY, DAY + timedelta(days=1)))
    got = {(r["x_Model"], r["x_TokenClass"]): (r["ConsumedQuantity"], r["BilledCost"]) for r in rows}
    # Claude Sonnet 4: $3/M input, $0.30/M cache read, $3.75/M cache write, $15/M output
    assert got[("claude-sonnet-4-20250514", "input")] == ("500.000000", "0.001500000000")
    assert got[("claude-sonnet-4-20250514", "cache_read")] == ("500.000000", "0.000150000000")
    assert got[("claude-sonnet-4-20250514", "cache_write")] == ("2000.000000", "0.007500000000")
    assert got[("claude-sonnet-4-20250514", "output")] == ("10.000000", "0.000150000000")
    # o3-mini: $4.40/M output, reasoning priced as output
    assert got[("o3-mini", "output")] == ("200.000000", "0.000880000000")
    assert got[("o3-mini", "reasoning")] == ("300.000000", "0.001320000000")
    assert sum(Decimal(r["BilledCost"]) for r in rows) == ledger_cost(project, DAY, DAY + timedelta(1))


@pytest.mark.django_db
def test_reported_costs_cache_hits_and_unpriced_models(api: APIClient, project: Project) -> None:
    ingest_and_roll(
        api,
        [
            # a reported cost that is not the catalogue's: allocated over the parts, exactly
            call("rep", DAY + timedelta(hours=1), cost_usd="0.000000000007"),
            # a reported cost for a model no catalogue knows: allocated over its tokens
            call("rep2", DAY + timedelta(hours=1), provider="nowhere", model="mystery", cost_usd="1.000000000001"),
            # an app cache hit: no provider call, no rows
            call("hit", DAY + timedelta(hours=2), feature="cached", cache_hit=True),
            # an unpriced call: cost 0, marked
            call("unp", DAY + timedelta(hours=3), provider="nowhere", model="unknown-model", feature="u"),
        ],
    )
    rows = csv_rows(FocusQuery(project.pk, DAY, DAY + timedelta(days=1)))
    by_model: dict[str, list[dict[str, str]]] = defaultdict(list)
    for r in rows:
        by_model[r["x_Model"]].append(r)
    assert "cached" not in {r["x_Feature"] for r in rows}
    assert sum(Decimal(r["BilledCost"]) for r in by_model["gpt-4o-mini"]) == Decimal("0.000000000007")
    # 7 pico-dollars over parts of 150,000,000 (input) and 60,000,000 (output) pico-dollars: 5 + 2
    assert [(r["x_TokenClass"], r["BilledCost"]) for r in by_model["gpt-4o-mini"]] == [
        ("input", "0.000000000005"), ("output", "0.000000000002"),
    ]  # fmt: skip
    assert all(r["x_ReportedCostCalls"] == "1" for r in by_model["gpt-4o-mini"])
    # 1,000,000,000,001 pico over 1000 input and 100 output tokens
    assert [(r["x_TokenClass"], r["BilledCost"]) for r in by_model["mystery"]] == [
        ("input", "0.909090909091"), ("output", "0.090909090910"),
    ]  # fmt: skip
    unpriced = by_model["unknown-model"]
    assert [(r["x_TokenClass"], r["BilledCost"], r["x_UnpricedCalls"]) for r in unpriced] == [
        ("input", "0.000000000000", "1"), ("output", "0.000000000000", "1"),
    ]  # fmt: skip
    assert all(r["ListUnitPrice"] == "" and r["SkuPriceId"].endswith("@unpriced") for r in unpriced)
    total = sum(Decimal(r["BilledCost"]) for r in rows)
    assert total == ledger_cost(project, DAY, DAY + timedelta(days=1))


@pytest.mark.django_db
def test_random_calls_sum_to_the_ledger_per_day_and_over_the_range(api: APIClient, project: Project) -> None:
    rng = random.Random(15)
    calls = []
    for i in range(300):
        provider, model = rng.choice(MODELS)
        input_tokens = rng.randint(0, 200_000)
        cache_read = rng.randint(0, input_tokens // 2)
        output = rng.randint(0, 5000)
        fields: dict[str, Any] = {
            "provider": provider, "model": model, "input_tokens": input_tokens, "cache_read_tokens": cache_read,
            "cache_write_tokens": rng.randint(0, input_tokens - cache_read) if provider == "anthropic" else 0,
            "output_tokens": output, "reasoning_tokens": rng.randint(0, output) if model == "o3-mini" else 0,
            "feature": rng.choice(["chat", "search", "summarise"]), "customer_id": rng.choice(["", "c1", "c2"]),
            "route_version": rng.choice(["v1", "v2"]), "environment": rng.choice(["prod", "staging"]),
            "service_tier": rng.choice(["default", "default", "batch"]), "cache_hit": rng.random() < 0.05,
        }  # fmt: skip
        if rng.random() < 0.1:
            fields["cost_usd"] = f"{Decimal(rng.randint(0, 10**10)).scaleb(-12):.12f}"
        calls.append(call(f"e{i}", DAY + timedelta(minutes=rng.randint(0, 3 * 24 * 60 - 1)), **fields))
    ingest_and_roll(api, calls)
    start, end = DAY, DAY + timedelta(days=3)
    rows = csv_rows(FocusQuery(project.pk, start, end))
    per_day: dict[str, Decimal] = defaultdict(Decimal)
    for r in rows:
        per_day[r["ChargePeriodStart"]] += Decimal(r["BilledCost"])
    usage = usage_by_day(project, start, end)
    assert {day: f"{cost:.12f}" for day, cost in per_day.items()} == usage
    assert sum(per_day.values()) == ledger_cost(project, start, end)
    # tokens: every provider-served token appears once, in its class
    tokens = (
        get_clickhouse()
        .query(
            "SELECT sum(input_tokens), sum(output_tokens) FROM llm_calls FINAL"
            " WHERE project_id = {p:UInt64} AND NOT cache_hit",
            parameters={"p": project.pk},
        )
        .result_rows[0]
    )
    inputs = sum(
        Decimal(r["ConsumedQuantity"]) for r in rows if r["x_TokenClass"] in ("input", "cache_read", "cache_write")
    )
    outputs = sum(Decimal(r["ConsumedQuantity"]) for r in rows if r["x_TokenClass"] in ("output", "reasoning"))
    assert (inputs, outputs) == (tokens[0], tokens[1])
    # the grain: one row per day, provider, model, token class and attribution
    keys = [(r["ChargePeriodStart"], r["ProviderName"], r["x_Model"], r["x_TokenClass"], r["Tags"]) for r in rows]
    assert len(keys) == len(set(keys))
    # where a row has a unit price, ListCost = ListUnitPrice × PricingQuantity (exact when the rate is one)
    for r in rows:
        if r["ListUnitPrice"] and r["x_PriceRef"].count("|") == 0 and r["x_ReportedCostCalls"] == "0":
            product = Decimal(r["ListUnitPrice"]) * Decimal(r["PricingQuantity"])
            assert abs(product - Decimal(r["ListCost"])) <= Decimal(r["PricingQuantity"]) * Decimal("1e-12")


@pytest.mark.django_db
def test_parquet_holds_the_same_rows_with_decimal_types(api: APIClient, project: Project) -> None:
    ingest_and_roll(
        api, [call("a", DAY + timedelta(hours=1), cache_read_tokens=100), call("b", DAY + timedelta(hours=30))]
    )
    q = FocusQuery(project.pk, DAY, DAY + timedelta(days=2))
    table = pq.read_table(io.BytesIO(focus_parquet(q)))
    assert table.schema.field("BilledCost").type == pa.decimal128(38, 12)
    assert table.schema.field("ListUnitPrice").type == pa.decimal128(38, 12)
    assert table.schema.field("PricingQuantity").type == pa.decimal128(38, 6)
    assert table.schema.field("ChargePeriodStart").type == pa.timestamp("ms", tz="UTC")
    assert table.column_names == list(COLUMN_NAMES)
    as_csv = csv_rows(q)
    assert table.num_rows == len(as_csv) == 5
    assert [f"{v:.12f}" for v in table.column("BilledCost").to_pylist()] == [r["BilledCost"] for r in as_csv]
    assert sum(table.column("BilledCost").to_pylist()) == ledger_cost(project, DAY, DAY + timedelta(2))
    assert [json.loads(t) for t in table.column("Tags").to_pylist()] == [json.loads(r["Tags"]) for r in as_csv]


@pytest.mark.django_db
def test_charge_periods_are_clipped_to_the_range_and_filters_narrow(api: APIClient, project: Project) -> None:
    ingest_and_roll(api, [call("a", DAY + timedelta(hours=13)), call("b", DAY + timedelta(hours=14), feature="other")])
    start = DAY + timedelta(hours=12)
    rows = list(focus_rows(FocusQuery(project.pk, start, DAY + timedelta(days=1, hours=6), {"feature": ("chat",)})))
    assert {r["x_Feature"] for r in rows} == {"chat"}
    assert {(r["ChargePeriodStart"], r["ChargePeriodEnd"]) for r in rows} == {(start, DAY + timedelta(days=1))}
    viewer = list(focus_rows(FocusQuery(project.pk, DAY, DAY + timedelta(days=1), customers=False)))
    assert all(r["x_CustomerId"] == "" and "customer" not in r["Tags"] for r in viewer)


def test_unit_price_is_exact_for_one_rate_and_rounded_half_even_otherwise() -> None:
    assert unit_price(120_000_000, 800) == Decimal("0.150000000000")
    assert unit_price(1, 3) == Decimal("0.000000333333")
    assert unit_price(2, 3) == Decimal("0.000000666667")
    assert unit_price(5, 0) is None


@pytest.mark.django_db
def test_bad_ranges_are_refused_with_a_reason(project: Project) -> None:
    for start, end, message in [
        (DAY, DAY, "from must be before to"),
        (DAY, DAY + timedelta(days=401), "at most 400 days"),
        (datetime(2000, 1, 1, tzinfo=UTC), datetime(2000, 1, 2, tzinfo=UTC), "kept"),
    ]:
        with pytest.raises(QueryError, match=message):
            list(focus_rows(FocusQuery(project.pk, start, end)))
    with pytest.raises(QueryError, match="unknown dimension"):
        list(focus_rows(FocusQuery(project.pk, DAY, DAY + timedelta(days=1), {"colour": ("red",)})))
