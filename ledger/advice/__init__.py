"""Ranked savings opportunities over a range: what ``GET /v1/advice`` answers.

Each kind is one small function over the calls a :class:`~ledger.queries.UsageQuery` selects (its
range and filters): rollup aggregates through :func:`~ledger.queries.usage`, re-pricing through
:func:`~ledger.whatif.whatif`, and raw group-bys here where only the raw table holds the field
(error_type, finish_reason, trace_id, the prompt prefix). Values are bound, the project id is on
every query. Savings are exact pico-USD; ``monthly`` scales them to 30 days by the range's length.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC

from ledger.advice.context import KINDS, Advice, Context, Recommendation
from ledger.advice.repricing import batch, prompt_cache, routing
from ledger.advice.spend import errors, eval_shadow, output_length, retries
from ledger.pricing import PriceBook
from ledger.queries import UsageQuery, validate

__all__ = ["KINDS", "Advice", "Recommendation", "advice"]

KIND_FUNCTIONS: dict[str, Callable[[Context], list[Recommendation]]] = {
    "routing": routing,
    "batch": batch,
    "prompt_cache": prompt_cache,
    "output_length": output_length,
    "retries": retries,
    "errors": errors,
    "eval_shadow": eval_shadow,
}


def advice(q: UsageQuery, *, book: PriceBook | None = None) -> Advice:
    """Every kind's recommendations over ``q``'s range and filters, biggest saving first."""
    validate(replace(q, granularity=None, metrics=("cost",), order_by="cost"))
    q = replace(q, start=q.start.astimezone(UTC), end=q.end.astimezone(UTC), granularity=None, group_by=())
    ctx = Context(q, book)
    recs = [rec for kind in KINDS for rec in KIND_FUNCTIONS[kind](ctx)]
    recs.sort(key=lambda r: (-r.savings_pusd, KINDS.index(r.kind), sorted(r.scope.items())))
    range_ms = int((q.end - q.start).total_seconds() * 1000)
    for r in recs:
        r.evidence["monthly_method"] = (
            f"monthly_savings_usd = savings_usd x 30 days / {range_ms / 86_400_000:g} days (the range), rounded down"
        )
    return Advice(recs, ctx.notes, range_ms)
