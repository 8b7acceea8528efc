"""Ranked savings opportunities over a range: what ``GET /v1/advice`` answers.

Each kind is one small function over the calls a :class:`~ledger.queries.UsageQuery` selects (its
range and filters): rollup aggregates through :func:`~ledger.queries.usage`, re-pricing through
:func:`~ledger.whatif.whatif`, and raw group-bys here where only the raw table holds the field
(error_type, finish_reason, trace_id, the prompt prefix). Values are bound, the project id is on
every query. Savings are exact pico-USD; ``monthly`` scales them to 30 days by the range's length.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from fractions import Fraction
from typing import Any
from urllib.parse import urlencode

from ledger.clickhouse.client import get_clickhouse
from ledger.pricebook import load_price_book
from ledger.pricing import PriceBook, cost_parts, pusd_to_usd
from ledger.queries import UsageQuery, usage, validate
from ledger.whatif import Target, whatif

KINDS = ("routing", "prompt_cache", "batch", "output_length", "retries", "errors", "eval_shadow")
MONTH_MS = 30 * 86_400_000
MAX_ROWS = 2_000_000  # raw rows one kind reads
CACHE_MIN_PREFIX = 1024  # tokens: the smallest prefix providers cache
CACHE_TTL_MS = 5 * 60_000  # the cache lifetime (refreshed by each use)
CACHE_READ_SHARE = Fraction(1, 2)  # "well below the prefix": cache reads under half of what could be read
MAX_TOKENS_SLACK = 4  # max_tokens this many times the p99 output counts as "far above"
CALLER = "ledger.advice"


@dataclass
class Recommendation:
    kind: str
    title: str
    scope: dict[str, str]
    savings_pusd: int
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass
class Advice:
    recommendations: list[Recommendation]
    notes: list[str]  # what was looked at and not recommended, and why
    range_ms: int

    def monthly_pusd(self, savings_pusd: int) -> int:
        """Savings × 30 days / the range's length, rounded down to the pico-dollar."""
        return savings_pusd * MONTH_MS // self.range_ms

    def as_rows(self) -> list[dict[str, Any]]:
        return [
            {
                "kind": r.kind,
                "title": r.title,
                "scope": r.scope,
                "savings_usd": pusd_to_usd(r.savings_pusd),
                "monthly_savings_usd": pusd_to_usd(self.monthly_pusd(r.savings_pusd)),
                "evidence": r.evidence,
            }
            for r in self.recommendations
        ]


class _Ctx:
    """The query, its bound parameters and WHERE clause over raw calls, links and the price book."""

    def __init__(self, q: UsageQuery, book: PriceBook | None) -> None:
        self.q = q
        self.book = book if book is not None else load_price_book(q.project_id)
        self.params: dict[str, Any] = {"project": q.project_id, "start": q.start, "end": q.end}
        where = [
            "project_id = {project:UInt64}",
            "timestamp >= {start:DateTime64(3, 'UTC')}",
            "timestamp < {end:DateTime64(3, 'UTC')}",
        ]
        for i, (dim, values) in enumerate(sorted(q.filters.items())):
            self.params[f"f{i}"] = list(values)
            where.append(f"toString({dim}) IN {{f{i}:Array(String)}}")
        self.where = " AND ".join(where)

    def rows(self, sql: str, name: str, **extra: Any) -> list[Any]:
        return list(
            get_clickhouse().query(sql, parameters={**self.params, **extra}, caller=f"{CALLER}.{name}").result_rows
        )

    def _range(self, scope: dict[str, str]) -> dict[str, str]:
        filters = {d: ",".join(v) for d, v in sorted(self.q.filters.items())}
        return {"from": _iso(self.q.start), "to": _iso(self.q.end), **filters, **scope}

    def whatif_link(self, scope: dict[str, str], **target: str) -> str:
        return "/v1/whatif?" + urlencode({**self._range(scope), **target, "group_by": "feature"})

    def dashboard(self, page: str, scope: dict[str, str]) -> str:
        return f"/p/{self.q.project_id}/{page}/?" + urlencode(self._range(scope))


def _iso(when: datetime) -> str:
    text: str = when.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return text


def _total(q: UsageQuery, group_by: tuple[str, ...], metrics: tuple[str, ...], order_by: str) -> list[dict[str, Any]]:
    """One row per group over the whole range (usage() picks the rollup)."""
    query = replace(q, granularity=None, group_by=group_by, metrics=metrics, order_by=order_by, limit=10_000)
    return usage(query).rows


def _pusd(value: Any) -> int:
    """A usage() money Decimal → pico-USD."""
    return int(value.scaleb(12))


