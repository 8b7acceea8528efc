"""What-if re-pricing: what the selected calls would have cost at another model and/or service tier.

Each call keeps its token parts (uncached input, cache read, cache write, plain output, reasoning)
and is priced with the project's :class:`~ledger.pricing.PriceBook` (its overrides, then the
catalogue) for the target at the call's own timestamp, long-context tiers included. A part the
target has no price for is priced as uncached input (the catalogue's own rule); app cache hits
stay at 0; ``actual`` is what the ledger holds (``cost_pusd``). A call whose target the book cannot
price (an unknown model at that date) adds 0 and is counted in ``unpriced_calls``.

Method (exact, and fast on big ranges): the token parts are summed per group, bucket, call
(provider, model, tier), pricing period and tier band, where the period is the UTC day (the minute
for models priced by time of day), cut at the project's override dates, and the band is how many
of the catalogue's tier thresholds the call's input exceeds. Every call in one such row has the
same target price and the same tier, so with integer rates (pico-USD per token: any price with at
most six decimals per million tokens) the row's cost is the sums times the rates, equal to the
per-call sum to the pico-dollar. The whole hours of the range are summed from ``rollup_price_hour``
(the same parts per hour, main dimensions, tier, streamed and band of ``ledger.measures.PRICE_BANDS``:
a few thousand rows for a month); the partial hours at its edges, and the questions that tier
cannot answer exactly (a customer or user filter or group, minute buckets, a time zone off the
hour, an override taking effect within an hour, a time-of-day price, a price threshold outside the
bands), from ``llm_calls`` itself. Rates that are fractions (rounded per call and part) make the
whole answer fall back to pricing each call (``method = "per_call"``), bounded by
:data:`MAX_PER_CALL` calls (a wider range is refused, asking for a narrower one). Tests check the
tier, the raw sums and the per-call prices equal each other and ``genai_prices.calc_price``.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from genai_prices import data_snapshot
from genai_prices import types as gp

from ledger.clickhouse.client import get_clickhouse
from ledger.measures import MAIN_DIMENSIONS, PRICE_BANDS, calls_where, raw_calls_where
from ledger.models import PriceOverride
from ledger.pricebook import load_price_book
from ledger.pricing import PriceBook, Rates, cost_parts, minute_priced, pusd_to_usd
from ledger.queries import QueryError, UsageQuery, bucket_sql, validate
from ledger.usage_shape import align, buckets

TIERS = ("default", "batch", "flex", "priority")
ONLY_COLUMNS = ("service_tier", "streamed", "finish_reason", "error_type")  # raw and price-tier columns
MAX_PER_CALL = 2_000_000  # calls the per-call fallback prices in one answer
MAX_ROWS = 100_000  # rows (groups × buckets) in one answer
CALLER = "ledger.whatif"


@dataclass(frozen=True)
class Target:
    """What to re-price at: an empty field keeps the call's own provider, model or tier."""

    provider: str = ""
    model: str = ""
    tier: str = ""


@dataclass
class Totals:
    calls: int = 0
    actual_pusd: int = 0
    whatif_pusd: int = 0
    unpriced_calls: int = 0

    def add(self, other: Totals) -> None:
        self.calls += other.calls
        self.actual_pusd += other.actual_pusd
        self.whatif_pusd += other.whatif_pusd
        self.unpriced_calls += other.unpriced_calls

    def as_row(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "actual_cost": pusd_to_usd(self.actual_pusd),
            "whatif_cost": pusd_to_usd(self.whatif_pusd),
            "delta": pusd_to_usd(self.whatif_pusd - self.actual_pusd),
            "unpriced_calls": self.unpriced_calls,
        }


@dataclass
class WhatIfResult:
    total: Totals
    rows: list[dict[str, Any]]  # per bucket and group: labels then the Totals fields
    method: str  # "aggregate" or "per_call"


def validate_target(target: Target) -> None:
    if not target.model and not target.tier:
        raise QueryError("name a target: to_model and/or to_tier")
    if target.provider and not target.model:
        raise QueryError("to_provider needs to_model")
    if target.tier and target.tier not in TIERS:
        raise QueryError(f"to_tier must be one of {', '.join(TIERS)}")


@functools.cache
def tier_thresholds() -> tuple[int, ...]:
    """Every input-token threshold at which any catalogue price (variants included) changes tier."""
    starts: set[int] = set()
    for provider in data_snapshot.get_snapshot().providers:
        for info in provider.models:
            prices = [info.prices] if isinstance(info.prices, gp.ModelPrice) else [c.prices for c in info.prices]
            prices += [v.prices for v in info.price_variants or ()]
            for mp in prices:
                for value in vars(mp).values():
                    if isinstance(value, gp.TieredPrices):
                        starts.update(t.start for t in value.tiers)
    return tuple(sorted(starts))


