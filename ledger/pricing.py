"""Exact pricing of LLM calls.

Prices come from the genai-prices catalogue (historic prices by date, tiers, cache read/write,
batch and service-tier variants) unless the project has its own override in force at the call's
timestamp. A catalogue look-up costs ~60 µs, so each (provider, model, tier, UTC day) is resolved
once into integer rates and reused: pricing a record is a dict hit and a few integer products.

Money is integer pico-USD (1e-12 USD). Rates are pico-USD per token: an int whenever the price has
at most six decimals per million tokens (every price in practice), otherwise a Fraction whose
product is rounded to the pico-dollar.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from fractions import Fraction
from typing import NamedTuple, Union

import genai_prices
from genai_prices import data_snapshot
from genai_prices import types as gp

PICO_PER_USD = 10**12
MS_PER_DAY = 86_400_000
Rate = Union[int, Fraction]  # noqa: UP007 - a runtime alias used in isinstance-free arithmetic

# Applied when the catalogue has no price of its own for the tier; projects can set their own.
DEFAULT_TIER_MULTIPLIERS: dict[str, Fraction] = {
    "default": Fraction(1),
    "batch": Fraction(1, 2),
    "flex": Fraction(1, 2),
    "priority": Fraction(1),
}
_TIER_CONTEXT: dict[str, dict[str, str]] = {
    "batch": {"processing": "batch"},
    "flex": {"service_tier": "flex"},
    "priority": {"service_tier": "priority"},
}

SOURCE_CATALOGUE = "catalogue"
SOURCE_OVERRIDE = "override"
SOURCE_REPORTED = "reported"
SOURCE_UNPRICED = "unpriced"


def rate_from_mtok(usd_per_mtok: Decimal | Fraction | int) -> Rate:
    """USD per million tokens → pico-USD per token (× 10^6), exact."""
    value = Fraction(usd_per_mtok) * 1_000_000
    return value.numerator if value.denominator == 1 else value


def usd_to_pusd(usd: Decimal) -> int:
    """A USD amount → integer pico-USD, rounded half-even past the twelfth decimal."""
    return int((usd * PICO_PER_USD).to_integral_value())


def pusd_to_usd(pusd: int) -> Decimal:
    return Decimal(pusd).scaleb(-12)


def _times(tokens: int, rate: Rate) -> int:
    if type(rate) is int:
        return tokens * rate
    return round(tokens * rate)


def tokens_cost_pusd(tokens: int, rate: Rate) -> int:
    """What ``tokens`` cost at ``rate``, in pico-USD (rounded half-even for fractional rates)."""
    return _times(tokens, rate)


@dataclass(frozen=True, slots=True)
class Rates:
    """Pico-USD per token for each non-overlapping part of a call."""

    input: Rate
    cache_read: Rate
    cache_write: Rate
    output: Rate
    reasoning: Rate

    def scaled(self, factor: Fraction) -> Rates:
        if factor == 1:
            return self
        return Rates(*(_simplify(Fraction(r) * factor) for r in self._parts()))

    def _parts(self) -> tuple[Rate, ...]:
        return (self.input, self.cache_read, self.cache_write, self.output, self.reasoning)


def _simplify(value: Fraction) -> Rate:
    return value.numerator if value.denominator == 1 else value


@dataclass(frozen=True, slots=True)
class Price:
    """A resolved price: base rates plus tiers keyed by total input tokens (cliff pricing)."""

    ref: str
    source: str
    rates: Rates
    tiers: tuple[tuple[int, Rates], ...] = ()
    # One set of plain integer rates (no tiers, no fractions): the fast path of cost_parts.
    int_rates: tuple[int, int, int, int, int] | None = field(init=False)

    def __post_init__(self) -> None:
        parts = self.rates._parts()
        plain = not self.tiers and all(type(rate) is int for rate in parts)
        object.__setattr__(self, "int_rates", parts if plain else None)

    def rates_for(self, input_tokens: int) -> Rates:
        chosen = self.rates
        for start, rates in self.tiers:
            if input_tokens > start:
                chosen = rates
            else:
                break
        return chosen


class Cost(NamedTuple):
    input: int
    cache_read: int
    cache_write: int
    output: int
    reasoning: int
    total: int
    cache_saving: int
    source: str
    ref: str


UNPRICED_COST = Cost(0, 0, 0, 0, 0, 0, 0, SOURCE_UNPRICED, "")


CostParts = tuple[int, int, int, int, int, int, int, str, str]


def cost_columns(
    prices: Sequence[Price | None],
    input_tokens: Sequence[int],
    cache_read_tokens: Sequence[int],
    cache_write_tokens: Sequence[int],
    output_tokens: Sequence[int],
    reasoning_tokens: Sequence[int],
    reported_pusd: Sequence[int | None],
    cache_hit: Sequence[bool],
) -> list[CostParts]:
    """:func:`cost_parts` of every call of a column of calls, the common case (plain integer rates,
    no reported cost, no app cache hit) inlined: the drain prices every call it inserts."""
    out: list[CostParts] = []
    append = out.append
    for price, i, cr, cw, o, rs, rep, hit in zip(
        prices, input_tokens, cache_read_tokens, cache_write_tokens, output_tokens, reasoning_tokens,
        reported_pusd, cache_hit, strict=True,
    ):  # fmt: skip
        fast = price.int_rates if price is not None and rep is None and not hit else None
        if fast is None:
            append(cost_parts(price, i, cr, cw, o, rs, rep, hit))
            continue
        c_in = (i - cr - cw) * fast[0]
        c_cr = cr * fast[1]
        c_cw = cw * fast[2]
        c_out = (o - rs) * fast[3]
        c_rs = rs * fast[4]
        append((c_in, c_cr, c_cw, c_out, c_rs, c_in + c_cr + c_cw + c_out + c_rs, 0, price.source, price.ref))
    return out


def cost_parts(
    price: Price | None,
    input_tokens: int,
    cache_read_tokens: int,
    cache_write_tokens: int,
    output_tokens: int,
    reasoning_tokens: int,
    reported_pusd: int | None = None,
    cache_hit: bool = False,
) -> CostParts:
    """The cost parts of one call, as a plain tuple in :class:`Cost` order (the drain's hot path).

    Parts never overlap: uncached input excludes cache reads/writes and plain output excludes
    reasoning. A reported cost wins for the total; an app cache hit costs nothing and records
    what it saved."""
    if price is None:
        if reported_pusd is not None and not cache_hit:
            return (0, 0, 0, 0, 0, reported_pusd, 0, SOURCE_REPORTED, "reported")
        return UNPRICED_COST
    fast = price.int_rates
    if fast is not None:
        r_in, r_cr, r_cw, r_out, r_rs = fast
        c_in = (input_tokens - cache_read_tokens - cache_write_tokens) * r_in
        c_cr = cache_read_tokens * r_cr
        c_cw = cache_write_tokens * r_cw
        c_out = (output_tokens - reasoning_tokens) * r_out
        c_rs = reasoning_tokens * r_rs
    else:
        r = price.rates_for(input_tokens)
        c_in = _times(input_tokens - cache_read_tokens - cache_write_tokens, r.input)
        c_cr = _times(cache_read_tokens, r.cache_read)
        c_cw = _times(cache_write_tokens, r.cache_write)
        c_out = _times(output_tokens - reasoning_tokens, r.output)
        c_rs = _times(reasoning_tokens, r.reasoning)
    computed = c_in + c_cr + c_cw + c_out + c_rs
    if cache_hit:
        return (c_in, c_cr, c_cw, c_out, c_rs, 0, computed, price.source, price.ref)
    if reported_pusd is not None:
        return (c_in, c_cr, c_cw, c_out, c_rs, reported_pusd, 0, SOURCE_REPORTED, price.ref)
    return (c_in, c_cr, c_cw, c_out, c_rs, computed, 0, price.source, price.ref)


# --- the catalogue ---------------------------------------------------------------------------

_CATALOGUE_VERSION = genai_prices.__version__
_ONE = Fraction(1)
_KEYS = ("input_mtok", "cache_read_mtok", "cache_write_mtok", "output_mtok", "output_reasoning_mtok")


def _price_value(mp: gp.ModelPrice, key: str) -> Decimal | gp.TieredPrices | None:
    value = getattr(mp, key)
    if key == "cache_read_mtok" or key == "cache_write_mtok":
        return value if value is not None else mp.input_mtok
    if key == "output_reasoning_mtok":
        return value if value is not None else mp.output_mtok
    return value  # type: ignore[no-any-return]


def _value_at(value: Decimal | gp.TieredPrices | None, input_tokens: int) -> Decimal:
    if value is None:
        return Decimal(0)
    if isinstance(value, gp.TieredPrices):
        chosen = value.base
        for tier in value.tiers:
            if input_tokens > tier.start:
                chosen = tier.price
        return chosen
    return value


def _rates_from_model_price(mp: gp.ModelPrice) -> tuple[Rates, tuple[tuple[int, Rates], ...]] | None:
    values = [_price_value(mp, k) for k in _KEYS]
    if values[0] is None and values[3] is None:
        return None  # priced per request, image or audio only: not a token price
    starts = sorted({t.start for v in values if isinstance(v, gp.TieredPrices) for t in v.tiers})

    def rates_at(tokens: int) -> Rates:
        return Rates(*(rate_from_mtok(_value_at(v, tokens)) for v in values))

    base = rates_at(0)
    return base, tuple((s, rates_at(s + 1)) for s in starts)


def _period_label(info: gp.ModelInfo, when: datetime) -> str:
    if isinstance(info.prices, gp.ModelPrice):
        return "base"
    for conditional in reversed(info.prices):
        constraint = conditional.constraint
        if constraint is None or constraint.active(when):
            if isinstance(constraint, gp.StartDateConstraint):
                return constraint.start_date.isoformat()
            if isinstance(constraint, gp.TimeOfDateConstraint):
                return f"{constraint.start_time:%H:%M}-{constraint.end_time:%H:%M}"
            return "base"
    return "base"


def _time_of_day_priced(info: gp.ModelInfo) -> bool:
    constraints = [] if isinstance(info.prices, gp.ModelPrice) else [c.constraint for c in info.prices]
    constraints += [v.constraint for v in info.price_variants or ()]
    return any(isinstance(c, gp.TimeOfDateConstraint) for c in constraints)


def _find_model(provider: str, model: str) -> tuple[gp.Provider, gp.ModelInfo] | None:
    snapshot = data_snapshot.get_snapshot()
    for provider_id in (provider.lower() or None, None):
        try:
            return snapshot.find_provider_model(model, None, provider_id, None)
        except LookupError:
            continue
    return None


def resolve_catalogue(provider: str, model: str, tier: str, when: datetime, multiplier: Fraction) -> Price | None:
    """The catalogue price in force at ``when`` (slow: ~tens of µs; cache the result)."""
    found = _find_model(provider, model)
    if found is None:
        return None
    prov, info = found
    standard = info.get_prices(when)
    context = _TIER_CONTEXT.get(tier)
    chosen = info.get_prices(when, context) if context else standard
    has_variant = context is not None and chosen != standard
    rates = _rates_from_model_price(chosen)
    if rates is None:
        return None
    factor = Fraction(1) if has_variant else multiplier
    ref = f"genai-prices {_CATALOGUE_VERSION}:{prov.id}/{info.id}@{_period_label(info, when)}"
    if has_variant:
        ref += f"+{tier}"
    if factor != 1:
        ref += f"x{float(factor):g}"
    base, tiers = rates
    return Price(ref, SOURCE_CATALOGUE, base.scaled(factor), tuple((s, r.scaled(factor)) for s, r in tiers))


# Process-wide: catalogue prices do not depend on the project, only on the multiplier applied.
_catalogue_cache: dict[tuple[str, str, str, int, Fraction], Price | None] = {}
_minute_priced: dict[tuple[str, str], bool] = {}
_CACHE_LIMIT = 200_000


def minute_priced(provider: str, model: str) -> bool:
    """Whether the catalogue prices this model by time of day (off-peak rates), not only by date."""
    pm = (provider, model)
    minute = _minute_priced.get(pm)
    if minute is None:
        found = _find_model(provider, model)
        minute = _minute_priced[pm] = found is not None and _time_of_day_priced(found[1])
    return minute


def catalogue_price(provider: str, model: str, tier: str, ts_ms: int, multiplier: Fraction) -> Price | None:
    minute = minute_priced(provider, model)
    # Prices change by UTC date; a few (off-peak pricing) by time of day: cache those per minute.
    period = ts_ms // 60_000 if minute else ts_ms // MS_PER_DAY
    key = (provider, model, tier, period, multiplier)
    try:
        return _catalogue_cache[key]
    except KeyError:
        pass
    if len(_catalogue_cache) >= _CACHE_LIMIT:
        _catalogue_cache.clear()
    when = datetime.fromtimestamp(ts_ms / 1000, tz=UTC)
    price = _catalogue_cache[key] = resolve_catalogue(provider, model, tier, when, multiplier)
    return price


# --- a project's price book ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OverrideSpec:
    """A project override as plain values (from ``ledger.models.PriceOverride``)."""

    id: int
    provider: str
    model: str
    effective_from: datetime
    input_per_mtok: Decimal
    output_per_mtok: Decimal
    cache_read_per_mtok: Decimal | None
    cache_write_per_mtok: Decimal | None
    reasoning_per_mtok: Decimal | None

    def rates(self) -> Rates:
        inp, out = self.input_per_mtok, self.output_per_mtok
        return Rates(
            rate_from_mtok(inp),
            rate_from_mtok(self.cache_read_per_mtok if self.cache_read_per_mtok is not None else inp),
            rate_from_mtok(self.cache_write_per_mtok if self.cache_write_per_mtok is not None else inp),
            rate_from_mtok(out),
            rate_from_mtok(self.reasoning_per_mtok if self.reasoning_per_mtok is not None else out),
        )


class PriceBook:
    """Prices for one project: its overrides first (by effective date), then the catalogue."""

    def __init__(self, overrides: Iterable[OverrideSpec] = (), multipliers: dict[str, Fraction] | None = None):
        self.multipliers = {**DEFAULT_TIER_MULTIPLIERS, **(multipliers or {})}
        grouped: dict[tuple[str, str], list[OverrideSpec]] = {}
        for spec in overrides:
            grouped.setdefault((spec.provider.lower(), spec.model.lower()), []).append(spec)
        self._overrides: dict[tuple[str, str], tuple[list[int], list[OverrideSpec]]] = {}
        for key, specs in grouped.items():
            specs.sort(key=lambda s: s.effective_from)
            starts = [int(s.effective_from.timestamp() * 1000) for s in specs]
            self._overrides[key] = (starts, specs)
        self._override_prices: dict[tuple[int, str], Price] = {}
        self._catalogue: dict[tuple[str, str, str, int], Price | None] = {}

    def price(self, provider: str, model: str, tier: str, ts_ms: int) -> Price | None:
        """The price in force at ``ts_ms`` (epoch milliseconds, UTC) for this tier."""
        if self._overrides:
            found = self._overrides.get((provider.lower(), model.lower()))
            if found is not None:
                starts, specs = found
                index = bisect.bisect_right(starts, ts_ms)
                if index:
                    return self._override_price(specs[index - 1], tier)
        # A per-book memo by UTC day in front of the shared cache: the hot path hashes four plain
        # values instead of a Fraction. Minute-priced models (off-peak prices) skip it.
        key = (provider, model, tier, ts_ms // MS_PER_DAY)
        try:
            return self._catalogue[key]
        except KeyError:
            pass
        price = catalogue_price(provider, model, tier, ts_ms, self.multipliers.get(tier, _ONE))
        if not _minute_priced.get((provider, model)):
            self._catalogue[key] = price
        return price

    def prices(
        self, providers: Sequence[str], models: Sequence[str], tiers: Sequence[str], ts_ms: Sequence[int]
    ) -> list[Price | None]:
        """:meth:`price` for each call of a column of calls (the drain's hot path): one plain dict
        lookup a call where the price is by day, as :meth:`price` memoizes it."""
        memo = self._catalogue
        price = self.price
        if self._overrides:
            return [price(p, m, t, ts) for p, m, t, ts in zip(providers, models, tiers, ts_ms, strict=True)]
        out: list[Price | None] = []
        append = out.append
        for p, m, t, ts in zip(providers, models, tiers, ts_ms, strict=True):
            key = (p, m, t, ts // MS_PER_DAY)
            if key in memo:
                append(memo[key])
            else:
                append(price(p, m, t, ts))
        return out

    def _override_price(self, spec: OverrideSpec, tier: str) -> Price:
        key = (spec.id, tier)
        price = self._override_prices.get(key)
        if price is None:
            factor = self.multipliers.get(tier, Fraction(1))
            ref = f"override:{spec.id}" + (f"x{float(factor):g}" if factor != 1 else "")
            price = self._override_prices[key] = Price(ref, SOURCE_OVERRIDE, spec.rates().scaled(factor))
        return price
