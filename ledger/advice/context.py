"""What every advice kind shares: the recommendation, the answer, the query context and its tunables."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any
from urllib.parse import urlencode

from ledger.clickhouse.client import get_clickhouse
from ledger.measures import MAIN_DIMENSIONS, calls_where, raw_calls_where
from ledger.pricebook import load_price_book
from ledger.pricing import PriceBook, pusd_to_usd
from ledger.queries import UsageQuery, usage
from tenancy.models import Project

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


@dataclass(frozen=True)
class Spend:
    """Where calls and spend per main dimension, tier, finish_reason and error_type are summed."""

    table: str
    where: str
    calls: str  # the call count expression
    cost: str  # the pico-USD spend expression


class Context:
    """The query, its bound parameters and WHERE clause over raw calls, links and the price book."""

    def __init__(self, q: UsageQuery, book: PriceBook | None) -> None:
        self.q = q
        self.book = book if book is not None else load_price_book(q.project_id)
        self.params: dict[str, Any] = {"project": q.project_id, "start": q.start, "end": q.end}
        self.where = raw_calls_where(q.filters, self.params)
        self.notes: list[str] = []  # what a kind looked at and did not recommend, and why
        # Live features the project marks as able to wait (the Batch API), as tenancy stores them.
        eligible = Project.objects.filter(pk=q.project_id).values_list("batch_eligible_features", flat=True).first()
        self.batch_features: tuple[str, ...] = tuple(eligible or ())
        self.spend = self._spend_source()

    def _spend_source(self) -> Spend:
        """The price tier (``rollup_price_hour``) over a range of whole hours without a customer or user
        filter; the raw table otherwise. Both hold the same calls and spend per dimension."""
        whole = all(t == t.replace(minute=0, second=0, microsecond=0) for t in (self.q.start, self.q.end))
        if whole and set(self.q.filters) <= set(MAIN_DIMENSIONS):
            where = calls_where(self.q.filters, self.params, "bucket", "DateTime('UTC')")
            return Spend("rollup_price_hour FINAL", f"{where} AND calls > 0", "sum(calls)", "sum(cost_pusd)")
        return Spend("llm_calls FINAL", self.where, "count()", "sum(toInt128(cost_pusd))")

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
        """The dashboard page over the same range: its filters take calendar days, ``to`` inclusive."""
        last_day = (self.q.end.astimezone(UTC) - timedelta(microseconds=1)).date()
        days = {"from": self.q.start.astimezone(UTC).date().isoformat(), "to": last_day.isoformat()}
        return f"/p/{self.q.project_id}/{page}/?" + urlencode({**self._range(scope), **days})


def _iso(when: datetime) -> str:
    text: str = when.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return text


def total(q: UsageQuery, group_by: tuple[str, ...], metrics: tuple[str, ...], order_by: str) -> list[dict[str, Any]]:
    """One row per group over the whole range (usage() picks the rollup)."""
    query = replace(q, granularity=None, group_by=group_by, metrics=metrics, order_by=order_by, limit=10_000)
    return usage(query).rows


def pusd(value: Any) -> int:
    """A usage() money Decimal → pico-USD."""
    return int(value.scaleb(12))