def _integer(rates: Rates) -> bool:
    return all(
        type(r) is int for r in (rates.input, rates.cache_read, rates.cache_write, rates.output, rates.reasoning)
    )


class _Fractional(Exception):
    """A target rate is a fraction: sums cannot be priced exactly, each call must be."""


def whatif(
    q: UsageQuery,
    target: Target,
    *,
    book: PriceBook | None = None,
    per_call: bool = False,
    rollup: bool = True,
    only: dict[str, tuple[str, ...]] | None = None,
) -> WhatIfResult:
    """Re-price the calls ``q`` selects (its range, filters, group_by, granularity and tz) at ``target``.

    ``only`` narrows the calls further by the price tier's own columns (:data:`ONLY_COLUMNS`, values as
    ``toString`` gives them: ``{"streamed": ("false",)}``). ``rollup=False`` sums the raw table even
    where the price tier could serve (tests compare the two)."""
    if only and set(only) - set(ONLY_COLUMNS):
        raise ValueError(f"only takes {', '.join(ONLY_COLUMNS)}")
    validate_target(target)
    tz = validate(replace(q, metrics=("cost",), order_by="cost"))
    q = replace(q, start=q.start.astimezone(UTC), end=q.end.astimezone(UTC))
    book = book if book is not None else load_price_book(q.project_id)
    params: dict[str, Any] = {"project": q.project_id, "start": q.start, "end": q.end, "tz": tz.key}
    groups = tuple(q.group_by)
    select = "".join(f"toString({d}) AS g_{d}, " for d in groups)
    cells: dict[tuple[Any, ...], Totals] = {}
    sums = _Sums(q, target, book, params, select, groups, cells, {**q.filters, **(only or {})})
    method = "aggregate"
    try:
        if per_call:
            raise _Fractional
        try:
            sums.run(rollup)
        except _NeedsRaw:
            cells.clear()
            sums.run(rollup=False)
    except _Fractional:
        cells.clear()
        method = "per_call"
        where = raw_calls_where(sums.filters, params)
        _per_call(target, book, params, where, bucket_sql(q.granularity, "timestamp") + " AS b, " + select,
                  groups, cells)  # fmt: skip
    total = Totals()
    for cell in cells.values():
        total.add(cell)
    return WhatIfResult(total, _shape(cells, q, tz, groups), method)


class _NeedsRaw(Exception):
    """The price tier cannot answer this exactly (see :meth:`_Sums.rollup_range`): sum the raw table."""


def _ceil_hour(when: datetime) -> datetime:
    floor = when.replace(minute=0, second=0, microsecond=0)
    return floor if floor == when else floor + timedelta(hours=1)