def retries(ctx: _Ctx) -> list[Recommendation]:
    """Spend on retries (attempt > 1) by feature and model: the spend itself is what fewer retries save."""
    out = []
    for row in _total(ctx.q, ("feature", "model"), ("retry_cost", "retries", "calls"), "retry_cost"):
        cost = _pusd(row["retry_cost"])
        if row["retries"] == 0:
            continue
        scope = {"feature": row["feature"], "model": row["model"]}
        out.append(
            Recommendation(
                "retries",
                f"Retries of {row['feature']} on {row['model']}: {row['retries']} of {row['calls']} calls",
                scope,
                cost,
                {
                    "retries": row["retries"],
                    "calls": row["calls"],
                    "retry_cost": pusd_to_usd(cost),
                    "method": "savings = the spend on calls with attempt > 1 (an upper bound)",
                    "dashboard": ctx.dashboard("engineering", scope),
                },
            )
        )
    return out


def errors(ctx: _Ctx) -> list[Recommendation]:
    """Spend on failed calls by feature, model and error_type (a raw group-by: no rollup holds error_type)."""
    sql = (
        "SELECT toString(feature), toString(model), toString(error_type), count(), sum(toInt128(cost_pusd))"  # noqa: S608
        f" FROM llm_calls FINAL WHERE {ctx.where} AND status != 'ok'"
        " GROUP BY feature, model, error_type ORDER BY 5 DESC, 4 DESC, 1, 2, 3 LIMIT 1000"
    )
    out = []
    for feature, model, error_type, calls, cost in ctx.rows(sql, "errors"):
        scope = {"feature": feature, "model": model}
        cause = error_type or "unknown"
        out.append(
            Recommendation(
                "errors",
                f"Failed calls of {feature} on {model}: {calls} × {cause}",
                {**scope, "error_type": cause},
                int(cost),
                {
                    "failed_calls": calls,
                    "error_type": error_type,
                    "cost": pusd_to_usd(int(cost)),
                    "method": "savings = the spend on calls whose status is not ok (an upper bound)",
                    "dashboard": ctx.dashboard("calls", scope),
                },
            )
        )
    return out


def eval_shadow(ctx: _Ctx) -> list[Recommendation]:
    """Spend on non-live (eval, shadow) traffic by feature."""
    out = []
    for row in _total(ctx.q, ("feature", "traffic"), ("cost", "calls"), "cost"):
        if row["traffic"] == "live" or row["calls"] == 0:
            continue
        scope = {"feature": row["feature"], "traffic": row["traffic"]}
        cost = _pusd(row["cost"])
        out.append(
            Recommendation(
                "eval_shadow",
                f"{row['traffic'].capitalize()} traffic of {row['feature']}: {row['calls']} calls",
                scope,
                cost,
                {
                    "calls": row["calls"],
                    "cost": pusd_to_usd(cost),
                    "method": "savings = the spend on this non-live traffic (an upper bound: run less of it)",
                    "whatif": ctx.whatif_link(scope, to_tier="batch"),
                    "dashboard": ctx.dashboard("engineering", scope),
                },
            )
        )
    return out


def batch(ctx: _Ctx) -> list[Recommendation]:
    """Eval and shadow traffic, not streamed, at the default tier, re-priced at the batch tier."""
    q = replace(ctx.q, filters={**ctx.q.filters, "traffic": ("eval", "shadow")}, group_by=("feature",))
    allowed = set(ctx.q.filters.get("traffic", ("eval", "shadow")))
    if not allowed & {"eval", "shadow"}:
        return []
    q = replace(q, filters={**q.filters, "traffic": tuple(t for t in ("eval", "shadow") if t in allowed)})
    result = whatif(replace(q, granularity=None), Target(tier="batch"), book=ctx.book)
    # Streamed calls and calls already at another tier cannot move: price them per call and take them out.
    excluded: dict[str, list[int]] = {}
    traffic = q.filters["traffic"]
    sql = (
        "SELECT toString(feature), toString(provider), toString(model), toUnixTimestamp64Milli(timestamp),"  # noqa: S608
        " input_tokens, cache_read_tokens, cache_write_tokens, output_tokens, reasoning_tokens, cache_hit, cost_pusd"
        f" FROM llm_calls FINAL WHERE {ctx.where} AND toString(traffic) IN {{traffic:Array(String)}}"
        f" AND (streamed OR service_tier != 'default') LIMIT {MAX_ROWS}"
    )
    for feature, provider, model, ts, inp, cr, cw, out_t, rs, hit, actual in ctx.rows(
        sql, "batch", traffic=list(traffic)
    ):
        cell = excluded.setdefault(feature, [0, 0, 0])
        cell[0] += 1
        cell[1] += actual
        price = None if hit else ctx.book.price(provider, model, "batch", ts)
        cell[2] += cost_parts(price, inp, cr, cw, out_t, rs)[5] if price is not None else 0
    recs = []
    for row in result.rows:
        feature = row["feature"]
        gone = excluded.get(feature, [0, 0, 0])
        actual = _pusd(row["actual_cost"]) - gone[1]
        at_batch = _pusd(row["whatif_cost"]) - gone[2]
        calls = row["calls"] - gone[0]
        saving = actual - at_batch
        if calls <= 0 or saving <= 0:
            continue
        scope = {"feature": feature, "traffic": ",".join(traffic)}
        recs.append(
            Recommendation(
                "batch",
                f"Run {feature}'s {'/'.join(traffic)} traffic through the batch tier",
                scope,
                saving,
                {
                    "calls": calls,
                    "excluded_calls": gone[0],
                    "actual_cost": pusd_to_usd(actual),
                    "batch_cost": pusd_to_usd(at_batch),
                    "unpriced_calls": row["unpriced_calls"],
                    "method": "savings = actual - the same calls at the batch tier (streamed calls and calls"
                    " not at the default tier excluded)",
                    "whatif": ctx.whatif_link(scope, to_tier="batch"),
                    "dashboard": ctx.dashboard("engineering", scope),
                },
            )
        )
    return recs


