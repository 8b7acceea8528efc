"""Pricing arithmetic and price resolution, against the real genai-prices catalogue."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction

import genai_prices
import pytest
from genai_prices import Usage

from ledger import pricing
from ledger.pricing import (
    PriceBook,
    pusd_to_usd,
    rate_from_mtok,
    resolve_catalogue,
    usd_to_pusd,
)

NOV = int(datetime(2026, 11, 1, 12, tzinfo=UTC).timestamp() * 1000)
USD = 10**12


def compute_cost(
    price: pricing.Price | None,
    input_tokens: int,
    cache_read_tokens: int,
    cache_write_tokens: int,
    output_tokens: int,
    reasoning_tokens: int,
    reported_pusd: int | None = None,
    cache_hit: bool = False,
) -> pricing.Cost:
    """:func:`ledger.pricing.cost_parts` with named fields (the drain uses the plain tuple)."""
    parts = pricing.cost_parts(
        price, input_tokens, cache_read_tokens, cache_write_tokens, output_tokens, reasoning_tokens,
        reported_pusd, cache_hit,
    )  # fmt: skip
    return pricing.Cost._make(parts)


def test_rates_are_exact_integers_for_ordinary_prices() -> None:
    assert rate_from_mtok(Decimal("2.5")) == 2_500_000
    assert rate_from_mtok(Decimal("0.0375")) == 37_500


def test_a_price_past_six_decimals_rounds_per_part_not_per_token() -> None:
    rate = rate_from_mtok(Decimal("0.0833333333333333"))
    assert isinstance(rate, Fraction)
    cost = compute_cost(pricing.Price("x", "catalogue", pricing.Rates(rate, 0, 0, 0, 0)), 3, 0, 0, 0, 0)
    assert cost.total == round(3 * Fraction(Decimal("0.0833333333333333")) * 1_000_000)


def test_money_conversions_round_trip() -> None:
    assert usd_to_pusd(Decimal("0.123456789012")) == 123_456_789_012
    assert pusd_to_usd(123_456_789_012) == Decimal("0.123456789012")
    assert usd_to_pusd(Decimal("0.0000000000005")) == 0  # half-even below a pico-dollar


@pytest.mark.parametrize(
    ("provider", "model", "inp", "cache_read", "cache_write", "out"),
    [
        ("openai", "gpt-4o", 12_345, 4_000, 0, 678),
        ("anthropic", "claude-sonnet-4-5", 50_000, 20_000, 10_000, 2_000),
        ("google", "gemini-2.5-flash", 8_000, 1_000, 0, 300),
        ("google", "gemini-2.5-pro", 250_000, 0, 0, 1_000),  # above the 200k tier
    ],
)
def test_matches_genai_prices_calc_price(
    provider: str, model: str, inp: int, cache_read: int, cache_write: int, out: int
) -> None:
    """Our cached integer arithmetic gives the same answer as the catalogue's own calculator."""
    when = datetime(2026, 11, 1, tzinfo=UTC)
    price = resolve_catalogue(provider, model, "default", when, Fraction(1))
    ours = compute_cost(price, inp, cache_read, cache_write, out, 0)
    usage = Usage(input_tokens=inp, cache_read_tokens=cache_read, cache_write_tokens=cache_write, output_tokens=out)
    theirs = genai_prices.calc_price(usage, model, provider_id=provider, genai_request_timestamp=when)
    assert pusd_to_usd(ours.total) == theirs.total_price.quantize(Decimal("1e-12"))


def test_tier_applies_to_all_tokens_above_the_threshold() -> None:
    price = resolve_catalogue("google", "gemini-2.5-pro", "default", datetime(2026, 11, 1, tzinfo=UTC), Fraction(1))
    below = compute_cost(price, 200_000, 0, 0, 0, 0)
    above = compute_cost(price, 200_001, 0, 0, 0, 0)
    assert below.total == 200_000 * 1_250_000
    assert above.total == 200_001 * 2_500_000