@dataclass
class _Sums:
    """Token parts summed per (bucket, group, provider, model, tier, pricing period, override segment, band)
    and priced row by row: from ``rollup_price_hour`` over the whole hours of the range where it can
    answer exactly, from the raw table over the rest."""

    q: UsageQuery
    target: Target
    book: PriceBook
    params: dict[str, Any]
    select: str
    groups: tuple[str, ...]
    cells: dict[tuple[Any, ...], Totals]
    filters: dict[str, tuple[str, ...]]  # the query's and ``only``

    def run(self, rollup: bool) -> None:
        q, bounds = self.q, _override_bounds(self.q.project_id)
        self.params["bounds"] = bounds
        self.params["bands"] = list(tier_thresholds())
        inner = self.rollup_range(bounds) if rollup else None
        if inner is None:
            self.raw(q.start, q.end)
            return
        hs, he = inner
        if q.start < hs:
            self.raw(q.start, hs)
        self.from_rollup(hs, he)
        if he < q.end:
            self.raw(he, q.end)

    def rollup_range(self, bounds: list[int]) -> tuple[datetime, datetime] | None:
        """The whole hours of the range the price tier serves, or None where it cannot answer exactly:
        a customer or user filter or group, minute buckets, a time zone off the hour, an override
        taking effect within an hour."""
        q = self.q
        if any(d not in MAIN_DIMENSIONS for d in (*q.filters, *q.group_by)) or q.granularity == "minute":
            return None
        tz = ZoneInfo(self.params["tz"])
        if any((when.astimezone(tz).utcoffset() or timedelta()) % timedelta(hours=1) for when in (q.start, q.end)):
            return None
        if any(b % 3_600_000 for b in bounds):
            return None
        hs, he = _ceil_hour(q.start), q.end.replace(minute=0, second=0, microsecond=0)
        return (hs, he) if hs < he else None

    def raw(self, start: datetime, end: datetime) -> None:
        params = {**self.params, "start": start, "end": end}
        where = raw_calls_where(self.filters, params)
        period = self.period(where, params, "llm_calls", "timestamp")
        sql = (
            f"SELECT {bucket_sql(self.q.granularity, 'timestamp')} AS b, {self.select}"  # noqa: S608 - values bound
            f"toString(provider) AS p, toString(model) AS m, toString(service_tier) AS t, {period} AS period,"
            " arrayCount(x -> toUnixTimestamp64Milli(timestamp) >= x, {bounds:Array(Int64)}) AS segment,"
            " arrayCount(x -> input_tokens > x, {bands:Array(UInt64)}) AS band,"
            " min(toUnixTimestamp64Milli(timestamp)), min(input_tokens), count(), countIf(cache_hit),"
            " sum(toInt128(cost_pusd)),"
            " sumIf(input_tokens - cache_read_tokens - cache_write_tokens, NOT cache_hit),"
            " sumIf(cache_read_tokens, NOT cache_hit), sumIf(cache_write_tokens, NOT cache_hit),"
            " sumIf(output_tokens - reasoning_tokens, NOT cache_hit), sumIf(reasoning_tokens, NOT cache_hit)"
            f" FROM llm_calls FINAL WHERE {where}"
            f" GROUP BY b{''.join(', g_' + d for d in self.groups)}, p, m, t, period, segment, band"
        )
        self.price_rows(get_clickhouse().query(sql, parameters=params, caller=CALLER).result_rows, exact_bands=False)

    def from_rollup(self, start: datetime, end: datetime) -> None:
        params = {**self.params, "start": start, "end": end}
        where = calls_where(self.filters, params, "bucket", "DateTime('UTC')")
        period = self.period(where, params, "rollup_price_hour", "bucket")
        if period != "toStartOfDay(bucket)":  # priced by time of day: per minute, only the raw table has it
            raise _NeedsRaw
        sql = (
            f"SELECT {bucket_sql(self.q.granularity, 'bucket')} AS b, {self.select}"  # noqa: S608 - values bound
            f"toString(provider) AS p, toString(model) AS m, toString(service_tier) AS t, {period} AS period,"
            " arrayCount(x -> toUnixTimestamp(bucket) * 1000 >= x, {bounds:Array(Int64)}) AS segment, price_band,"
            " min(toUnixTimestamp(bucket)) * 1000, price_band, sum(calls), sum(cache_hits), sum(cost_pusd),"
            " sum(priced_uncached_input_tokens), sum(priced_cache_read_tokens), sum(priced_cache_write_tokens),"
            " sum(priced_output_tokens), sum(priced_reasoning_tokens)"
            f" FROM rollup_price_hour FINAL WHERE {where} AND calls > 0"
            f" GROUP BY b{''.join(', g_' + d for d in self.groups)}, p, m, t, period, segment, price_band"
        )
        self.price_rows(get_clickhouse().query(sql, parameters=params, caller=CALLER).result_rows, exact_bands=True)

    def period(self, where: str, params: dict[str, Any], table: str, time_column: str) -> str:
        """The pricing period: the UTC day, or the minute for a model priced by time of day."""
        ch, target = get_clickhouse(), self.target
        if target.model:
            minute = minute_priced(target.provider, target.model) if target.provider else None
            if minute is None:  # the call's own provider: ask for each one in the range
                providers = ch.query(
                    f"SELECT DISTINCT toString(provider) FROM {table} WHERE {where}",  # noqa: S608 - values bound
                    parameters=params,
                    caller=CALLER,
                ).result_rows
                minute = any(minute_priced(p, target.model) for (p,) in providers)
            return f"toStartOfMinute({time_column})" if minute else f"toStartOfDay({time_column})"
        pairs = ch.query(
            f"SELECT DISTINCT toString(provider), toString(model) FROM {table} WHERE {where}",  # noqa: S608
            parameters=params,
            caller=CALLER,
        ).result_rows
        params["minute_models"] = [f"{p}\x1f{m}" for p, m in pairs if minute_priced(p, m)]
        if not params["minute_models"]:
            return f"toStartOfDay({time_column})"
        return (
            "if(concat(toString(provider), '\\x1f', toString(model)) IN {minute_models:Array(String)},"
            f" toStartOfMinute({time_column}), toStartOfDay({time_column}))"
        )

    def price_rows(self, rows: Iterable[Sequence[Any]], exact_bands: bool) -> None:
        """Price each summed row at the target; ``exact_bands``: the rows carry PRICE_BANDS bands, and a
        price with another threshold cannot be told apart within them."""
        target, width = self.target, 1 + len(self.groups)
        for row in rows:
            key = tuple(row[:width])
            provider, model, tier = row[width : width + 3]
            ts_ms, rep_input, calls, hits, actual, t_in, t_cr, t_cw, t_out, t_rs = row[width + 6 :]
            if exact_bands:  # the band's smallest input stands for all of its calls
                rep_input = PRICE_BANDS[rep_input - 1] + 1 if rep_input else 0
            cell = self.cells.setdefault(key, Totals())
            cell.calls += calls
            cell.actual_pusd += int(actual)
            if calls == hits:  # app cache hits only: they cost 0 at any price
                continue
            price = self.book.price(
                target.provider or provider if target.model else provider,
                target.model or model,
                target.tier or tier,
                ts_ms,
            )
            if price is None:
                cell.unpriced_calls += calls - hits
                continue
            if exact_bands and any(start not in _BANDS for start, _ in price.tiers):
                raise _NeedsRaw
            rates = price.rates_for(rep_input)
            if not _integer(rates):
                raise _Fractional
            cell.whatif_pusd += (
                t_in * rates.input
                + t_cr * rates.cache_read
                + t_cw * rates.cache_write
                + t_out * rates.output
                + t_rs * rates.reasoning
            )