def output_length(ctx: _Ctx) -> list[Recommendation]:
    """Spend on calls cut at max_tokens plus the retries after them in the trace; max_tokens far above p99."""
    cut_sql = (
        "SELECT toString(feature), toString(model), count(), sum(toInt128(cost_pusd))"  # noqa: S608
        f" FROM llm_calls FINAL WHERE {ctx.where} AND finish_reason = 'length' GROUP BY feature, model"
    )
    retry_sql = (
        "SELECT r.f, r.m, count(), sum(toInt128(r.cost))"  # noqa: S608
        " FROM (SELECT toString(feature) AS f, toString(model) AS m, trace_id, timestamp AS ts, cost_pusd AS cost"
        f" FROM llm_calls FINAL WHERE {ctx.where} AND attempt > 1 AND trace_id != '') AS r"
        " INNER JOIN (SELECT trace_id, min(timestamp) AS first_cut FROM llm_calls FINAL"
        f" WHERE {ctx.where} AND finish_reason = 'length' AND trace_id != '' GROUP BY trace_id) AS l"
        " ON r.trace_id = l.trace_id WHERE r.ts > l.first_cut GROUP BY r.f, r.m"
    )
    cells: dict[tuple[str, str], list[int]] = {}
    for feature, model, calls, cost in ctx.rows(cut_sql, "output_length.cut"):
        cells.setdefault((feature, model), [0, 0, 0, 0])[:2] = [calls, int(cost)]
    for feature, model, calls, cost in ctx.rows(retry_sql, "output_length.retries"):
        cells.setdefault((feature, model), [0, 0, 0, 0])[2:] = [calls, int(cost)]
    out = []
    for (feature, model), (cut, cut_cost, retried, retry_cost) in sorted(cells.items()):
        scope = {"feature": feature, "model": model}
        out.append(
            Recommendation(
                "output_length",
                f"Answers of {feature} on {model} cut at max_tokens: {cut} calls, {retried} retries after them",
                scope,
                cut_cost + retry_cost,
                {
                    "cut_calls": cut,
                    "cut_cost": pusd_to_usd(cut_cost),
                    "retries_after_cut": retried,
                    "retry_cost": pusd_to_usd(retry_cost),
                    "method": "savings = the spend on calls with finish_reason = length plus the retries"
                    " (attempt > 1) later in the same trace (an upper bound)",
                    "dashboard": ctx.dashboard("calls", scope),
                },
            )
        )
    slack_sql = (
        "SELECT toString(feature), count(), max(max_tokens), quantileExact(0.99)(output_tokens)"  # noqa: S608
        f" FROM llm_calls FINAL WHERE {ctx.where} AND isNotNull(max_tokens) AND status = 'ok'"
        " GROUP BY feature ORDER BY 1"
    )
    for feature, calls, max_tokens, p99 in ctx.rows(slack_sql, "output_length.slack"):
        if not max_tokens or max_tokens < MAX_TOKENS_SLACK * max(int(p99), 1):
            continue
        scope = {"feature": feature}
        out.append(
            Recommendation(
                "output_length",
                f"max_tokens of {feature} ({max_tokens}) is far above its p99 output ({int(p99)})",
                scope,
                0,
                {
                    "calls": calls,
                    "max_tokens": max_tokens,
                    "p99_output_tokens": int(p99),
                    "method": f"evidence only: max_tokens at least {MAX_TOKENS_SLACK}x the p99 output costs"
                    " rate-limit headroom, not money",
                    "dashboard": ctx.dashboard("engineering", scope),
                },
            )
        )
    return out


def _cache_group() -> dict[str, Any]:
    return {"calls": 0, "repeats": 0, "readable": 0, "read": 0, "saving": Fraction(0), "estimated": False,
            "hashes": set()}  # fmt: skip