def test_catalogue_is_resolved_once_per_model_tier_and_day(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, str, str]] = []
    real = pricing.resolve_catalogue

    def counting(provider: str, model: str, tier: str, when: datetime, multiplier: Fraction) -> pricing.Price | None:
        calls.append((provider, model, tier))
        return real(provider, model, tier, when, multiplier)

    monkeypatch.setattr(pricing, "resolve_catalogue", counting)
    pricing._catalogue_cache.clear()
    book = PriceBook()
    for i in range(1000):
        book.price("openai", "gpt-4o", "default", NOV + i * 1000)
    book.price("openai", "gpt-4o", "batch", NOV)
    book.price("openai", "gpt-4o", "default", NOV + 86_400_000)
    assert calls == [("openai", "gpt-4o", "default"), ("openai", "gpt-4o", "batch"), ("openai", "gpt-4o", "default")]


def test_unknown_model_is_unpriced_but_reported_cost_is_kept() -> None:
    book = PriceBook()
    assert book.price("acme", "nope-1", "default", NOV) is None
    assert compute_cost(None, 10, 0, 0, 10, 0).source == "unpriced"
    reported = compute_cost(None, 10, 0, 0, 10, 0, reported_pusd=5 * USD)
    assert (reported.total, reported.source) == (5 * USD, "reported")


def test_unknown_provider_name_still_finds_the_model() -> None:
    assert PriceBook().price("OpenAI-Proxy", "gpt-4o-mini", "default", NOV) is not None


COLUMN_CALLS = [  # (provider, model, tier, ts, input, cache read, cache write, output, reasoning, reported, hit)
    ("openai", "gpt-4o", "default", NOV, 1000, 200, 0, 300, 0, None, False),
    ("openai", "gpt-4o", "batch", NOV, 1000, 0, 0, 300, 0, None, False),  # a Fraction multiplier
    ("openai", "gpt-4o", "default", NOV + 86_400_000, 1000, 0, 0, 300, 0, None, True),  # app cache hit
    ("openai", "gpt-4o", "default", NOV, 10, 0, 0, 5, 0, 123_456, False),  # reported cost
    ("anthropic", "claude-sonnet-4-5", "default", NOV, 250_000, 1000, 500, 900, 0, None, False),  # tiered
    ("openai", "o3", "default", NOV, 3000, 0, 0, 2000, 1500, None, False),  # reasoning
    ("acme", "mystery", "default", NOV, 5, 0, 0, 5, 0, None, False),  # unpriced
    ("acme", "mystery", "default", NOV, 5, 0, 0, 5, 0, 77, False),  # unpriced, reported
    ("selfhost", "llama-ft", "default", NOV - 1, 100, 0, 0, 100, 0, None, False),  # before its override
    ("selfhost", "llama-ft", "default", NOV, 100, 0, 0, 100, 0, None, False),  # the override in force
]


@pytest.mark.parametrize("with_override", [False, True])
def test_column_pricing_equals_pricing_each_call(with_override: bool) -> None:
    # given a book (with or without a project override) and calls of every pricing case
    override = pricing.OverrideSpec(
        1, "selfhost", "llama-ft", datetime.fromtimestamp(NOV / 1000, tz=UTC), Decimal("0.3"), Decimal("0.6"),
        None, None, None,
    )  # fmt: skip
    book = PriceBook([override] if with_override else [])
    columns = list(zip(*COLUMN_CALLS, strict=True))
    # when the drain prices them column by column
    prices = book.prices(*columns[:4])
    costs = pricing.cost_columns(prices, *columns[4:])
    # then every call costs what pricing it on its own says
    expected = [
        pricing.cost_parts(PriceBook([override] if with_override else []).price(*c[:4]), *c[4:]) for c in COLUMN_CALLS
    ]
    assert prices == [book.price(*c[:4]) for c in COLUMN_CALLS]
    assert costs == expected
    assert {c[7] for c in costs} >= {pricing.SOURCE_CATALOGUE, pricing.SOURCE_REPORTED, pricing.SOURCE_UNPRICED}
    assert (costs[-1][7] == pricing.SOURCE_OVERRIDE) is with_override