_BANDS = frozenset(PRICE_BANDS)


def _per_call(
    target: Target,
    book: PriceBook,
    params: dict[str, Any],
    where: str,
    select: str,
    groups: tuple[str, ...],
    cells: dict[tuple[Any, ...], Totals],
) -> None:
    sql = (
        f"SELECT {select}toString(provider), toString(model), toString(service_tier),"  # noqa: S608
        " toUnixTimestamp64Milli(timestamp), input_tokens, cache_read_tokens, cache_write_tokens, output_tokens,"
        f" reasoning_tokens, cache_hit, cost_pusd FROM llm_calls FINAL WHERE {where} LIMIT {MAX_PER_CALL + 1}"
    )
    rows = get_clickhouse().query(sql, parameters=params, caller=CALLER).result_rows
    if len(rows) > MAX_PER_CALL:
        raise QueryError(f"this what-if prices each call and the range holds more than {MAX_PER_CALL}: narrow it")
    width = 1 + len(groups)
    for row in rows:
        key = tuple(row[:width])
        provider, model, tier, ts_ms, inp, cr, cw, out, rs, hit, actual = row[width:]
        cell = cells.setdefault(key, Totals())
        cell.calls += 1
        cell.actual_pusd += actual
        if hit:
            continue
        price = book.price(target.provider or provider if target.model else provider, target.model or model,
                           target.tier or tier, ts_ms)  # fmt: skip
        if price is None:
            cell.unpriced_calls += 1
            continue
        cell.whatif_pusd += cost_parts(price, inp, cr, cw, out, rs)[5]


def _override_bounds(project_id: int) -> list[int]:
    """The instants (epoch ms) where one of the project's override prices takes effect."""
    dates: Iterable[datetime] = PriceOverride.objects.filter(project_id=project_id).values_list(
        "effective_from", flat=True
    )
    return sorted({int(d.timestamp() * 1000) for d in dates})


def _shape(cells: dict[tuple[Any, ...], Totals], q: UsageQuery, tz: Any, groups: Sequence[str]) -> list[dict[str, Any]]:
    """Rows per group (by actual cost, biggest first), each group's buckets in time order, empty ones as zeros."""
    per_group: dict[tuple[Any, ...], Totals] = {}
    for key, cell in cells.items():
        per_group.setdefault(key[1:], Totals()).add(cell)
    ranked = sorted(per_group, key=lambda g: (-per_group[g].actual_pusd, g))
    if q.granularity is None:
        if not groups:
            return [per_group.get((), Totals()).as_row()]
        return [{**dict(zip(groups, g, strict=True)), **per_group[g].as_row()} for g in ranked]
    start = align(q.start, q.granularity, tz)
    timeline = {int(b.timestamp()): b for b in buckets(start, q.end, q.granularity, tz)}
    for key in cells:
        timeline.setdefault(key[0], datetime.fromtimestamp(key[0], tz))
    if len(ranked) * len(timeline) > MAX_ROWS:
        raise QueryError(f"more than {MAX_ROWS} rows (groups x buckets): use a coarser granularity or fewer groups")
    out: list[dict[str, Any]] = []
    for group in ranked or ([()] if not groups else []):
        labels = dict(zip(groups, group, strict=True))
        for epoch in sorted(timeline):
            cell = cells.get((epoch, *group), Totals())
            out.append({"bucket": timeline[epoch], **labels, **cell.as_row()})
    return out


def money(value: Decimal) -> str:
    """A 12-place decimal string, like /v1/usage."""
    return f"{value:.12f}"