def prompt_cache(ctx: _Ctx) -> list[Recommendation]:
    """Repeated long prefixes (same feature, model, prefix hash) within the cache lifetime, read uncached."""
    sql = (
        "SELECT toString(feature), toString(model), prompt_prefix_hash, toString(provider),"  # noqa: S608
        " toString(service_tier), toUnixTimestamp64Milli(timestamp), input_tokens, cache_read_tokens,"
        " prompt_prefix_tokens, prompt_prefix_tokens_estimated"
        f" FROM llm_calls FINAL WHERE {ctx.where} AND prompt_prefix_hash != ''"
        f" AND prompt_prefix_tokens >= {{min_prefix:UInt32}} AND NOT cache_hit"
        f" ORDER BY feature, model, prompt_prefix_hash, timestamp LIMIT {MAX_ROWS}"
    )
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    last: dict[tuple[str, str, str], int] = {}
    pending: dict[tuple[str, str, str], Fraction] = {}  # the write premium of a window's first call
    for feature, model, prefix_hash, provider, tier, ts, inp, cr, prefix, estimated in ctx.rows(
        sql, "prompt_cache", min_prefix=CACHE_MIN_PREFIX
    ):
        key = (feature, model, prefix_hash)
        g = groups.setdefault((feature, model), _cache_group())
        price = ctx.book.price(provider, model, tier, ts)
        rates = price.rates_for(inp) if price is not None else None
        g["calls"] += 1
        g["estimated"] = g["estimated"] or bool(estimated)
        previous = last.get(key)
        last[key] = ts
        if previous is not None and ts - previous <= CACHE_TTL_MS:
            would_read = max(min(prefix, inp) - cr, 0)
            g["repeats"] += 1
            g["readable"] += min(prefix, inp)
            g["read"] += cr
            g["hashes"].add(prefix_hash)
            if rates is not None:
                g["saving"] += would_read * (Fraction(rates.input) - Fraction(rates.cache_read))
                g["saving"] -= pending.pop(key, Fraction(0))  # the window is used: its write is paid
        else:
            pending.pop(key, None)
            premium = Fraction(rates.cache_write) - Fraction(rates.input) if rates is not None else Fraction(0)
            pending[key] = max(premium, Fraction(0)) * min(prefix, inp)
    out = []
    for (feature, model), g in sorted(groups.items()):
        saving = int(g["saving"])  # rounded toward zero, to the pico-dollar
        if not g["repeats"] or g["read"] >= g["readable"] * CACHE_READ_SHARE or saving <= 0:
            continue
        scope = {"feature": feature, "model": model}
        out.append(
            Recommendation(
                "prompt_cache",
                f"Cache the repeated prompt prefix of {feature} on {model}: {g['repeats']} repeats read uncached",
                scope,
                saving,
                {
                    "calls": g["calls"],
                    "repeats_within_ttl": g["repeats"],
                    "prefixes": len(g["hashes"]),
                    "prefix_tokens_readable": g["readable"],
                    "cache_read_tokens": g["read"],
                    "prefix_tokens_estimated": g["estimated"],
                    "method": "savings = prefix tokens a repeat within 5 minutes would have read from cache x"
                    " (input - cache-read price) at each call's price, minus the cache-write premium of each"
                    f" window's first call; prefixes of at least {CACHE_MIN_PREFIX} tokens"
                    + ("; some prefix sizes were estimated by the client" if g["estimated"] else ""),
                    "dashboard": ctx.dashboard("engineering", scope),
                },
            )
        )
    return out


KIND_FUNCTIONS = {
    "prompt_cache": prompt_cache,
    "output_length": output_length,
    "retries": retries,
    "errors": errors,
    "eval_shadow": eval_shadow,
    "batch": batch,
}


def advice(q: UsageQuery, *, book: PriceBook | None = None) -> Advice:
    """Every kind's recommendations over ``q``'s range and filters, biggest saving first."""
    validate(replace(q, granularity=None, metrics=("cost",), order_by="cost"))
    q = replace(q, start=q.start.astimezone(UTC), end=q.end.astimezone(UTC), granularity=None, group_by=())
    ctx = _Ctx(q, book)
    recs: list[Recommendation] = []
    notes: list[str] = []
    for kind in KINDS:
        fn = KIND_FUNCTIONS.get(kind)
        if fn is not None:
            recs.extend(fn(ctx))
    recs.sort(key=lambda r: (-r.savings_pusd, KINDS.index(r.kind), sorted(r.scope.items())))
    range_ms = int((q.end - q.start).total_seconds() * 1000)
    for r in recs:
        r.evidence["monthly_method"] = (
            f"monthly_savings_usd = savings_usd x 30 days / {range_ms / 86_400_000:g} days (the range), rounded down"
        )
    return Advice(recs, notes, range_ms)
