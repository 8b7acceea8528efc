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


KIND_FUNCTIONS = {"retries": retries, "errors": errors, "eval_shadow": eval_shadow, "batch": batch}


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
